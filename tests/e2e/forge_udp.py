#!/usr/bin/env python3
"""Sends UDP datagrams with any source address out of an interface as
Ethernet frames (AF_PACKET), checksums correct: a workload forging another's
address, for the source-check end-to-end test.
usage: forge_udp.py IFACE DST_MAC SRC_IP SRC_PORT DST_IP DST_PORT COUNT"""
import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(dst_mac, src_mac, src, sport, dst, dport, payload):
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    length = 8 + len(payload)
    pseudo = saddr + daddr + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, socket.IPPROTO_UDP, 0,
                     saddr, daddr)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dst_mac + src_mac + struct.pack("!H", 0x0800) + ip + udp


def main():
    iface, dst_mac = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", ""))
    src, sport, dst, dport, count = (sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6]),
                                     int(sys.argv[7]))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((iface, 0))
    frame = udp_frame(dst_mac, sock.getsockname()[4], src, sport, dst, dport, b"forged reply")
    for _ in range(count):
        sock.send(frame)


if __name__ == "__main__":
    main()
