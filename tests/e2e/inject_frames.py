#!/usr/bin/env python3
"""Sends hand-made (often broken) Ethernet frames out of an interface with an
AF_PACKET socket, for the malformed-packet end-to-end test.
usage: inject_frames.py IFACE DST_MAC KIND COUNT"""
import socket
import struct
import sys


def ipv4(ihl=5, tot_len=None, payload=b"\x00" * 8, proto=17, version=4):
    header_len = max(ihl, 5) * 4
    total = header_len + len(payload) if tot_len is None else tot_len
    header = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, 0, 0, 64, proto, 0,
                         bytes([10, 65, 1, 2]), bytes([10, 65, 2, 2]))
    return header + b"\x00" * (header_len - 20) + payload


def vlan(vid, inner_ethertype):
    return struct.pack("!HH", vid, inner_ethertype)


def arp_request():
    # Who has 10.65.1.1? Tell 10.65.1.2 (sender MAC zero: a probe of no one).
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\x00" * 6,
                       bytes([10, 65, 1, 2]), b"\x00" * 6, bytes([10, 65, 1, 1]))


FRAMES = {
    # (ethertype, L3 bytes)
    "l3-short": (0x0800, ipv4()[:12]),
    "ihl": (0x0800, ipv4(ihl=3)),
    "ip-length": (0x0800, ipv4(tot_len=400)),
    "l4-short": (0x0800, ipv4(payload=b"\x00" * 4, proto=6)),
    "ip-version": (0x0800, ipv4(version=7)),
    "good-udp": (0x0800, ipv4()),
    # Tagged frames (the tag is part of what follows the outer ethertype).
    "vlan-udp": (0x8100, vlan(30, 0x0800) + ipv4()),
    "qinq-udp": (0x88A8, vlan(10, 0x8100) + vlan(20, 0x0800) + ipv4()),
    "other-ethertype": (0x88B5, b"\x00" * 46),  # IEEE 802 local experimental
    "arp": (0x0806, arp_request()),
}


def send_frames(iface, dst_mac, ethertype, payload, count):
    """Sends `count` Ethernet frames out of iface: dst_mac ("aa:bb:..."), the
    interface's own address, ethertype, payload."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    frame = (bytes.fromhex(dst_mac.replace(":", "")) + sock.getsockname()[4] +
             struct.pack("!H", ethertype) + payload)
    for _ in range(count):
        sock.send(frame)


def main():
    iface, dst_mac, kind, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ethertype, l3 = FRAMES[kind]
    send_frames(iface, dst_mac, ethertype, l3, count)


if __name__ == "__main__":
    main()
