#!/usr/bin/env node
/**
 * Stress: one collection over ~100,000 sockets, in text and in JSON, reporting wall time
 * and peak RSS. Kept out of `npm test` (it takes minutes and a lot of kernel memory).
 *
 * Needs root: the sockets live in a private network namespace (loopback only), held by
 * several Python processes (one process may hold only RLIMIT_NOFILE fds, and the hard
 * limit can only be raised with CAP_SYS_RESOURCE), each with TCP connections (both ends)
 * over IPv4 and IPv6 and unconnected UDP sockets. knetstat runs in that namespace with
 * nsenter, under /usr/bin/time for the peak RSS.
 *
 *   npm run stress                    # 100,000 sockets
 *   STRESS_SOCKETS=20000 npm run stress
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../dist/knetstat.cjs', import.meta.url));
const TOTAL = Number(process.env.STRESS_SOCKETS ?? 100_000);

// Each holder: a TCP listener per family, `pairs` connections per family (two sockets
// each) and `udp` UDP sockets per family: 4 * pairs + 2 * udp + 2 sockets.
const HOLDER = `
import json, os, resource, socket, sys
pairs, udp = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
need = 4 * pairs + 2 * udp + 64
if need > hard:
    sys.exit(f"needs {need} fds, hard limit is {hard}")
resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
held = []
for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((address, 0))
    listener.listen(4096)
    held.append(listener)
    for i in range(pairs):
        client = socket.socket(family, socket.SOCK_STREAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        client.connect(listener.getsockname()[:2])
        server, _ = listener.accept()
        held += [client, server]
    for i in range(udp):
        u = socket.socket(family, socket.SOCK_DGRAM)
        u.bind((address, 0))
        held.append(u)
print(json.dumps({"pid": os.getpid(), "sockets": len(held)}), flush=True)
sys.stdin.read()
`;

function hardFdLimit() {
  const out = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  return out === 'unlimited' ? 1_048_576 : Number(out);
}

function fail(message) {
  process.stderr.write(`stress: ${message}\n`);
  process.exit(1);
}

if (process.getuid?.() !== 0) fail('needs root (a private network namespace, nsenter)');
const perHolderLimit = Math.min(hardFdLimit() - 100, 50_000);
const holders = Math.max(1, Math.ceil(TOTAL / perHolderLimit));
const perHolder = Math.ceil(TOTAL / holders);
const pairs = Math.floor(perHolder / 5);
const udp = Math.ceil((perHolder - 4 * pairs - 2) / 2);

// The namespace: a sleeping shell whose netns the holders and knetstat enter.
const namespace = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec sleep 86400'], {
  stdio: 'ignore',
});
const children = [namespace];
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(130));
await new Promise((resolve) => setTimeout(resolve, 300));

const started = performance.now();
const ready = await Promise.all(
  Array.from({ length: holders }, () => {
    const holder = spawn(
      'nsenter',
      ['-t', String(namespace.pid), '-n', 'python3', '-c', HOLDER, String(pairs), String(udp)],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    children.push(holder);
    return new Promise((resolve, reject) => {
      createInterface({ input: holder.stdout }).once('line', (line) => resolve(JSON.parse(line)));
      holder.once('exit', (code) => reject(new Error(`a holder exited (${code})`)));
    });
  }),
).catch((error) => fail(error.message));
const held = ready.reduce((n, r) => n + r.sockets, 0);
process.stdout.write(
  `stress: ${held} sockets held by ${holders} processes, set up in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
);

const directory = mkdtempSync(join(tmpdir(), 'knetstat-stress-'));
process.on('exit', () => rmSync(directory, { recursive: true, force: true }));

/** One knetstat run: wall time and peak RSS from /usr/bin/time, output counted as it streams. */
function collect(args) {
  const timing = join(directory, 'time.txt');
  return new Promise((resolve) => {
    const run = spawn(
      'nsenter',
      [
        '-t',
        String(namespace.pid),
        '-n',
        '/usr/bin/time',
        '-o',
        timing,
        '-f',
        '%e %M',
        process.execPath,
        CLI,
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let lines = 0;
    let bytes = 0;
    let stderr = '';
    run.stdout.on('data', (chunk) => {
      bytes += chunk.length;
      for (const byte of chunk) if (byte === 10) lines++;
    });
    run.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr += chunk;
    });
    run.once('close', (status) => {
      const [seconds, maxKilobytes] = readFileSync(timing, 'utf8')
        .trim()
        .split('\n')
        .at(-1)
        .split(' ')
        .map(Number);
      resolve({ status, lines, bytes, stderr, seconds, rssMiB: maxKilobytes / 1024 });
    });
  });
}

let failed = false;
for (const [label, args, rowsOf] of [
  ['text (knetstat options)', [], (r) => r.lines - 4],
  ['text, every option, with processes', ['-p', '-o', 'all'], (r) => r.lines - 4],
  ['JSON', ['--json'], (r) => r.lines - 1],
]) {
  const result = await collect(args);
  const rows = rowsOf(result);
  process.stdout.write(
    `stress: ${label}: exit ${result.status}, ${rows} rows, ${(result.bytes / 1048576).toFixed(1)} MiB of output, ` +
      `${result.seconds.toFixed(1)} s wall, peak RSS ${result.rssMiB.toFixed(0)} MiB\n`,
  );
  if (result.stderr) process.stdout.write(`stress:   stderr: ${result.stderr.trim()}\n`);
  if (result.status !== 0 || rows < held) failed = true;
}
for (const child of children.slice(1)) child.stdin?.end();
process.exit(failed ? 1 : 0);
