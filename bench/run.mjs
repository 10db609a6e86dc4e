#!/usr/bin/env node
/**
 * `npm run bench [-- --sizes 1000,10000,36000 --runs 5 --warmup 1 --no-build]`
 *
 * For each size, in a fresh private network namespace (unshare -n, loopback up),
 * holder processes (holder.py) open that many loopback TCP sockets, both ends of each
 * connection, some with options set. Then every command below runs once to warm up
 * and `runs` times interleaved (A B C ... A B C ...), its output to /dev/null, timed and
 * measured (peak RSS, CPU) by measure.py with wait4. Medians and the ratio of each
 * knetstat mode to `ss -tanpie` go to stdout and bench/RESULTS.md.
 *
 * Needs root (unshare -n, pidfd_getfd on the holders), python3, iproute2 (ip, ss) and
 * util-linux (unshare). netstat (net-tools) is measured when installed, else skipped
 * with a note. Nothing is installed.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HERE = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(ROOT, 'dist', 'knetstat.cjs');
/** The knetstat command as npm installs it (it starts Node on CLI with its flags). */
const BIN = join(ROOT, 'bin', 'knetstat.cjs');
// bin/knetstat.cjs starts the `node` first on PATH: the one running this bench, whose
// version RESULTS.md reports, whatever PATH sudo left.
process.env.PATH = `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`;
const RESULTS = join(HERE, 'RESULTS.md');
/** Sockets per holder process: below the ~20000 fds one process may hold by default. */
const SOCKETS_PER_HOLDER = 10000;
const LISTENERS_PER_HOLDER = 3;
const DEFAULT_SIZES = [1000, 10000, 36000];

function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function parseArguments(argv) {
  const settings = { sizes: DEFAULT_SIZES, runs: 5, warmup: 1, build: true, inner: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) fail(`${flag} needs a value`);
      return next;
    };
    const positiveInteger = (text, what) => {
      const n = Number(text);
      if (!Number.isInteger(n) || n < 1) fail(`${what} must be a positive integer, not '${text}'`);
      return n;
    };
    if (flag === '--sizes')
      settings.sizes = value()
        .split(',')
        .map((s) => positiveInteger(s, '--sizes'));
    else if (flag === '--runs') settings.runs = positiveInteger(value(), '--runs');
    else if (flag === '--warmup') settings.warmup = Number(value());
    else if (flag === '--no-build') settings.build = false;
    else if (flag === '--inner') settings.inner = positiveInteger(value(), '--inner');
    else fail(`unknown argument '${flag}' (expected --sizes N,N --runs N --warmup N --no-build)`);
  }
  if (settings.runs < 5) process.stderr.write('bench: note: fewer than 5 runs; medians are rough\n');
  return settings;
}

function findExecutable(name) {
  for (const directory of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    try {
      accessSync(join(directory, name), constants.X_OK);
      return join(directory, name);
    } catch {}
  }
  return null;
}

/** The commands timed, in the order they run within each round. */
function benchCommands() {
  const commands = [
    { name: 'knetstat', argv: [BIN] },
    { name: 'knetstat --json', argv: [BIN, '--json'] },
    { name: 'knetstat -p', argv: [BIN, '-p'] },
    { name: 'ss -tanpie', argv: ['ss', '-tanpie'] },
    { name: 'ss -tan', argv: ['ss', '-tan'] },
    { name: 'netstat -tanp', argv: ['netstat', '-tanp'], optional: 'netstat' },
    // Both TCP tables: what the kernel module's cost was, for all the TCP sockets.
    { name: 'cat /proc/net/tcp{,6}', argv: ['cat', '/proc/net/tcp', '/proc/net/tcp6'] },
  ];
  const notes = [];
  const available = commands.filter((c) => {
    if (!c.optional || findExecutable(c.optional)) return true;
    notes.push(`${c.name}: skipped, ${c.optional} is not installed`);
    return false;
  });
  return { commands: available, notes };
}

// ---------------------------------------------------------------- inside the namespace

/** A line-per-request child: send JSON, read one JSON line back. */
function lineChild(argv, options = {}) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], ...options });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  const exited = new Promise((resolve) => child.once('exit', resolve));
  lines.on('line', (line) => waiting.shift()?.resolve(JSON.parse(line)));
  child.once('exit', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`${argv.join(' ')} exited (${code})`));
  });
  const next = () => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  return {
    child,
    next,
    request(message) {
      const reply = next();
      child.stdin.write(`${JSON.stringify(message)}\n`);
      return reply;
    },
    async stop() {
      child.stdin.end();
      await exited;
    },
  };
}

function holderCounts(size) {
  const holders = Math.max(1, Math.ceil(size / SOCKETS_PER_HOLDER));
  const connections = Math.max(1, Math.round((size - holders * LISTENERS_PER_HOLDER) / 2));
  return Array.from(
    { length: holders },
    (_, i) => Math.floor(connections / holders) + (i < connections % holders ? 1 : 0),
  );
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Rows of knetstat's text tables (every line that is not a header). */
function knetstatRows(text) {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('Recv-Q')).length;
}

/** Open fds of every process on the host: what `-p` style scans (and knetstat's) walk. */
function hostOpenFds() {
  let fds = 0;
  let processes = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      fds += readdirSync(`/proc/${entry}/fd`).length;
      processes++;
    } catch {}
  }
  return { processes, fds };
}

async function verifyRows(runner, scratch) {
  const out = join(scratch, 'out');
  const capture = async (argv) => {
    const r = await runner.request({ argv, stdout: out });
    if (r.error) throw new Error(r.error);
    if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
    return { text: readFileSync(out, 'utf8'), stderr: r.stderr };
  };
  const text = await capture([BIN, 'tcp', 'tcp6']);
  const json = await capture([BIN, '--json', 'tcp', 'tcp6']);
  const ss = await capture(['ss', '-tan']);
  const counts = {
    knetstat: knetstatRows(text.text),
    json: JSON.parse(json.text).length,
    ss: ss.text.split('\n').filter((l) => l !== '').length - 1,
  };
  const stderr = [text.stderr, json.stderr].filter((s) => s !== '').join(' | ');
  return { counts, stderr };
}

async function inner(settings) {
  const size = settings.inner;
  const setup = (argv) => {
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr || r.error}`);
  };
  setup(['ip', 'link', 'set', 'lo', 'up']);
  // This namespace's own sysctl: room for tens of thousands of client ports.
  writeFileSync('/proc/sys/net/ipv4/ip_local_port_range', '10000 65000');

  const log = (text) => process.stderr.write(`bench [${size}]: ${text}\n`);
  const started = Date.now();
  const holders = holderCounts(size).map((count, i) =>
    lineChild(['python3', join(HERE, 'holder.py'), String(count), String(i + 1)]),
  );
  const ready = await Promise.all(holders.map((h) => h.next()));
  const sockets = ready.reduce((sum, r) => sum + r.sockets, 0);
  log(`${holders.length} holder(s), ${sockets} sockets in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const runner = lineChild(['python3', join(HERE, 'measure.py')]);
  const scratch = mkdtempSync(join(os.tmpdir(), 'knetstat-bench-'));
  try {
    const verification = await verifyRows(runner, scratch);
    const host = { ...hostOpenFds(), load: os.loadavg()[0] };
    const { commands, notes } = benchCommands();
    const samples = new Map(commands.map((c) => [c.name, []]));
    const measure = async (command) => {
      const r = await runner.request({ argv: command.argv, stdout: '/dev/null' });
      if (r.error) throw new Error(r.error);
      if (r.status !== 0) throw new Error(`${command.name} exited ${r.status}: ${r.stderr}`);
      return r;
    };
    for (let w = 0; w < settings.warmup; w++) for (const c of commands) await measure(c);
    for (let run = 0; run < settings.runs; run++) {
      for (const c of commands) samples.get(c.name).push(await measure(c));
    }
    const results = commands.map((c) => {
      const s = samples.get(c.name);
      return {
        name: c.name,
        medianMs: median(s.map((x) => x.ns / 1e6)),
        minMs: Math.min(...s.map((x) => x.ns / 1e6)),
        maxMs: Math.max(...s.map((x) => x.ns / 1e6)),
        userMs: median(s.map((x) => x.userMs)),
        systemMs: median(s.map((x) => x.systemMs)),
        peakRssMb: Math.max(...s.map((x) => x.maxrssKb)) / 1024,
        // A peak at or below the runner's own size is the runner's, not the command's.
        rssFloorMb: Math.max(...s.map((x) => x.runnerMaxrssKb)) / 1024,
        // All the command's processes together (knetstat's helper included), where
        // measure.py could give each run a memory cgroup; null where it could not.
        cgroupPeakMb: s.every((x) => typeof x.cgroupPeakKb === 'number')
          ? Math.max(...s.map((x) => x.cgroupPeakKb)) / 1024
          : null,
      };
    });
    log(`measured in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    process.stdout.write(
      `${JSON.stringify({ size, sockets, holders: holders.length, host, verification, notes, results })}\n`,
    );
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    await runner.stop();
    await Promise.all(holders.map((h) => h.stop()));
  }
}

// ---------------------------------------------------------------- outside: orchestration

function machine() {
  const cpus = os.cpus();
  const ss = spawnSync('ss', ['-V'], { encoding: 'utf8' }).stdout.trim();
  return {
    cpus: `${os.availableParallelism()} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `Linux ${os.release()} (${os.arch()})`,
    node: process.version,
    ss,
  };
}

const fixed = (n, digits = 1) => n.toFixed(digits);

/** A Markdown table with padded columns, as the formatter (biome) writes it. */
function markdownTable(header, alignments, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const cell = (text, i) => (alignments[i] === 'right' ? text.padStart(widths[i]) : text.padEnd(widths[i]));
  const line = (cells) => `| ${cells.map(cell).join(' | ')} |`;
  const rule = widths.map((w, i) =>
    alignments[i] === 'right' ? `${'-'.repeat(w - 1)}:` : `:${'-'.repeat(w - 1)}`,
  );
  return [line(header), `| ${rule.join(' | ')} |`, ...rows.map(line)].join('\n');
}

function table(sizes) {
  const rows = [];
  for (const size of sizes) {
    const base = size.results.find((r) => r.name === 'ss -tanpie');
    for (const r of size.results) {
      rows.push([
        String(size.sockets),
        `\`${r.name}\``,
        fixed(r.medianMs),
        `${fixed(r.minMs)}–${fixed(r.maxMs)}`,
        base ? fixed(r.medianMs / base.medianMs, 2) : '-',
        `${fixed(r.userMs, 0)}+${fixed(r.systemMs, 0)}`,
        r.peakRssMb <= r.rssFloorMb ? `≤ ${fixed(r.rssFloorMb)}` : fixed(r.peakRssMb),
        r.cgroupPeakMb === null ? '-' : fixed(r.cgroupPeakMb),
      ]);
    }
  }
  return markdownTable(
    [
      'sockets',
      'command',
      'median ms',
      'min–max ms',
      '× ss -tanpie',
      'user+sys ms',
      'peak RSS MB',
      'cgroup peak MB',
    ],
    ['right', 'left', 'right', 'right', 'right', 'right', 'right', 'right'],
    rows,
  );
}

function targets(sizes) {
  const largest = sizes.reduce((a, b) => (b.sockets > a.sockets ? b : a));
  const find = (size, name) => size.results.find((r) => r.name === name);
  const lines = [];
  const mark = (ok) => (ok ? 'met' : '**not met**');
  const base = find(largest, 'ss -tanpie');
  for (const name of ['knetstat', 'knetstat --json']) {
    const r = find(largest, name);
    const ratio = r.medianMs / base.medianMs;
    lines.push(
      `- \`${name}\` at ${largest.sockets} sockets: ${fixed(r.medianMs)} ms vs \`ss -tanpie\` ${fixed(base.medianMs)} ms = ${fixed(ratio, 2)}× (target ≤ 1.0×): ${mark(ratio <= 1)}`,
    );
  }
  const ours = largest.results.filter((r) => r.name.startsWith('knetstat'));
  const rss = Math.max(...ours.map((r) => r.peakRssMb));
  const together = ours.every((r) => r.cgroupPeakMb !== null)
    ? Math.max(...ours.map((r) => r.cgroupPeakMb))
    : null;
  lines.push(
    together === null
      ? `- peak RSS of knetstat at ${largest.sockets} sockets: ${fixed(rss)} MB (target ≤ 200 MB): ${mark(rss <= 200)} (its helper process not included: no memory cgroup here)`
      : `- peak memory of knetstat at ${largest.sockets} sockets: RSS of its own process ${fixed(rss)} MB, all its processes together (cgroup peak) ${fixed(together)} MB (target ≤ 200 MB): ${mark(rss <= 200 && together <= 200)}`,
  );
  const previous = sizes
    .filter((s) => s.sockets < largest.sockets)
    .reduce((a, b) => (a === null || b.sockets > a.sockets ? b : a), null);
  if (previous) {
    for (const name of ['knetstat', 'knetstat --json']) {
      const growth = find(largest, name).medianMs / find(previous, name).medianMs;
      // 4.5× for 10k → 36k sockets: 1.25 times the growth in sockets.
      const allowed = (1.25 * largest.sockets) / previous.sockets;
      lines.push(
        `- \`${name}\` growth ${previous.sockets} → ${largest.sockets} sockets: ${fixed(growth, 2)}× (target ≤ ${fixed(allowed, 2)}×, 1.25 × the growth in sockets): ${mark(growth <= allowed)}`,
      );
    }
  }
  return lines.join('\n');
}

function report(sizes, settings, m) {
  const notes = [...new Set(sizes.flatMap((s) => s.notes))];
  const checks = sizes.map((s) => {
    const c = s.verification.counts;
    const same = c.knetstat === c.ss && c.json === c.ss;
    return `- ${s.sockets} sockets (${s.holders} holder process${s.holders === 1 ? '' : 'es'}; ${s.host.fds} open fds in ${s.host.processes} processes on the host, load average ${fixed(s.host.load, 2)}): knetstat ${c.knetstat} TCP rows, --json ${c.json}, \`ss -tan\` ${c.ss}${same ? '' : ' — **mismatch**'}${s.verification.stderr ? `; knetstat stderr: ${s.verification.stderr}` : ''}`;
  });
  return `# Benchmark results

Produced by \`npm run bench${settings.sizes === DEFAULT_SIZES ? '' : ` -- --sizes ${settings.sizes.join(',')}`}\` on ${new Date().toISOString().slice(0, 10)}; ${settings.runs} interleaved runs per command after ${settings.warmup} warm-up round${settings.warmup === 1 ? '' : 's'}.

Machine: ${m.cpus}; ${m.memory} RAM; ${m.kernel}; Node ${m.node}; ${m.ss}.

Each size runs in a fresh network namespace holding that many loopback TCP sockets
(both ends of each connection, IPv4 and one in four IPv6, spread over processes of at
most ${SOCKETS_PER_HOLDER} sockets; a seeded share with TCP_NODELAY, keepalive and its
timers, fixed buffers, timeouts, TCP_USER_TIMEOUT or SO_LINGER set). knetstat runs as
npm installs it, \`bin/knetstat.cjs\` (Node with \`--max-semi-space-size=2 --initial-old-space-size=64\`).
Output goes to /dev/null. Wall time is from spawn to exit; peak RSS and CPU come from wait4(2) on each
run ("≤ N": no more than the measuring process's own N MB, which a child shares until it
execs), CPU including knetstat's helper process (measure.py reaps it as a subreaper).
"cgroup peak" is the peak memory of all the command's processes together, from a memory
cgroup made for each run: it counts memory they allocated, not the pages of the node
binary and libraries that the page cache already held, which RSS counts.
"× ss -tanpie" is the median divided by \`ss -tanpie\`'s median from the same
benchmark run. \`ss -p\`, \`netstat -p\` and every knetstat mode scan the fds of every
process on the host, not only of the namespace.

${table(sizes)}

Targets:

${targets(sizes)}

Row check (once per size):

${checks.join('\n')}
${notes.length ? `\nNotes:\n\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}`;
}

async function outer(settings) {
  if (process.getuid?.() !== 0) fail('needs root: unshare -n and pidfd_getfd on the holder processes');
  for (const tool of ['unshare', 'ip', 'ss', 'python3']) {
    if (!findExecutable(tool)) fail(`${tool} is not installed`);
  }
  if (settings.build) {
    const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
    if (build.status !== 0) fail('npm run build failed');
  }
  accessSync(CLI);
  accessSync(BIN, constants.X_OK);
  const sizes = [];
  for (const size of settings.sizes) {
    const args = ['-n', process.execPath, fileURLToPath(import.meta.url), '--inner', String(size)];
    args.push('--runs', String(settings.runs), '--warmup', String(settings.warmup));
    const r = spawnSync('unshare', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) fail(`the ${size}-socket run failed (exit ${r.status})`);
    sizes.push(JSON.parse(r.stdout));
  }
  const text = report(sizes, settings, machine());
  writeFileSync(RESULTS, text);
  process.stdout.write(`${text}\nwritten to ${RESULTS}\n`);
}

const settings = parseArguments(process.argv.slice(2));
if (settings.inner !== null) {
  inner(settings).catch((error) => {
    process.stderr.write(`bench: ${error.stack ?? error}\n`);
    process.exit(1);
  });
} else {
  await outer(settings);
}
