#!/usr/bin/env python3
"""The scenario behind README.md's section "Questions knetstat answers".

Run it as root from the repository's root, after `npm run build`:

    sudo python3 docs/questions-scenario.py            # build the scenario and keep it
    sudo python3 docs/questions-scenario.py --readme   # ... run the README's commands

Without --readme it prints the scenario's pids and an `nsenter` line to try knetstat in
it; Enter makes the client open one more connection (never accepted), Ctrl-D or Ctrl-C
ends it all. With --readme it runs, in the scenario's network namespace
(`nsenter -t PID -n node dist/cli.js ...`), every command that section shows, in the
section's order, and prints each one with its real output as the section's Markdown
blocks; notes for whoever pastes them (what was in reverse video, exit statuses) go to
stderr. Needs nsenter, ip, jq and tmux (for the watch screen on a 132-column terminal).

The scenario lives in a private network namespace (unshare(CLONE_NEWNET)) with only
loopback, so the outputs hold nothing else. Every process names itself through
/proc/self/comm. Clients bind fixed ports, so every run shows the same addresses; the
pids, the times, and the send queue of the stuck connection (the kernel's autotuning)
change from run to run.

  webapp    listens on 127.0.0.1:8080 (SO_REUSEADDR=1, SO_RCVBUF=4096 before listen, so
            that its connections inherit both) and on [::1]:8443, then forks a worker
            (also `webapp`) which shares both listeners and accepts nothing. The first
            process accepts the client's connections and never reads them.
  client    five connections: 48472 (no option), 48482 (SO_KEEPALIVE=1,
            TCP_KEEPIDLE=60), 48494 (TCP_USER_TIMEOUT=30000), 48500 (sends until the
            server's receive window and then its own send window are closed), and
            [::1]:43882 to [::1]:8443 (SO_LINGER on, 0 s); then 48512, closed by the
            client first, which leaves it in TIME_WAIT (60 s, so the README's commands
            run right after the setup). On request, 46744: connected, never accepted.
  resolver  a UDP socket bound to 127.0.0.1:5353.
"""
import ctypes
import json
import os
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, 'dist', 'cli.js')
CLONE_NEWNET = 0x40000000

SERVICE_PORT = 8080
SERVICE6_PORT = 8443
RESOLVER_PORT = 5353
PLAIN_PORT = 48472
KEEPALIVE_PORT = 48482
USER_TIMEOUT_PORT = 48494
STUCK_PORT = 48500
LINGER_PORT = 43882
TIME_WAIT_PORT = 48512
LATE_PORT = 46744

# struct tcp_info (include/uapi/linux/tcp.h): tcpi_snd_wnd at byte 228 (Linux 5.4+),
# tcpi_rcv_wnd at 232 (Linux 6.2+). Only used to wait until the windows are closed.
TCP_INFO_SND_WND = 228
TCP_INFO_RCV_WND = 232
TCP_INFO_LENGTH = 256


def set_process_name(name):
    with open('/proc/self/comm', 'w') as comm:
        comm.write(name)


def tcp_info_u32(sock, offset):
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LENGTH)
    if len(info) < offset + 4:
        raise RuntimeError(f'tcp_info has {len(info)} bytes: this kernel lacks the field at {offset}')
    return struct.unpack_from('I', info, offset)[0]


def wait_until(condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f'timed out waiting for {what}')
        time.sleep(0.05)


def close_inherited_fds(keep):
    """A forked role keeps only its own pipes, so that closing a pipe really ends a role."""
    for fd in map(int, os.listdir('/proc/self/fd')):
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


class Role:
    """One process of the scenario: it runs commands sent as JSON lines over a pipe and
    answers each with one JSON line; it exits when its command pipe closes."""

    def __init__(self, name, setup, commands, teardown=None):
        self.name = name
        self.setup = setup
        self.commands = commands
        self.teardown = teardown
        self.pid = None

    def start(self):
        command_read, command_write = os.pipe()
        answer_read, answer_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                close_inherited_fds({command_read, answer_write})
                set_process_name(self.name)
                state = self.setup()
                answers = os.fdopen(answer_write, 'w')
                answers.write(json.dumps({'pid': os.getpid(), **state.get('report', {})}) + '\n')
                answers.flush()
                for line in os.fdopen(command_read):
                    name, args = json.loads(line)
                    answers.write(json.dumps(self.commands[name](state, *args)) + '\n')
                    answers.flush()
                if self.teardown is not None:
                    self.teardown(state)
            except BaseException as error:  # noqa: BLE001 - a role reports and ends
                print(f'{self.name}: {error!r}', file=sys.stderr)
                os._exit(1)
            os._exit(0)
        os.close(command_read)
        os.close(answer_write)
        self.pid = pid
        self.commands_out = os.fdopen(command_write, 'w')
        self.answers_in = os.fdopen(answer_read)
        return self.read_answer()

    def read_answer(self):
        line = self.answers_in.readline()
        if not line:
            raise RuntimeError(f'{self.name} ended (see its error above)')
        return json.loads(line)

    def call(self, name, *args):
        self.commands_out.write(json.dumps([name, args]) + '\n')
        self.commands_out.flush()
        return self.read_answer()

    def stop(self):
        self.commands_out.close()
        os.waitpid(self.pid, 0)


# --- webapp -------------------------------------------------------------------------


def webapp_setup():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(('127.0.0.1', SERVICE_PORT))
    listener.listen(16)
    listener6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener6.bind(('::1', SERVICE6_PORT))
    listener6.listen(16)
    # The worker ends when the service does: it waits for the end of this pipe.
    alive_read, alive_write = os.pipe()
    worker = os.fork()
    if worker == 0:
        close_inherited_fds({alive_read, listener.fileno(), listener6.fileno()})
        os.read(alive_read, 1)
        os._exit(0)
    os.close(alive_read)
    listeners = {SERVICE_PORT: listener, SERVICE6_PORT: listener6}
    return {
        'listeners': listeners,
        'accepted': {},
        'worker': worker,
        'worker_pipe': alive_write,
        'report': {'worker': worker},
    }


def webapp_teardown(state):
    os.close(state['worker_pipe'])
    os.waitpid(state['worker'], 0)


def webapp_accept(state, listener_port, client_port):
    connection, peer = state['listeners'][listener_port].accept()
    if peer[1] != client_port:
        raise RuntimeError(f'accepted {peer}, expected port {client_port}')
    state['accepted'][client_port] = connection
    return peer[1]


def webapp_close_at_eof(state, client_port):
    connection = state['accepted'].pop(client_port)
    while connection.recv(4096):
        pass
    connection.close()
    return True


def webapp_wait_receive_window_closed(state, client_port):
    connection = state['accepted'][client_port]
    wait_until(lambda: tcp_info_u32(connection, TCP_INFO_RCV_WND) == 0, 'the receive window to close')
    return True


WEBAPP = Role(
    'webapp',
    webapp_setup,
    {
        'accept': webapp_accept,
        'close_at_eof': webapp_close_at_eof,
        'wait_receive_window_closed': webapp_wait_receive_window_closed,
    },
    webapp_teardown,
)


# --- client -------------------------------------------------------------------------


def client_setup():
    return {'connections': {}}


def client_connect(state, local_port, remote_port, family, options):
    if family == 6:
        connection = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        host = '::1'
    else:
        connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        host = '127.0.0.1'
    for option in options:
        if option == 'keepalive':
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        elif option == 'user_timeout':
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 30000)
        elif option == 'linger_zero':
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        else:
            raise ValueError(option)
    connection.bind((host, local_port))
    connection.connect((host, remote_port))
    state['connections'][local_port] = connection
    return local_port


def client_fill(state, local_port):
    """Sends until nothing more goes: the server never reads, so its receive window and
    then this side's send window close."""
    connection = state['connections'][local_port]
    connection.setblocking(False)
    chunk = b'x' * 65536
    total = 0
    deadline = time.monotonic() + 20
    while True:
        sent_this_round = 0
        while True:
            try:
                sent = connection.send(chunk)
            except BlockingIOError:
                break
            sent_this_round += sent
        total += sent_this_round
        if sent_this_round == 0 and tcp_info_u32(connection, TCP_INFO_SND_WND) == 0:
            return total
        if time.monotonic() > deadline:
            raise RuntimeError('the send window did not close')
        time.sleep(0.2)


def client_close(state, local_port):
    state['connections'].pop(local_port).close()
    return True


CLIENT = Role('client', client_setup, {'connect': client_connect, 'fill': client_fill, 'close': client_close})


# --- resolver -----------------------------------------------------------------------


def resolver_setup():
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(('127.0.0.1', RESOLVER_PORT))
    return {'socket': udp}


RESOLVER = Role('resolver', resolver_setup, {})


# --- the scenario, in its own network namespace -------------------------------------


def tcp_state_of_local_port(port):
    with open('/proc/self/net/tcp') as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(':')[1], 16) == port:
                return fields[3]
    return None


def build_scenario():
    """Runs in the forked `scenario` process, already in the new namespace."""
    webapp = WEBAPP.start()
    client = CLIENT.start()
    resolver = RESOLVER.start()
    connections = [
        (PLAIN_PORT, SERVICE_PORT, 4, []),
        (KEEPALIVE_PORT, SERVICE_PORT, 4, ['keepalive']),
        (USER_TIMEOUT_PORT, SERVICE_PORT, 4, ['user_timeout']),
        (STUCK_PORT, SERVICE_PORT, 4, []),
        (LINGER_PORT, SERVICE6_PORT, 6, ['linger_zero']),
    ]
    for local_port, remote_port, family, options in connections:
        CLIENT.call('connect', local_port, remote_port, family, options)
        WEBAPP.call('accept', remote_port, local_port)
    CLIENT.call('fill', STUCK_PORT)
    WEBAPP.call('wait_receive_window_closed', STUCK_PORT)
    # Last, so that the 60 s of TIME_WAIT are left for the commands.
    CLIENT.call('connect', TIME_WAIT_PORT, SERVICE_PORT, 4, [])
    WEBAPP.call('accept', SERVICE_PORT, TIME_WAIT_PORT)
    CLIENT.call('close', TIME_WAIT_PORT)
    WEBAPP.call('close_at_eof', TIME_WAIT_PORT)
    wait_until(lambda: tcp_state_of_local_port(TIME_WAIT_PORT) == '06', 'TIME_WAIT')
    return {
        'scenario': os.getpid(),
        'webapp': webapp['pid'],
        'worker': webapp['worker'],
        'client': client['pid'],
        'resolver': resolver['pid'],
    }


def run_scenario(report_fd, command_fd):
    set_process_name('scenario')
    # Ctrl-C reaches the whole process group: only the driver acts on it, by closing
    # the command pipe, which ends everything in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), 'unshare(CLONE_NEWNET)')
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    report = os.fdopen(report_fd, 'w')
    try:
        pids = build_scenario()
    except BaseException as error:  # noqa: BLE001 - reported to the driver
        report.write(json.dumps({'error': repr(error)}) + '\n')
        report.flush()
        raise
    report.write(json.dumps({'pids': pids, 'time_wait_since': time.time()}) + '\n')
    report.flush()
    for line in os.fdopen(command_fd):
        if line.strip() == 'late':
            CLIENT.call('connect', LATE_PORT, SERVICE_PORT, 4, [])
        report.write('done\n')
        report.flush()
    for role in (CLIENT, WEBAPP, RESOLVER):
        role.stop()


class Scenario:
    """The driver's handle on the scenario process."""

    def __init__(self):
        report_read, report_write = os.pipe()
        command_read, command_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(report_read)
            os.close(command_write)
            close_inherited_fds({report_write, command_read})
            try:
                run_scenario(report_write, command_read)
            except BaseException as error:  # noqa: BLE001
                print(f'scenario: {error!r}', file=sys.stderr)
                os._exit(1)
            os._exit(0)
        os.close(report_write)
        os.close(command_read)
        self.pid = pid
        self.report = os.fdopen(report_read)
        self.commands = os.fdopen(command_write, 'w')
        ready = json.loads(self.report.readline() or '{"error": "the scenario ended"}')
        if 'error' in ready:
            raise RuntimeError(f'scenario failed: {ready["error"]}')
        self.pids = ready['pids']
        self.time_wait_since = ready['time_wait_since']

    def open_late_connection(self):
        self.commands.write('late\n')
        self.commands.flush()
        self.report.readline()

    def end(self):
        self.commands.close()
        os.waitpid(self.pid, 0)


# --- the README's commands ----------------------------------------------------------


def knetstat_argv(scenario, args):
    return ['nsenter', '-t', str(scenario.pids['webapp']), '-n', 'node', CLI, *args]


def shown(args, jq=None, comment=None):
    text = 'knetstat ' + shlex.join(args)
    if jq is not None:
        text += ' | jq ' + shlex.join(jq)
    if comment is not None:
        text += '   # ' + comment
    return text


def run_once(scenario, args, jq=None):
    result = subprocess.run(knetstat_argv(scenario, args), capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'knetstat {shlex.join(args)} exited {result.returncode}: {result.stderr}')
    if result.stderr:
        print(f'note: knetstat {shlex.join(args)} wrote on stderr: {result.stderr!r}', file=sys.stderr)
    output = result.stdout + result.stderr
    if jq is not None:
        output = subprocess.run(['jq', *jq], input=result.stdout, capture_output=True, text=True, check=True).stdout
    return output


def interrupt_after(process, enough, stop_signal):
    """Reads a watch's stdout line by line; once enough(lines) holds, sends stop_signal
    (SIGINT, as Ctrl-C would, or SIGTERM) and returns every line and the exit status."""
    lines = []
    while True:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if enough(lines):
            time.sleep(0.3)  # well within the 1 s interval: the refresh is complete
            process.send_signal(stop_signal)
            break
    rest, _ = process.communicate()
    return lines + ([rest] if rest else []), process.returncode


def run_watch_snapshots(scenario, args, snapshots):
    process = subprocess.Popen(knetstat_argv(scenario, args), stdout=subprocess.PIPE, text=True)
    lines, status = interrupt_after(
        process, lambda ls: sum(1 for line in ls if line.startswith('knetstat ')) == snapshots, signal.SIGINT
    )
    print(f'note: knetstat {shlex.join(args)} ended by SIGINT with exit status {status}', file=sys.stderr)
    return ''.join(lines)


def run_watch_ndjson(scenario, args, jq, documents):
    """knetstat | jq, with this script relaying the pipe so that it knows when to stop."""
    process = subprocess.Popen(knetstat_argv(scenario, args), stdout=subprocess.PIPE, text=True)
    lines, status = interrupt_after(process, lambda ls: len(ls) == documents, signal.SIGTERM)
    print(f'note: knetstat {shlex.join(args)} ended by SIGTERM with exit status {status}', file=sys.stderr)
    return subprocess.run(['jq', *jq], input=''.join(lines), capture_output=True, text=True, check=True).stdout


def tmux(*args):
    return subprocess.run(['tmux', '-L', 'knetstat-questions', '-f', '/dev/null', *args], capture_output=True, text=True, check=True).stdout


def run_watch_screen(scenario, args):
    """The screen of a watch on a 132x40 tmux terminal, right after the client opened one
    more connection; its styled lines (reverse video, colours) go to stderr. tmux writes
    an attribute only where it changes, so a line right below a reversed line that was
    cut at the width can be reversed without an SGR 7 of its own."""
    command = shlex.join(knetstat_argv(scenario, args))
    tmux('new-session', '-d', '-x', '132', '-y', '40', '-s', 'watch', command)
    try:
        tmux('set-option', '-t', 'watch', 'remain-on-exit', 'on')
        wait_until(lambda: 'Recv-Q' in tmux('capture-pane', '-p', '-t', 'watch'), 'the first screen')
        time.sleep(0.3)
        scenario.open_late_connection()
        wait_until(lambda: str(LATE_PORT) in tmux('capture-pane', '-p', '-t', 'watch'), 'the refresh with the new connection', 5)
        time.sleep(0.2)
        screen = tmux('capture-pane', '-p', '-t', 'watch')
        styled = tmux('capture-pane', '-p', '-e', '-t', 'watch')
        for line in styled.splitlines():
            if '\x1b[' in line:
                print(f'note: styled (SGR 7 is reverse video): {line!r}', file=sys.stderr)
        tmux('send-keys', '-t', 'watch', 'q')
        wait_until(lambda: tmux('display-message', '-p', '-t', 'watch', '#{pane_dead}').strip() == '1', 'the watch to end', 5)
        status = tmux('display-message', '-p', '-t', 'watch', '#{pane_dead_status}').strip()
        after = tmux('capture-pane', '-p', '-t', 'watch').rstrip('\n')
        print(f'note: after q, exit status {status}, the terminal shows:\n{after}', file=sys.stderr)
    finally:
        subprocess.run(['tmux', '-L', 'knetstat-questions', 'kill-server'], capture_output=True)
    return screen.rstrip('\n').rstrip() + '\n'


def console(command, output):
    return f'```console\n$ {command}\n{output}```\n'


def readme_blocks(scenario):
    """Every command of the section, run in an order that keeps the late connection (the
    watch screen's) out of the others, and returned in the section's order."""
    pids = scenario.pids
    blocks = {}

    def once(key, args, jq=None):
        blocks[key] = console(shown(args, jq), run_once(scenario, args, jq))

    once('listeners', ['-l', '-p'])
    once('no-keepalive', ['--command', 'webapp', '--state', 'established', '--option', 'SO_KEEPALIVE=0', '-p', 'tcp'])
    once('no-keepalive-json', ['--json', '--state', 'established', '--option', 'SO_KEEPALIVE=0'], ['length'])
    once('diag', ['--diag', '-p', 'tcp'])
    once('local', ['--local', '[::1]:8443', '-p', 'tcp6'])
    once('remote', ['--remote', '127.0.0.0/8', '--state', 'connected', '--option', 'TCP_USER_TIMEOUT', '-o', 'TCP_USER_TIMEOUT,SO_KEEPALIVE', 'tcp'])
    once('pid', ['--pid', str(pids['resolver']), '-p', 'udp'])
    once('linger', ['--option', 'SO_LINGER=0', '-p', 'tcp6'])
    once('summary', ['--summary', 'tcp', 'tcp6'])
    watch_args = ['-w', '1', '--state', 'listen', '-p', 'tcp']
    blocks['watch-pipe'] = console(
        shown(watch_args, comment='not a terminal: one snapshot per second'), run_watch_snapshots(scenario, watch_args, 2)
    )
    ndjson_args = ['--json', '-w', '1', '--diag']
    jq = ['-c', '{time, stuck: [.sockets[] | "\\(.local.port)->\\(.remote.port) \\(.diag)"]}']
    blocks['watch-json'] = console(shown(ndjson_args, jq), run_watch_ndjson(scenario, ndjson_args, jq, 3))
    screen_args = ['-w', '1', '--port', str(SERVICE_PORT), '-p', 'tcp']
    blocks['watch-screen'] = f'```text\n{run_watch_screen(scenario, screen_args)}```\n'
    elapsed = time.time() - scenario.time_wait_since
    print(f'note: the commands ran within {elapsed:.1f} s of the TIME_WAIT (which lasts 60 s)', file=sys.stderr)
    order = [
        'listeners',
        'no-keepalive',
        'no-keepalive-json',
        'diag',
        'local',
        'remote',
        'pid',
        'linger',
        'summary',
        'watch-screen',
        'watch-pipe',
        'watch-json',
    ]
    return [(key, blocks[key]) for key in order]


def main():
    if os.geteuid() != 0:
        sys.exit('questions-scenario.py: needs root (a network namespace, and knetstat reading other processes)')
    readme = sys.argv[1:] == ['--readme']
    if sys.argv[1:] not in ([], ['--readme']):
        sys.exit('usage: questions-scenario.py [--readme]')
    if readme and not os.path.exists(CLI):
        sys.exit('questions-scenario.py: dist/cli.js is missing: run `npm run build` first')
    scenario = Scenario()
    try:
        pids = scenario.pids
        if readme:
            print(f'note: pids {json.dumps(pids)}', file=sys.stderr)
            for key, block in readme_blocks(scenario):
                print(f'<!-- {key} -->\n{block}')
            return
        print(json.dumps(pids))
        print(f'try: nsenter -t {pids["webapp"]} -n node {CLI} -p')
        print('Enter: the client opens one more connection (never accepted); Ctrl-D: end')
        late_opened = False
        for _ in sys.stdin:
            if late_opened:
                print('already opened (one is all the scenario has)')
                continue
            scenario.open_late_connection()
            late_opened = True
            print(f'opened 127.0.0.1:{LATE_PORT} -> 127.0.0.1:{SERVICE_PORT}')
    except KeyboardInterrupt:
        pass
    finally:
        scenario.end()


if __name__ == '__main__':
    main()
