#!/usr/bin/env python3
"""Benchmark runner: starts one command per request and reports what it cost.

Reads JSON lines {"argv": [...], "stdout": PATH} on stdin; for each, spawns argv with
stdout to PATH (normally /dev/null: the output is measured, not read) and stderr to a
scratch file, waits for it with wait4(2), and answers one JSON line:
  {"ns": wall time from spawn to reaped, "maxrssKb": peak RSS of the child,
   "userMs", "systemMs": its CPU time, "status": exit status, "stderr": first 2000 chars}
A long-lived runner keeps the interpreter's start-up out of every measurement, and
wait4's rusage gives each child's own peak RSS (getrusage(RUSAGE_CHILDREN) would give
the maximum over all of them). That peak includes the memory the child shared with this
runner until it called exec, so a child smaller than the runner shows the runner's size:
"runnerMaxrssKb" is sent along, and a peak not above it is only an upper bound.
"""
import json
import os
import resource
import sys
import tempfile
import time


def run(argv, stdout_path):
    with tempfile.TemporaryFile() as stderr:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, stderr.fileno(), 2),
        ]
        start = time.perf_counter_ns()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter_ns() - start
        stderr.seek(0)
        text = stderr.read(2000).decode("utf-8", "replace")
    return {
        "ns": elapsed,
        "maxrssKb": usage.ru_maxrss,
        "userMs": usage.ru_utime * 1000,
        "systemMs": usage.ru_stime * 1000,
        "status": os.waitstatus_to_exitcode(status),
        "stderr": text,
        "runnerMaxrssKb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            reply = run(request["argv"], request.get("stdout", "/dev/null"))
        except OSError as error:
            reply = {"error": f"{request['argv'][0]}: {error.strerror}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
