#!/usr/bin/env python3
"""Test fixture: a process that holds sockets with known options.

Reads commands as JSON lines on stdin and answers each with one JSON line on stdout:
  {"op": "listen", "id": "L", "family": 4|6, "proto": "tcp", "address": "127.0.0.1",
   "port": 0, "options": [[level, optname, value], ...], "before_bind": [[...]], "backlog": 16}
  {"op": "udp", "id": "U", "family": 4|6, "address": "...", "port": 0, "options": [...],
   "connect": ["addr", port]?}
  {"op": "connect", "id": "C", "to": "L", "options": [...], "accept_as": "A",
   "before_connect": [...], "accept_options": [...], "family": 4|6?, "address": "..."?}
      connects a client to listener L and accepts the server side as A
  {"op": "dial", "id": "C", "family": 4|6, "address": "127.0.0.1", "port": N, "listener": "L",
   "accept_as": "A"?, "nonblocking": false}
      connects to an explicit address (e.g. an IPv4 client to a dual-stack IPv6 listener);
      accepts the server side from L as A, or leaves it in L's accept queue without accept_as;
      nonblocking only starts the connect (a SYN to a full accept queue stays SYN_SENT)
  {"op": "shutdown", "id": "C", "how": 1}       shutdown(2): 1 = SHUT_WR sends a FIN
  {"op": "timewait", "to": "L"}   a connection closed client-first: leaves TIME_WAIT
  {"op": "send", "id": "C", "bytes": N}            send N bytes (non-blocking, returns sent)
  {"op": "fill", "id": "C"}                         send until the socket would block
  {"op": "close", "id": "X"}
  {"op": "set_error", "id": "C"}  nothing: use a refused UDP connect to raise SO_ERROR
  {"op": "info", "id": "X"}        fd, inode, local/remote, fdinfo flags
  {"op": "fork", "name": "worker"?}  a second process that shares every socket held so
      far (its fds are inherited) and sleeps until the parent unforks or exits; with
      "name" it renames itself (/proc/self/comm) before answering; returns its pid
  {"op": "unfork", "pid": N}       ends that process and reaps it
  {"op": "connect_only", "id": "C", "to": "L"}   a client the listener never accepts
  {"op": "listen_many", "prefix": "M", "count": N}  N plain IPv4 listeners M0..M(N-1)
  {"op": "setsockopts", "id": "X", "options": [...]}
      sets each option in order; answers one errno name (or null when it took) per option
  {"op": "read_option", "id": "X", "level": L, "name": N, "decoding": "int"|...}
      the owner's own getsockopt, decoded here independently of knetstat's decoder
  {"op": "poll", "id": "X"}        revents of a zero-timeout poll (POLLERR shows a pending
                                   SO_ERROR without reading, hence without clearing, it)
  {"op": "setfl", "id": "X", "flags": N}   fcntl(F_SETFL, N): O_NONBLOCK, O_APPEND, ...
  {"op": "drain_start", "id": "X"}  a thread reads X to its end (EOF or error)
  {"op": "drain_result", "id": "X"} waits for that thread: bytes read and how it ended
  {"op": "run", "argv": [...]}   runs a command in the child's namespace (ip, a sysctl
                                   write), which must succeed; returns its exit status
  {"op": "exit"}
Values in options: an int, or ["linger", onoff, seconds], ["timeval", sec, usec],
["txtime", clockid, flags], or a string (for SO_BINDTODEVICE / TCP_CONGESTION / TCP_ULP).
"""
import errno
import fcntl
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import threading

sockets = {}
forks = {}  # pid -> the write end of the pipe whose closing ends that process
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
    if kind == "txtime":
        return struct.pack("iI", value[1], value[2])
    raise ValueError(f"bad option value {value!r}")


def apply(sock, options):
    for level, name, value in options or []:
        sock.setsockopt(level, name, encode(value))


def try_apply(sock, options):
    """Like apply, but reports each option's errno instead of stopping at the first."""
    results = []
    for level, name, value in options or []:
        try:
            sock.setsockopt(level, name, encode(value))
            results.append(None)
        except OSError as error:
            results.append(errno.errorcode.get(error.errno, str(error.errno)))
    return results


def decode(raw, decoding):
    """getsockopt bytes -> value in knetstat's JSON units, written apart from src/options."""
    if decoding == "int":
        return struct.unpack("i", raw[:4])[0]
    if decoding == "string":
        return raw.split(b"\0", 1)[0].decode("latin1")
    if decoding == "timeval":
        seconds, microseconds = struct.unpack("qq", raw[:16])
        return seconds * 1000 + microseconds // 1000
    if decoding == "linger":
        onoff, seconds = struct.unpack("ii", raw[:8])
        return seconds if onoff else None
    if decoding == "u64":
        value = struct.unpack("Q", raw[:8])[0]
        return str(value) if value == 2**64 - 1 else value
    if decoding == "txtime":
        clockid, flags = struct.unpack("iI", raw[:8])
        return f"{clockid}/{flags}"
    raise ValueError(f"bad decoding {decoding!r}")


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
        # "family"/"address" reach a dual-stack listener from IPv4 (an IPv4-mapped peer).
        family = family_of(cmd["family"]) if "family" in cmd else listener.family
        c = socket.socket(family, socket.SOCK_STREAM)
        apply(c, cmd.get("before_connect"))
        c.connect((cmd.get("address", address[0]), address[1]))
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
    if op == "dial":
        c = socket.socket(family_of(cmd.get("family", 4)), socket.SOCK_STREAM)
        if cmd.get("nonblocking"):
            c.setblocking(False)
            c.connect_ex((cmd["address"], cmd["port"]))
        else:
            c.connect((cmd["address"], cmd["port"]))
        sockets[cmd["id"]] = c
        out = {"client": describe(cmd["id"])}
        if cmd.get("accept_as"):
            a, _ = sockets[cmd["listener"]].accept()
            sockets[cmd["accept_as"]] = a
            out["server"] = describe(cmd["accept_as"])
        return out
    if op == "shutdown":
        sockets[cmd["id"]].shutdown(cmd.get("how", socket.SHUT_WR))
        return {"shutdown": cmd["id"]}
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
    if op == "connect_only":
        listener = sockets[cmd["to"]]
        c = socket.socket(listener.family, socket.SOCK_STREAM)
        c.connect(listener.getsockname()[:2])
        sockets[cmd["id"]] = c
        return describe(cmd["id"])
    if op == "listen_many":
        count = cmd["count"]
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < count + 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 64), hard))
        for i in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            sockets[f"{cmd['prefix']}{i}"] = s
        return {"opened": count}
    if op == "setsockopts":
        return {"errors": try_apply(sockets[cmd["id"]], cmd["options"])}
    if op == "read_option":
        s = sockets[cmd["id"]]
        try:
            raw = s.getsockopt(cmd["level"], cmd["name"], 64)
        except OSError as error:
            return {"errno": errno.errorcode.get(error.errno, str(error.errno))}
        return {"value": decode(raw, cmd.get("decoding", "int"))}
    if op == "poll":
        poller = select.poll()
        poller.register(sockets[cmd["id"]], select.POLLIN | select.POLLOUT | select.POLLERR)
        events = poller.poll(0)
        revents = events[0][1] if events else 0
        return {"revents": revents, "err": bool(revents & select.POLLERR)}
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
    if op == "fork":
        alive_r, alive_w = os.pipe()
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(alive_w)
                os.close(ready_r)
                for other in forks.values():  # or an earlier fork would outlive its unfork
                    os.close(other)
                # Keep the sockets, not the test's stdin/stdout: the parent answers commands.
                null = os.open("/dev/null", os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                if cmd.get("name"):
                    with open("/proc/self/comm", "w") as f:
                        f.write(cmd["name"])
                os.write(ready_w, b"r")
                os.read(alive_r, 1)  # EOF when the parent unforks or exits
            finally:
                os._exit(0)
        os.close(alive_r)
        os.close(ready_w)
        os.read(ready_r, 1)
        os.close(ready_r)
        forks[pid] = alive_w
        return {"pid": pid}
    if op == "unfork":
        pid = cmd["pid"]
        os.close(forks.pop(pid))
        os.waitpid(pid, 0)
        return {"reaped": pid}
    if op == "pid":
        return {"pid": os.getpid()}
    if op == "run":
        return subprocess.run(cmd["argv"], check=True, capture_output=True).returncode
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
