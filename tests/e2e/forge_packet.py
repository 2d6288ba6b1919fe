#!/usr/bin/env python3
"""Sends UDP datagrams or TCP segments with any source address and any TCP
flags out of an interface as Ethernet frames (AF_PACKET), checksums correct:
a workload forging another's address, or sending flag combinations no stack
would, for the end-to-end tests.
usage: forge_packet.py IFACE DST_MAC udp|tcp:FLAGS SRC_IP SRC_PORT DST_IP DST_PORT COUNT
       FLAGS: letters of F S R P A U (e.g. tcp:SF, tcp:FA)"""
import socket
import struct
import sys

from inject_frames import send_frames


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}


def ipv4_packet(kind, src, sport, dst, dport, payload):
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    if kind == "udp":
        proto, length = socket.IPPROTO_UDP, 8 + len(payload)
        l4 = struct.pack("!HHHH", sport, dport, length, 0) + payload
        csum_at = 6
    else:
        flags = sum(TCP_FLAGS[c] for c in kind.split(":", 1)[1])
        proto, length = socket.IPPROTO_TCP, 20 + len(payload)
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0) + payload
        csum_at = 16
    pseudo = saddr + daddr + struct.pack("!BBH", 0, proto, length)
    csum = checksum(pseudo + l4) or (0xFFFF if kind == "udp" else 0)
    l4 = l4[:csum_at] + struct.pack("!H", csum) + l4[csum_at + 2:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, proto, 0, saddr, daddr)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + l4


def main():
    iface, dst_mac = sys.argv[1], sys.argv[2]
    kind, src, sport, dst, dport, count = (sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6],
                                           int(sys.argv[7]), int(sys.argv[8]))
    packet = ipv4_packet(kind, src, sport, dst, dport, b"forged" if kind == "udp" else b"")
    send_frames(iface, dst_mac, 0x0800, packet, count)


if __name__ == "__main__":
    main()
