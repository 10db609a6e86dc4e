#!/usr/bin/env python3
"""Test fixture: a process that holds sockets with known options.

Reads commands as JSON lines on stdin and answers each with one JSON line on stdout:
  {"op": "listen", "id": "L", "family": 4|6, "proto": "tcp", "address": "127.0.0.1",
   "port": 0, "options": [[level, optname, value], ...], "before_bind": [[...]], "backlog": 16}
  {"op": "udp", "id": "U", "family": 4|6, "address": "...", "port": 0, "options": [...],
   "connect": ["addr", port]?}
  {"op": "connect", "id": "C", "to": "L", "options": [...], "accept_as": "A"}
      connects a client to listener L and accepts the server side as A
  {"op": "timewait", "to": "L"}   a connection closed client-first: leaves TIME_WAIT
  {"op": "send", "id": "C", "bytes": N}            send N bytes (non-blocking, returns sent)
  {"op": "fill", "id": "C"}                         send until the socket would block
  {"op": "close", "id": "X"}
  {"op": "set_error", "id": "C"}  nothing: use a refused UDP connect to raise SO_ERROR
  {"op": "info", "id": "X"}        fd, inode, local/remote, fdinfo flags
  {"op": "setfl", "id": "X", "flags": N}   fcntl(F_SETFL, N): O_NONBLOCK, O_APPEND, ...
  {"op": "drain_start", "id": "X"}  a thread reads X to its end (EOF or error)
  {"op": "drain_result", "id": "X"} waits for that thread: bytes read and how it ended
  {"op": "exit"}
Values in options: an int, or ["linger", onoff, seconds], ["timeval", sec, usec],
or a string (for SO_BINDTODEVICE / TCP_CONGESTION).
"""
import fcntl
import json
import os
import socket
import struct
import sys
import threading

sockets = {}
drains = {}


def drain(sock, result):
    total = 0
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                result["ended"] = "eof"
                break
            total += len(chunk)
    except OSError as error:
        result["ended"] = type(error).__name__
    result["bytes"] = total


def encode(value):
    if isinstance(value, int):
        return struct.pack("i", value)
    if isinstance(value, str):
        return value.encode()
    kind = value[0]
    if kind == "linger":
        return struct.pack("ii", value[1], value[2])
    if kind == "timeval":
        return struct.pack("qq", value[1], value[2])
    raise ValueError(f"bad option value {value!r}")


def apply(sock, options):
    for level, name, value in options or []:
        sock.setsockopt(level, name, encode(value))


def family_of(number):
    return socket.AF_INET if number == 4 else socket.AF_INET6


def describe(key):
    sock = sockets[key]
    fd = sock.fileno()
    inode = os.fstat(fd).st_ino
    flags = None
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("flags:"):
                flags = line.split()[1]
    local = sock.getsockname()
    try:
        remote = sock.getpeername()
    except OSError:
        remote = None
    return {"id": key, "fd": fd, "inode": inode, "flags": flags, "local": local[:2],
            "remote": remote[:2] if remote else None}


def handle(cmd):
    op = cmd["op"]
    if op == "listen":
        s = socket.socket(family_of(cmd.get("family", 4)), socket.SOCK_STREAM)
        apply(s, cmd.get("before_bind"))
        s.bind((cmd.get("address", "127.0.0.1"), cmd.get("port", 0)))
        s.listen(cmd.get("backlog", 16))
        apply(s, cmd.get("options"))
        sockets[cmd["id"]] = s
        return describe(cmd["id"])
    if op == "udp":
        s = socket.socket(family_of(cmd.get("family", 4)), socket.SOCK_DGRAM)
        apply(s, cmd.get("before_bind"))
        s.bind((cmd.get("address", "127.0.0.1"), cmd.get("port", 0)))
        if cmd.get("connect"):
            s.connect(tuple(cmd["connect"]))
        apply(s, cmd.get("options"))
        sockets[cmd["id"]] = s
        return describe(cmd["id"])
    if op == "connect":
        listener = sockets[cmd["to"]]
        address = listener.getsockname()
        c = socket.socket(listener.family, socket.SOCK_STREAM)
        apply(c, cmd.get("before_connect"))
        c.connect(address[:2])
        apply(c, cmd.get("options"))
        a, _ = listener.accept()
        apply(a, cmd.get("accept_options"))
        sockets[cmd["id"]] = c
        out = {"client": describe(cmd["id"])}
        if cmd.get("accept_as"):
            sockets[cmd["accept_as"]] = a
            out["server"] = describe(cmd["accept_as"])
        else:
            a.close()
        return out
    if op == "timewait":
        listener = sockets[cmd["to"]]
        c = socket.socket(listener.family, socket.SOCK_STREAM)
        c.connect(listener.getsockname()[:2])
        a, _ = listener.accept()
        local = c.getsockname()[:2]
        c.close()  # the client closes first: it is the one that enters TIME_WAIT
        a.recv(1)
        a.close()
        return {"local": local}
    if op == "send":
        s = sockets[cmd["id"]]
        return {"sent": s.send(b"x" * cmd["bytes"])}
    if op == "fill":
        s = sockets[cmd["id"]]
        s.setblocking(False)
        total = 0
        try:
            while True:
                total += s.send(b"x" * 65536)
        except BlockingIOError:
            pass
        s.setblocking(True)
        return {"sent": total}
    if op == "close":
        sockets.pop(cmd["id"]).close()
        return {"closed": cmd["id"]}
    if op == "info":
        return describe(cmd["id"])
    if op == "setfl":
        fcntl.fcntl(sockets[cmd["id"]].fileno(), fcntl.F_SETFL, cmd["flags"])
        return describe(cmd["id"])
    if op == "drain_start":
        result = {}
        thread = threading.Thread(target=drain, args=(sockets[cmd["id"]], result), daemon=True)
        thread.start()
        drains[cmd["id"]] = (thread, result)
        return {"draining": cmd["id"]}
    if op == "drain_result":
        thread, result = drains.pop(cmd["id"])
        thread.join(cmd.get("timeout", 60))
        return result if not thread.is_alive() else {"ended": "still running"}
    if op == "getsockopt":
        s = sockets[cmd["id"]]
        return {"value": struct.unpack("i", s.getsockopt(cmd["level"], cmd["name"], 4))[0]}
    if op == "rename":
        with open("/proc/self/comm", "wb") as f:
            f.write(bytes(cmd["bytes"]))
        return {"renamed": True}
    if op == "pid":
        return {"pid": os.getpid()}
    if op == "exit":
        sys.stdout.write(json.dumps({"bye": True}) + "\n")
        sys.stdout.flush()
        os._exit(0)
    raise ValueError(f"unknown op {op}")


def main():
    sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            reply = {"ok": True, "result": handle(json.loads(line))}
        except Exception as error:  # reported to the test, which fails with the message
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
