#!/usr/bin/env python3
"""Request/response over one TCP connection, for the end-to-end tests.
server IP PORT READY          echo every connection until it closes; touches READY
                              once listening
client IP PORT N              N exchanges of 200 bytes on one connection, then close;
                              prints "exchanges N"
client-then-denied IP PORT N PAUSED GO
                              N exchanges, touch PAUSED, wait for GO, then one more
                              request: prints "answered" or "no answer" (2 s)
client-in-two-phases IP PORT N PAUSED GO
                              N exchanges, touch PAUSED, wait for GO (60 s), N more,
                              then close; prints "client: 2N request/responses"
"""
import os
import socket
import struct
import sys
import threading
import time


def exchange(conn, i):
    msg = ("request %06d " % i).encode() + b"x" * 186
    conn.sendall(msg)
    got = b""
    while len(got) < len(msg):
        part = conn.recv(4096)
        if not part:
            sys.exit("connection closed by the server at request %d" % i)
        got += part
    if got != msg:
        sys.exit("response %d does not echo its request" % i)


def echo(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    conn.close()


def connect(ip, port):
    conn = socket.create_connection((ip, port), timeout=10)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def close(conn):
    conn.shutdown(socket.SHUT_WR)
    if conn.recv(1) != b"":
        sys.exit("data after close")
    conn.close()


def main():
    mode, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "server":
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((ip, port))
        srv.listen(4)
        open(sys.argv[4], "w").close()
        while True:
            conn, _ = srv.accept()
            # A connection the test cut off stays open here: serve each alone.
            threading.Thread(target=echo, args=(conn,), daemon=True).start()
    n = int(sys.argv[4])
    conn = connect(ip, port)
    for i in range(n):
        exchange(conn, i)
    if mode == "client":
        close(conn)
        print("exchanges %d" % n)
        return
    paused, go = sys.argv[5], sys.argv[6]
    open(paused, "w").close()
    deadline = time.time() + (60 if mode == "client-in-two-phases" else 30)
    while not os.path.exists(go):
        if time.time() > deadline:
            sys.exit("no go file")
        time.sleep(0.02)
    if mode == "client-in-two-phases":
        for i in range(n, 2 * n):
            exchange(conn, i)
        close(conn)
        print("client: %d request/responses" % (2 * n))
        return
    conn.settimeout(2)
    conn.sendall(b"after the deny")
    try:
        print("answered" if conn.recv(4096) else "closed")
    except socket.timeout:
        print("no answer")
    # An abortive close: no FIN for the stack to keep retransmitting into
    # later measurements.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


main()
