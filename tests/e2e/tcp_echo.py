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
echo NAME PORT                greet every connection with "NAME <peer ip>\\n", then
                              echo back everything it sends until it closes
stream IP PORT COUNT DIR      hold COUNT connections to an `echo` server open, each
                              exchanging data continuously, until DIR/stop appears;
                              while DIR/quiet exists they send nothing new (status
                              "quiet": true once every echo is in)
progress DIR...               wait until every connection of the streams in DIR...
                              has echoed again (after a restart, a service change)
Failures of serve/ask modes print "error <reason>" instead of an answer.

`stream` checks every byte that comes back, and watches the packets that
reach its network namespace (an AF_PACKET socket on eth0) for TCP segments
to its connections whose source is not the address it connected to: a
reply that escaped reverse NAT. DIR/status.json (rewritten every 0.2 s,
then once more at exit) holds per connection the backend's name, the
client address the backend saw, exchanges, bytes, the slowest round trip,
when round trips were slow and when TCP retransmitted (to match against
the daemon's log), and the errors seen; the exit status is 1 if there was
any error."""
import json
import os
import random
import selectors
import socket
import struct
import sys
import threading
import time

# A request without its echo for this long is a broken connection. Loss
# recovery (retransmission) and a busy machine stay far below it; the test
# checks retransmissions separately.
STALL_SECONDS = 2.0
# Pause between one echo and the next request on a connection: about 50
# exchanges a second per connection keeps two shared CPUs free for sluiced.
PACE_SECONDS = 0.02
MAX_MESSAGE = 3000  # bytes; larger than one MSS, so echoes span segments
SLOW_SECONDS = 0.1  # round trips slower than this are listed with their time
TCPI_TOTAL_RETRANS = 100  # offset of tcpi_total_retrans in struct tcp_info


def clock():
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % (now % 1 * 1000)


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


def echo(name, port):
    # One thread for all connections: with a thread each, the interpreter's
    # lock would delay echoes by milliseconds, enough for the clients' TCP to
    # send (harmless) loss probes.
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)
    srv.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(srv, selectors.EVENT_READ)
    print("listening", flush=True)
    while True:
        for key, _ in selector.select():
            if key.fileobj is srv:
                conn, peer = srv.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.sendall(f"{name} {peer[0]}\n".encode())  # fits the empty send buffer
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
                if data:
                    # A client sends one message at a time and waits for its
                    # echo, so the echo fits the send buffer at once.
                    conn.setblocking(True)
                    conn.sendall(data)
                    conn.setblocking(False)
            except BlockingIOError:
                continue  # woken without data
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()


class ReplySourceWatch:
    """Counts the TCP segments that reach this namespace's eth0 for our
    local ports, and those among them that do not come from `expected`."""

    def __init__(self, expected):
        self.expected = expected
        self.local_ports = set()
        self.segments = 0
        self.foreign = {}  # "ip:port" -> segments
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("eth0", 0x0800))
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                packet, address = self.sock.recvfrom(128)
            except OSError:  # the namespace is going away
                return
            if address[2] == socket.PACKET_OUTGOING or len(packet) < 20 or packet[9] != 6:
                continue
            l4 = (packet[0] & 0x0F) * 4
            if len(packet) < l4 + 4:
                continue
            source_port, destination_port = struct.unpack_from("!HH", packet, l4)
            if destination_port not in self.local_ports:
                continue
            self.segments += 1
            source = (socket.inet_ntoa(packet[12:16]), source_port)
            if source != self.expected:
                key = "%s:%d" % source
                self.foreign[key] = self.foreign.get(key, 0) + 1


class Connection:
    def __init__(self, index, ip, port, rng, watch):
        self.index = index
        self.rng = rng
        self.sock = socket.socket()
        # The port is known (and watched) before the SYN goes out, so the
        # SYN-ACK's source is checked too.
        self.sock.bind(("0.0.0.0", 0))
        self.local_port = self.sock.getsockname()[1]
        watch.local_ports.add(self.local_port)
        self.sock.settimeout(5)
        self.sock.connect((ip, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peer = "%s:%d" % self.sock.getpeername()
        self.backend, self.seen_ip = None, None
        self.exchanges = self.bytes = 0
        self.max_rtt = 0.0
        self.slow = []  # wall-clock times of round trips over SLOW_SECONDS
        self.retransmits = []  # wall-clock times the kernel's retransmit count grew
        self.total_retrans = 0
        self.errors = []
        self.expected = b""
        self.received = b""
        self.sent_at = None
        self.next_send = 0.0

    def read_greeting(self):
        line = b""
        while not line.endswith(b"\n"):
            part = self.sock.recv(1)
            if not part:
                raise OSError("closed before its greeting")
            line += part
        self.backend, self.seen_ip = line.decode().split()
        self.sock.setblocking(False)

    def error(self, text):
        self.errors.append("%s after %d exchanges: %s" % (time.strftime("%T"), self.exchanges, text))

    def send_next(self, now):
        seq = self.exchanges
        header = b"%d:%d:" % (self.index, seq)
        self.expected = header + self.rng.randbytes(self.rng.randint(1, MAX_MESSAGE))
        self.received = b""
        self.sent_at = now
        # A few KiB always fit the empty send buffer of an idle connection.
        self.sock.sendall(self.expected)

    def on_readable(self, now):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return  # woken without data
        if not data:
            raise OSError("closed by the server")
        self.received += data
        if not self.expected.startswith(self.received):
            raise OSError("echo differs from what was sent (exchange %d)" % self.exchanges)
        if len(self.received) == len(self.expected):
            rtt = now - self.sent_at
            self.max_rtt = max(self.max_rtt, rtt)
            if rtt > SLOW_SECONDS:
                self.slow.append("%s %.0fms" % (clock(), rtt * 1000))
            self.exchanges += 1
            self.bytes += len(self.expected)
            self.sent_at = None
            self.next_send = now + PACE_SECONDS

    def watch_retransmits(self):
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        total = struct.unpack_from("I", info, TCPI_TOTAL_RETRANS)[0]
        if total > self.total_retrans:
            self.retransmits.append("%s +%d" % (clock(), total - self.total_retrans))
            self.total_retrans = total

    def status(self):
        return {"index": self.index, "local_port": self.local_port, "peer": self.peer,
                "backend": self.backend, "seen_ip": self.seen_ip, "exchanges": self.exchanges,
                "bytes": self.bytes, "max_rtt_ms": round(self.max_rtt * 1000, 1),
                "slow": self.slow, "retransmits": self.retransmits,
                "errors": self.errors}


def write_status(directory, status):
    tmp = os.path.join(directory, "status.json.tmp")
    with open(tmp, "w") as out:
        json.dump(status, out)
    os.replace(tmp, os.path.join(directory, "status.json"))


def stream(ip, port, count, directory):
    watch = ReplySourceWatch((ip, port))
    rng = random.Random(os.getpid())
    conns, errors = [], []
    for index in range(count):
        try:
            conn = Connection(index, ip, port, rng, watch)
            conn.read_greeting()
            conns.append(conn)
        except OSError as error:
            errors.append("connection %d: %s" % (index, error))
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.sock, selectors.EVENT_READ, conn)

    def status(done, quiet=False):
        return {"target": "%s:%d" % (ip, port), "connections": [c.status() for c in conns],
                "errors": errors, "segments_watched": watch.segments,
                "foreign_sources": dict(watch.foreign), "done": done, "quiet": quiet}

    stop = os.path.join(directory, "stop")
    quiet = os.path.join(directory, "quiet")
    last_status = 0.0
    live = list(conns)

    def drop(conn, error):
        conn.error(str(error))
        live.remove(conn)
        selector.unregister(conn.sock)

    while True:
        # Echoes first, then the stall check: after this process was not
        # scheduled for a while, echoes waiting in the socket are no stall.
        for key, _ in selector.select(timeout=0.005):
            try:
                key.data.on_readable(time.monotonic())
            except OSError as error:
                drop(key.data, error)
        now = time.monotonic()
        stopping = os.path.exists(stop)
        holding = stopping or os.path.exists(quiet)
        for conn in list(live):
            try:
                if conn.sent_at is None and not holding and now >= conn.next_send:
                    conn.send_next(now)
                elif conn.sent_at is not None and now - conn.sent_at > STALL_SECONDS:
                    raise OSError("no echo for %.1fs" % (now - conn.sent_at))
            except OSError as error:
                drop(conn, error)
        if stopping and all(c.sent_at is None for c in live):
            break
        if now - last_status > 0.2:
            for conn in live:
                conn.watch_retransmits()
            write_status(directory, status(False, holding and all(c.sent_at is None for c in live)))
            last_status = now
    # An orderly close on both sides: the server's EOF answers ours.
    for conn in live:
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(STALL_SECONDS)
            conn.sock.shutdown(socket.SHUT_WR)
            if conn.sock.recv(1) != b"":
                conn.error("data after close")
        except OSError as error:
            conn.error("close: %s" % error)
        conn.sock.close()
    result = status(True)
    write_status(directory, result)
    failed = result["errors"] or any(c["errors"] for c in result["connections"])
    sys.exit(1 if failed else 0)


def progress(directories, timeout=10.0, more=3):
    """Every connection of every stream echoes `more` times more than now."""
    def read(directory):
        with open(os.path.join(directory, "status.json")) as status:
            return json.load(status)

    start = {d: read(d) for d in directories}
    deadline = time.monotonic() + timeout
    while True:
        lagging = []
        for d in directories:
            now = read(d)
            failed = [c for c in now["connections"] if c["errors"]] + now["errors"]
            if failed:
                sys.exit("%s: %s" % (d, json.dumps(failed)))
            before = {c["index"]: c["exchanges"] for c in start[d]["connections"]}
            lagging += ["%s #%d (%s)" % (now["target"], c["index"], c["backend"])
                        for c in now["connections"] if c["exchanges"] < before[c["index"]] + more]
        if not lagging:
            return
        if time.monotonic() > deadline:
            ages = ", ".join("%s written %.1fs ago" % (d, time.time() - os.path.getmtime(
                os.path.join(d, "status.json"))) for d in directories)
            sys.exit("no echo for %.0fs on: %s (status: %s)" % (timeout, ", ".join(lagging), ages))
        time.sleep(0.1)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "serve":
        serve(args[0], int(args[1]))
    elif command == "ask":
        ask(args[0], int(args[1]), int(args[2]))
    elif command == "echo":
        echo(args[0], int(args[1]))
    elif command == "stream":
        stream(args[0], int(args[1]), int(args[2]), args[3])
    elif command == "progress":
        progress(args)
    elif command == "serve-udp":
        serve_udp(args[0], int(args[1]))
    elif command == "ask-peer":
        ask(args[0], int(args[1]), int(args[2]), show_peer=True)
    elif command == "ask-udp":
        ask_udp(args[0], int(args[1]), int(args[2]))
    elif command == "ask-udp-connected":
        ask_udp_connected(args[0], int(args[1]))
    else:
        sys.exit(__doc__)
