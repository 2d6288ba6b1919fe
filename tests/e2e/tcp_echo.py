#!/usr/bin/env python3
"""Tiny TCP and UDP helpers for the service e2e tests.
serve NAME PORT               answer every TCP connection with "NAME <peer ip>\\n"
serve-udp NAME PORT           answer every datagram with "NAME <peer ip>"
ask IP PORT COUNT             open COUNT TCP connections and print each answer line
ask-peer IP PORT COUNT        the same, each line followed by "peer <getpeername()>"
ask-udp IP PORT COUNT         send one datagram from each of COUNT unconnected
                              sockets; print "<answer> from <recvfrom() source>"
ask-udp-connected IP PORT     connect a UDP socket, send, print
                              "<answer> peer <getpeername()>"
Failures print "error <reason>" instead of an answer."""
import socket
import sys


def serve(name, port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    print("listening", flush=True)
    while True:
        conn, peer = srv.accept()
        with conn:
            conn.sendall(f"{name} {peer[0]}\n".encode())


def serve_udp(name, port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("0.0.0.0", port))
    print("listening", flush=True)
    while True:
        _, peer = srv.recvfrom(512)
        srv.sendto(f"{name} {peer[0]}".encode(), peer)


def endpoint(address):
    return f"{address[0]}:{address[1]}"


def ask(ip, port, count, show_peer=False):
    for n in range(count):
        try:
            with socket.create_connection((ip, port), timeout=2) as conn:
                line = conn.makefile().readline().strip()
                if show_peer:
                    line += " peer " + endpoint(conn.getpeername())
                print(line, flush=True)
        except OSError as error:
            print(f"error {error}", flush=True)


def ask_udp(ip, port, count):
    for n in range(count):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(2)
                sock.sendto(b"?", (ip, port))
                answer, source = sock.recvfrom(512)
                print(f"{answer.decode()} from {endpoint(source)}", flush=True)
        except OSError as error:
            print(f"error {error}", flush=True)


def ask_udp_connected(ip, port):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.connect((ip, port))
            sock.send(b"?")
            answer = sock.recv(512)
            print(f"{answer.decode()} peer {endpoint(sock.getpeername())}", flush=True)
    except OSError as error:
        print(f"error {error}", flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "serve":
        serve(args[0], int(args[1]))
    elif mode == "serve-udp":
        serve_udp(args[0], int(args[1]))
    elif mode == "ask":
        ask(args[0], int(args[1]), int(args[2]))
    elif mode == "ask-peer":
        ask(args[0], int(args[1]), int(args[2]), show_peer=True)
    elif mode == "ask-udp":
        ask_udp(args[0], int(args[1]), int(args[2]))
    elif mode == "ask-udp-connected":
        ask_udp_connected(args[0], int(args[1]))
    else:
        sys.exit(f"unknown mode {mode}\n{__doc__}")
