#!/usr/bin/env python3
"""Test fixture: loopback connection churn, for the race tests.

Run it inside a private network namespace (it binds fixed ports). It starts:
  - a server process: a listener on 127.0.0.1:SERVER_PORT that accepts, keeps the last
    `keep` x `workers` accepted sockets open and closes the oldest;
  - client worker processes, a few at a time, each given its own block of local ports:
    for each port it opens a TCP connection bound to that port and a UDP socket bound
    to the same port number, keeps the last `keep` open and closes the oldest (so new
    sockets take the fd numbers just freed), `rate` connections a second, then exits
    when its block is used up; the supervisor then forks the next worker.

Every socket carries values a reader can check against the row it is shown on:
  SO_MARK = the pid of the process that created it (accepted sockets inherit the
            listener's mark, which is the server's pid),
  TCP_USER_TIMEOUT = 1000 + local port for client connections, LISTENER_USER_TIMEOUT on
            the listener, and 1000 + remote port on accepted sockets once the server has
            set it (before that they show the listener's inherited value),
  SO_RCVLOWAT = local port for the UDP sockets.
All are set before bind(), or at once after accept(), so a row can never legitimately
show another port's value.

Bounded in count and time: it stops after `duration` seconds, after `max_connections`
connections, or on SIGTERM, whichever comes first. Ports are reused once the block
cursor wraps; the supervisor prints every block it hands out, so the reader knows every
pid that may own a port.

Configuration as one JSON argument; output is JSON lines on stdout:
  {"server": PID, "port": SERVER_PORT, "listenerUserTimeout": N}   once the listener is up
  {"worker": PID, "from": FIRST_PORT, "to": LAST_PORT}            for each worker forked
  {"done": true, "connections": N, "failures": N, "seconds": S}   at the end
"""
import collections
import json
import os
import signal
import socket
import struct
import sys
import time

SO_MARK = 36
SO_RCVLOWAT = 18
TCP_USER_TIMEOUT = 18
LISTENER_USER_TIMEOUT = 777


class Stop(Exception):
    pass


def raise_stop(signum, frame):
    raise Stop()


def emit(record):
    # os.write, not print: nothing stays in a stdio buffer for a forked child to repeat.
    os.write(1, (json.dumps(record) + "\n").encode())


def set_int(sock, level, name, value):
    sock.setsockopt(level, name, struct.pack("i", value))


def serve(config, ready_fd):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    pid = os.getpid()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    set_int(listener, socket.SOL_SOCKET, SO_MARK, pid)
    set_int(listener, socket.IPPROTO_TCP, TCP_USER_TIMEOUT, LISTENER_USER_TIMEOUT)
    set_int(listener, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", config["server_port"]))
    listener.listen(4096)
    os.write(ready_fd, b"r")
    os.close(ready_fd)
    kept = collections.deque()
    while True:
        try:
            conn, (_, remote_port) = listener.accept()
        except OSError:
            continue
        try:
            set_int(conn, socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 1000 + remote_port)
        except OSError:
            pass  # the client may already have reset it
        kept.append(conn)
        # Enough for every worker's live connections, so both ends live about as long.
        if len(kept) > config["keep"] * config["workers"]:
            kept.popleft().close()


def work(config, first, last, count_fd):
    pid = os.getpid()
    made = 0
    failed = 0
    kept = collections.deque()
    signal.signal(signal.SIGTERM, raise_stop)
    started = time.monotonic()
    try:
        for port in range(first, last + 1):
            # Paced, so that the collections under test get CPU time too.
            ahead = (port - first) / config["rate"] - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            tcp = udp = None
            try:
                tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                set_int(tcp, socket.SOL_SOCKET, SO_MARK, pid)
                set_int(tcp, socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 1000 + port)
                set_int(tcp, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind(("127.0.0.1", port))
                tcp.connect(("127.0.0.1", config["server_port"]))
                udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                set_int(udp, socket.SOL_SOCKET, SO_MARK, pid)
                set_int(udp, socket.SOL_SOCKET, SO_RCVLOWAT, port)
                udp.bind(("127.0.0.1", port))
            except OSError:
                failed += 1
                for s in (tcp, udp):
                    if s is not None:
                        s.close()
                continue
            made += 1
            kept.append((port, tcp, udp))
            if len(kept) > config["keep"]:
                old_port, old_tcp, old_udp = kept.popleft()
                if old_port % 16 != 0:
                    # Mostly abortive closes (RST), which leave no TIME_WAIT behind.
                    old_tcp.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                old_tcp.close()
                old_udp.close()
    except Stop:
        pass
    finally:
        os.write(count_fd, struct.pack("ii", made, failed))
    os._exit(0)


def main():
    config = {
        "server_port": 10000,
        "port_from": 20000,
        "port_to": 59999,
        "block": 6000,
        "workers": 2,
        "keep": 3000,
        "rate": 1000,
        "duration": 60.0,
        "max_connections": 200000,
    }
    if len(sys.argv) > 1:
        config.update(json.loads(sys.argv[1]))
    signal.signal(signal.SIGTERM, raise_stop)
    started = time.monotonic()

    ready_read, ready_write = os.pipe()
    server = os.fork()
    if server == 0:
        os.close(ready_read)
        try:
            serve(config, ready_write)
        finally:
            os._exit(1)
    os.close(ready_write)
    os.read(ready_read, 1)
    os.close(ready_read)
    emit({"server": server, "port": config["server_port"], "listenerUserTimeout": LISTENER_USER_TIMEOUT})

    count_read, count_write = os.pipe()
    workers = set()
    cursor = config["port_from"]
    handed_out = 0
    try:
        while time.monotonic() - started < config["duration"] and handed_out < config["max_connections"]:
            while len(workers) < config["workers"] and handed_out < config["max_connections"]:
                first = cursor
                last = min(cursor + config["block"] - 1, config["port_to"])
                cursor = last + 1 if last < config["port_to"] else config["port_from"]
                handed_out += last - first + 1
                pid = os.fork()
                if pid == 0:
                    os.close(count_read)
                    try:
                        work(config, first, last, count_write)
                    finally:
                        os._exit(1)
                workers.add(pid)
                emit({"worker": pid, "from": first, "to": last})
            pid, _ = os.wait()
            workers.discard(pid)
    except Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for pid in workers:
        os.kill(pid, signal.SIGTERM)
    for pid in workers:
        os.waitpid(pid, 0)
    os.kill(server, signal.SIGKILL)
    os.waitpid(server, 0)
    os.close(count_write)
    made = failed = 0
    data = b""
    while True:
        chunk = os.read(count_read, 4096)
        if not chunk:
            break
        data += chunk
    for offset in range(0, len(data) - len(data) % 8, 8):
        m, f = struct.unpack_from("ii", data, offset)
        made += m
        failed += f
    emit({"done": True, "connections": made, "failures": failed,
          "seconds": round(time.monotonic() - started, 3)})


if __name__ == "__main__":
    main()
