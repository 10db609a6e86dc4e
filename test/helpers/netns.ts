/**
 * Integration-test plumbing: a socket-holding child (socket_child.py) in a private
 * network namespace, and knetstat run inside that namespace with nsenter, so nothing
 * else on the host shows up in what the tests compare.
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Collection } from '../../src/model.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The command's program as bin/knetstat.cjs runs it: the bundle of dist/cli.js (scripts/finish-build.mjs). */
export const CLI = `${ROOT}dist/knetstat.cjs`;
const CHILD = fileURLToPath(new URL('./socket_child.py', import.meta.url));
const COLLECT_IN_NETNS = fileURLToPath(new URL('./collect-in-netns.mjs', import.meta.url));

export const isRoot = process.getuid?.() === 0;

/** Why namespace tests cannot run here, or null when they can. */
export function netnsUnavailableReason(): string | null {
  if (!isRoot) return 'needs root (unshare -n, nsenter, pidfd_getfd on other processes)';
  const probe = spawnSync('unshare', ['-n', 'true']);
  if (probe.status !== 0) return `unshare -n is refused here: ${probe.stderr.toString().trim()}`;
  return null;
}

type Json = Record<string, unknown>;

/** An address as socket_child.py reports it: [host, port]. */
export type Address = [string, number];

/** A socket as socket_child.py describes it (the `info` op and the socket-making ops). */
export interface Described {
  id: string;
  fd: number;
  inode: number;
  flags: string;
  local: Address;
  remote: Address | null;
}

/** The two ends of a `connect` op: the client and the accepted server side. */
export interface Pair {
  client: Described;
  server: Described;
}

export class SocketChild {
  private constructor(
    private readonly process: ChildProcessWithoutNullStreams,
    private readonly lines: Interface,
    readonly pid: number,
  ) {}

  /**
   * Starts the child in a new network namespace with loopback up (or in this one
   * with `sharedNetns`, or in the one of process `netnsOf`). `wrap` prefixes the command
   * (e.g. setpriv to drop privileges).
   */
  static async start(
    options: { sharedNetns?: boolean; netnsOf?: number; wrap?: string[] } = {},
  ): Promise<SocketChild> {
    const script = `python3 -u ${CHILD}`;
    // `sh -c exec` searches PATH past entries the dropped user may not read.
    const command = options.netnsOf
      ? [
          'nsenter',
          '-t',
          String(options.netnsOf),
          '-n',
          ...(options.wrap ?? []),
          'sh',
          '-c',
          `exec ${script}`,
        ]
      : options.sharedNetns
        ? [...(options.wrap ?? []), 'sh', '-c', `exec ${script}`]
        : [
            'unshare',
            '-n',
            'sh',
            '-c',
            `ip link set lo up && exec ${[...(options.wrap ?? []), script].join(' ')}`,
          ];
    const [file, ...args] = command as [string, ...string[]];
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`socket child exited (${code}): ${stderr}`)));
    });
    const ready = JSON.parse(first) as { pid: number };
    return new SocketChild(child, lines, ready.pid);
  }

  /** Commands already sent; each waits for the one before (see run). */
  private pending: Promise<unknown> = Promise.resolve();

  /**
   * Sends one command and returns its result; a failed command throws its message.
   * Commands go one at a time: replies are matched to commands by order, and two
   * listeners waiting at once would both take the first reply.
   */
  run<T = Json>(command: Json): Promise<T> {
    const result = this.pending.then(() => this.exchange<T>(command));
    this.pending = result.catch(() => undefined);
    return result;
  }

  private async exchange<T>(command: Json): Promise<T> {
    const reply = new Promise<string>((resolve) => this.lines.once('line', resolve));
    this.process.stdin.write(`${JSON.stringify(command)}\n`);
    const parsed = JSON.parse(await reply) as { ok: boolean; result: T; error?: string };
    if (!parsed.ok) throw new Error(`socket child: ${parsed.error}`);
    return parsed.result;
  }

  /** Runs knetstat in the child's network namespace. */
  knetstat(args: string[], options: { wrap?: string[]; env?: NodeJS.ProcessEnv } = {}) {
    const result = spawnSync(
      'nsenter',
      ['-t', String(this.pid), '-n', ...(options.wrap ?? []), process.execPath, CLI, ...args],
      { encoding: 'utf8', env: options.env ?? process.env },
    );
    return { stdout: result.stdout, stderr: result.stderr, status: result.status };
  }

  /**
   * The library's collectSockets (dist/) run in the child's network namespace, for tests
   * that check the library and not only the CLI.
   */
  collect(settings: Json = {}, options: { wrap?: string[] } = {}): Collection {
    const stdout = execFileSync(
      'nsenter',
      [
        '-t',
        String(this.pid),
        '-n',
        ...(options.wrap ?? []),
        process.execPath,
        COLLECT_IN_NETNS,
        JSON.stringify(settings),
      ],
      // A collection that hangs fails its test rather than the whole run.
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
    );
    return JSON.parse(stdout) as Collection;
  }

  /** A file of /proc/sys as the child's network namespace has it (e.g. net/ipv4/...). */
  sysctl(name: string): string {
    return inNetns(this.pid, ['cat', `/proc/sys/${name}`]).trim();
  }

  /** Sets a per-namespace sysctl in the child's network namespace only. */
  setSysctl(name: string, value: string | number): void {
    inNetns(this.pid, ['sh', '-c', `echo ${value} > /proc/sys/${name}`]);
  }

  /** /proc/net/<table> as the child's namespace has it. */
  procNet(table: 'tcp' | 'tcp6' | 'udp' | 'udp6'): string {
    return readFileSync(`/proc/${this.pid}/net/${table}`, 'utf8');
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null) return;
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    this.process.stdin.end();
    this.process.kill('SIGTERM');
    await exited;
  }
}

/** Runs a command in the network namespace of `pid` and returns stdout. */
export function inNetns(pid: number, command: string[]): string {
  return execFileSync('nsenter', ['-t', String(pid), '-n', ...command], { encoding: 'utf8' });
}
