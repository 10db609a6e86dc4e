#!/usr/bin/env python3
"""Benchmark fixture: one process that holds COUNT loopback TCP connections, both ends.

Usage: holder.py COUNT SEED
Run inside the benchmark's private network namespace. Opens two listeners (127.0.0.1
and ::1), connects COUNT clients to them (one in four over IPv6), accepts every one,
and sets options on a fixed, seeded share of the sockets, the way servers and clients
commonly do, so that knetstat has something to show and ss has timers and buffers to
report. Prints one JSON line {"pid", "sockets"} when everything is in place, then
holds the sockets until stdin closes.
"""
import json
import os
import random
import resource
import socket
import struct
import sys

SOL_SOCKET = socket.SOL_SOCKET
IPPROTO_TCP = socket.IPPROTO_TCP
TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = 4, 5, 6
TCP_DEFER_ACCEPT, TCP_USER_TIMEOUT, TCP_FASTOPEN = 9, 18, 23
SO_RCVTIMEO, SO_SNDTIMEO = 66, 67  # the 64-bit timeval variants (SO_*_NEW)
BATCH = 1000  # connect this many, then accept them: stays below the listen backlog


def timeval(milliseconds):
    return struct.pack("qq", milliseconds // 1000, (milliseconds % 1000) * 1000)


def configure(sock, rng):
    """A realistic mix: about half with Nagle off, a third with keepalive (some with
    their own timers), some with fixed buffers, timeouts, a user timeout or linger."""
    r = rng.random()
    if r < 0.5:
        sock.setsockopt(IPPROTO_TCP, socket.TCP_NODELAY, 1)
    keepalive = rng.random() < 0.35
    if keepalive:
        sock.setsockopt(SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if rng.random() < 0.5:
            # Long enough that no probe goes out during a run.
            sock.setsockopt(IPPROTO_TCP, TCP_KEEPIDLE, 900)
            sock.setsockopt(IPPROTO_TCP, TCP_KEEPINTVL, 60)
            sock.setsockopt(IPPROTO_TCP, TCP_KEEPCNT, 5)
    if rng.random() < 0.15:
        sock.setsockopt(SOL_SOCKET, socket.SO_RCVBUF, 262144)
        sock.setsockopt(SOL_SOCKET, socket.SO_SNDBUF, 131072)
    if rng.random() < 0.10:
        sock.setsockopt(SOL_SOCKET, SO_RCVTIMEO, timeval(30000))
        sock.setsockopt(SOL_SOCKET, SO_SNDTIMEO, timeval(30000))
    # Not with keepalive: an idle connection with both is dropped once its first probe
    # goes out (the user timeout counts from the last data received).
    if rng.random() < 0.05 and not keepalive:
        sock.setsockopt(IPPROTO_TCP, TCP_USER_TIMEOUT, 20000)
    if rng.random() < 0.02:
        sock.setsockopt(SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))


def listener(family, address):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, 0))
    sock.listen(BATCH * 2)
    sock.setsockopt(IPPROTO_TCP, TCP_FASTOPEN, 128)
    return sock


def main():
    count = int(sys.argv[1])
    rng = random.Random(int(sys.argv[2]))
    # Two sockets per connection, plus listeners, pipes and the interpreter's own files.
    need = 2 * count + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
    held = [listener(socket.AF_INET, "127.0.0.1"), listener(socket.AF_INET6, "::1")]
    # A third listener with deferred accept; nothing connects to it (a deferred
    # connection could not be accepted until it carried data).
    deferred = listener(socket.AF_INET, "127.0.0.1")
    deferred.setsockopt(IPPROTO_TCP, TCP_DEFER_ACCEPT, 5)
    done = 0
    while done < count:
        batch = min(BATCH, count - done)
        pending = []
        for i in range(batch):
            server = held[1] if (done + i) % 4 == 3 else held[0]
            client = socket.socket(server.family, socket.SOCK_STREAM)
            client.connect(server.getsockname()[:2])
            configure(client, rng)
            pending.append((server, client))
        for server, client in pending:
            accepted, _ = server.accept()
            configure(accepted, rng)
            held.append(client)
            held.append(accepted)
        done += batch
    held.append(deferred)
    sys.stdout.write(json.dumps({"pid": os.getpid(), "sockets": len(held)}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
