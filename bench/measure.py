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

A command may start processes of its own (knetstat's helper process). The runner is a
child subreaper, so those it leaves behind are reaped here and their CPU time counted
(those it reaps itself are in its own rusage already). Where a memory cgroup can be
made under the runner's own and entered (cgroup v1's memory controller; v2 only where
the runner's cgroup gives its children the memory controller, in practice the root
cgroup: a probe at start decides), each run goes into a fresh one and "cgroupPeakKb" is
the peak of all its processes' memory together, which a peak RSS cannot tell for two
processes; elsewhere it is null and the benchmark goes on without it.
"""
import ctypes
import json
import os
import resource
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36


class MemoryCgroup:
    """Fresh memory cgroups under this process's own, one per run; None where unusable."""

    @staticmethod
    def find():
        try:
            with open("/proc/self/cgroup") as lines:
                entries = [line.rstrip("\n").split(":", 2) for line in lines]
        except OSError:
            return None
        candidates = []
        for _, controllers, path in entries:
            if "memory" in controllers.split(","):
                candidates.append((f"/sys/fs/cgroup/memory{path.rstrip('/')}", "memory.max_usage_in_bytes"))
            elif controllers == "":
                candidates.append((f"/sys/fs/cgroup{path.rstrip('/')}", "memory.peak"))
        for base, peak_file in candidates:
            cgroup = MemoryCgroup(base, peak_file)
            if cgroup.works():
                return cgroup
        return None

    def __init__(self, base, peak_file):
        self.base = base
        self.peak_file = peak_file
        self.count = 0
        self.path = None

    def works(self):
        """Whether a cgroup can be made, entered, read and removed here (a probe run)."""
        try:
            self.enter_new()
            self.leave()
            self.peak_and_remove()
            return True
        except OSError:
            self.leave_quietly()
            self.remove()
            return False

    def enter_new(self):
        """Creates a cgroup and moves this runner into it; children spawned now start there."""
        self.count += 1
        self.path = f"{self.base}/knetstat-bench-{os.getpid()}-{self.count}"
        os.mkdir(self.path)
        with open(f"{self.path}/cgroup.procs", "w") as procs:
            procs.write(str(os.getpid()))

    def leave(self):
        with open(f"{self.base}/cgroup.procs", "w") as procs:
            procs.write(str(os.getpid()))

    def leave_quietly(self):
        """Leaves the run's cgroup; False when that failed."""
        try:
            self.leave()
            return True
        except OSError:
            return False

    def peak_and_remove(self):
        try:
            with open(f"{self.path}/{self.peak_file}") as peak:
                return int(peak.read().strip()) // 1024
        finally:
            self.remove()

    def remove(self):
        if self.path is None:
            return
        for _ in range(300):
            try:
                os.rmdir(self.path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)  # the last process is still being released
        self.path = None


def drop_cgroup(cgroup, why):
    """No memory cgroup from now on, rather than no benchmark; says why on stderr."""
    cgroup.leave_quietly()
    cgroup.remove()
    sys.stderr.write(f"measure: {why}; going on without the cgroup peak\n")
    return None


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_the_rest(deadline_s=30.0):
    """Waits for processes the command left behind (re-parented here); their CPU in ms."""
    user = system = 0.0
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            pid, _, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return user, system
        if pid == 0:
            if time.monotonic() > deadline:
                return user, system  # still running: not waited for any longer
            time.sleep(0.002)
            continue
        user += usage.ru_utime * 1000
        system += usage.ru_stime * 1000


CGROUP = None


def run(argv, stdout_path):
    with tempfile.TemporaryFile() as stderr:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, stderr.fileno(), 2),
        ]
        global CGROUP
        cgroup = CGROUP
        if cgroup:
            try:
                cgroup.enter_new()
            except OSError:
                cgroup = CGROUP = drop_cgroup(cgroup, "could not enter a new memory cgroup")
        peak = None
        try:
            # The runner moves in and out of the cgroup outside the timed span.
            start = time.perf_counter_ns()
            pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
            _, status, usage = os.wait4(pid, 0)
            elapsed = time.perf_counter_ns() - start
        except BaseException:
            if cgroup:
                cgroup.leave_quietly()
                cgroup.remove()
            raise
        if cgroup and not cgroup.leave_quietly():
            # Still inside: every later run would count the runner too.
            cgroup = CGROUP = drop_cgroup(cgroup, "could not leave the memory cgroup")
        other_user, other_system = reap_the_rest()
        if cgroup:
            try:
                peak = cgroup.peak_and_remove()
            except OSError:
                CGROUP = drop_cgroup(cgroup, "could not read or remove the memory cgroup")
        stderr.seek(0)
        text = stderr.read(2000).decode("utf-8", "replace")
    return {
        "ns": elapsed,
        "maxrssKb": usage.ru_maxrss,
        "cgroupPeakKb": peak,
        "userMs": usage.ru_utime * 1000 + other_user,
        "systemMs": usage.ru_stime * 1000 + other_system,
        "status": os.waitstatus_to_exitcode(status),
        "stderr": text,
        "runnerMaxrssKb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def main():
    global CGROUP
    become_subreaper()
    CGROUP = MemoryCgroup.find()
    try:
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
    finally:
        # Interrupted in the middle of a run (Ctrl-C reaches the whole group): no cgroup
        # directory is left behind.
        if CGROUP:
            CGROUP.leave_quietly()
            CGROUP.remove()


if __name__ == "__main__":
    main()
