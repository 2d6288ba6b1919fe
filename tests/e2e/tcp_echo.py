#!/usr/bin/env python3
"""Tiny TCP helpers for the service e2e test.
serve NAME PORT        answer every connection with "NAME <peer ip>\\n"
ask IP PORT COUNT      open COUNT connections and print each answer line"""
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


def ask(ip, port, count):
    for n in range(count):
        try:
            with socket.create_connection((ip, port), timeout=2) as conn:
                print(conn.makefile().readline().strip(), flush=True)
        except OSError as error:
            print(f"error {error}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    else:
        ask(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
