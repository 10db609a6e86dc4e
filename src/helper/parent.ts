/**
 * The parent's side of the helper process (child.ts): start it, hand it a share of the
 * work, take its answer. Any failure — it could not start, it died, it said something
 * that does not decode — is thrown as a HelperUnavailableError and the caller does that
 * share itself, so a helper can only make knetstat faster, never change what it reports.
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { type ReadJobs, UNREADABLE_REASONS } from '../options/jobs.js';
import { CAP_SYS_PTRACE, effectiveCapabilities } from '../procfs/capabilities.js';
import * as libc from '../sys/libc.js';
import {
  builtFile,
  checkValueColumns,
  DeadlineError,
  expectType,
  PROTOCOL_FINGERPRINT,
  type ReadReply,
  readMessage,
  type ScanReply,
  writeMessage,
} from './protocol.js';

/**
 * child_process, loaded when a helper is first started: most listings start none, and
 * loading it costs each of them about 7 ms.
 */
function spawnProcess(): typeof import('node:child_process').spawn {
  return (createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process')).spawn;
}

/** The helper could not do its share: why, in a few words. */
export class HelperUnavailableError extends Error {}

function unavailable(error: unknown): HelperUnavailableError {
  if (error instanceof HelperUnavailableError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new HelperUnavailableError(message);
}

function checkLength(what: string, actual: number, expected: number): void {
  if (actual !== expected)
    throw new HelperUnavailableError(`the helper's ${what} has ${actual} entries, not ${expected}`);
}

/**
 * How long a helper may keep the parent waiting: to take a request, and for an answer
 * beyond twice the time the parent took for its own share of the same step (see
 * HelperProcess.receive); also the longest pause allowed inside a message once it
 * moves. A helper that is stopped (SIGSTOP, a debugger), starved or stuck in the kernel
 * must not stall knetstat: past this the parent kills it and does its share itself.
 * (The scan's shares are cut by open fds, which only Linux 6.2+ tells cheaply; before,
 * by process count, the helper's share can be larger than the parent's, and a helper
 * that needs more than this beyond it is killed: slower, never a different listing.)
 */
export const HELPER_PATIENCE_MS = 5000;

/**
 * Room for a whole request in the pipe (1 MiB, the default pipe-max-size), so that the
 * parent's write returns at once even while the helper is still starting; a scan
 * request carries 4 bytes a socket, a read request about 30 a row.
 */
const REQUEST_PIPE_SIZE = 1 << 20;

export class HelperProcess {
  private closed = false;
  /** When the last request went out (performance.now()). */
  private requestedAt = 0;

  private constructor(
    private readonly requests: number,
    private readonly replies: number,
    private readonly child: ChildProcess,
    private readonly patienceMs: number,
  ) {}

  /**
   * Starts the helper with a pipe each way on its fds 3 and 4: Node running child.js, or
   * `command` (tests: helpers that fail in chosen ways). `patienceMs` is
   * HELPER_PATIENCE_MS but for tests.
   */
  static start(command?: readonly string[], patienceMs = HELPER_PATIENCE_MS): HelperProcess {
    if (!(patienceMs > 0 && Number.isFinite(patienceMs)))
      throw new HelperUnavailableError(`a patience of ${patienceMs} ms`);
    let ours: number[] = [];
    let theirs: number[] = [];
    try {
      const [requestRead, requestWrite] = libc.pipe();
      theirs.push(requestRead);
      ours.push(requestWrite);
      const [replyRead, replyWrite] = libc.pipe();
      theirs.push(replyWrite);
      ours.push(replyRead);
      // Our ends only (each end is its own open file description): the helper blocks on
      // its reads and writes as it should, while we wait with a deadline (see receive).
      libc.setNonBlocking(requestWrite);
      libc.setNonBlocking(replyRead);
      // A smaller pipe only means a large request waits for the helper to take it.
      libc.setPipeSize(requestWrite, REQUEST_PIPE_SIZE);
      const [file, ...args] = command ?? [process.execPath, builtFile('helper/child.js')];
      if (file === undefined) throw new HelperUnavailableError('no helper command');
      const child = spawnProcess()(file, args, {
        stdio: ['ignore', 'ignore', 'ignore', requestRead, replyWrite],
      });
      // A helper that fails to start closes its pipe ends: the parent reads the end of the
      // pipe where its reply should be, and does the work itself.
      child.on('error', () => {});
      // spawn reports a program it could not run (ENOENT, EACCES) only as that later event,
      // but leaves no pid.
      if (child.pid === undefined) throw new HelperUnavailableError(`could not start ${file}`);
      child.unref();
      const helper = new HelperProcess(requestWrite, replyRead, child, patienceMs);
      ours = [];
      return helper;
    } catch (error) {
      throw unavailable(error);
    } finally {
      for (const fd of [...theirs, ...ours]) closeSync(fd);
      theirs = [];
    }
  }

  /** The helper's pid (it may have exited already). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** After a deadline passed: the helper is killed, so that it does no more. */
  private giveUp(what: string, since: number): HelperUnavailableError {
    this.child.kill('SIGKILL');
    this.close();
    const seconds = ((performance.now() - since) / 1000).toFixed(1);
    return new HelperUnavailableError(`the helper did not ${what} in ${seconds} s, and was stopped`);
  }

  private send(message: Parameters<typeof writeMessage>[1], step: string): void {
    if (this.closed) throw new HelperUnavailableError('the helper was closed');
    const start = performance.now();
    try {
      writeMessage(this.requests, message, {
        deadline: start + this.patienceMs,
        progressMs: this.patienceMs,
      });
    } catch (error) {
      if (error instanceof DeadlineError) throw this.giveUp(`take its request for ${step}`, start);
      if ((error as NodeJS.ErrnoException).code === 'EPIPE')
        throw new HelperUnavailableError('the helper ended before it was asked (EPIPE)');
      throw unavailable(error);
    }
    this.requestedAt = performance.now();
  }

  /**
   * The helper's answer, waited for at most twice as long again as the parent has been
   * busy with its own share since asking (the helper's share is as large), plus the
   * patience.
   */
  private receive<T extends { type: string }>(type: T['type'], step: string): T {
    if (this.closed) throw new HelperUnavailableError('the helper was closed');
    const now = performance.now();
    const limit = this.patienceMs + 2 * (now - this.requestedAt);
    let message: unknown;
    try {
      message = readMessage(this.replies, { deadline: now + limit, progressMs: this.patienceMs });
    } catch (error) {
      if (error instanceof DeadlineError) throw this.giveUp(`answer for ${step}`, now);
      throw unavailable(error);
    }
    if (message === null) throw new HelperUnavailableError('the helper ended without answering');
    try {
      return expectType<T>(message, type);
    } catch (error) {
      throw unavailable(error);
    }
  }

  /** Asks for the fds of `pids` that hold one of the `wanted` sockets (inodes). */
  requestScan(procRoot: string, pids: readonly number[], wanted: Iterable<number>): void {
    // sock_diag's inodes are 32 bits; anything else would be cut silently.
    const inodes = Uint32Array.from(wanted, (inode) => {
      if (!(Number.isInteger(inode) && inode >= 0 && inode <= 0xffffffff))
        throw new HelperUnavailableError(`an inode ${inode} that is not 32 bits`);
      return inode;
    });
    this.send(
      {
        type: 'scan',
        fingerprint: PROTOCOL_FINGERPRINT,
        procRoot,
        pids: Int32Array.from(pids),
        wanted: inodes,
      },
      'its processes',
    );
  }

  /**
   * The helper's scan of `pids`, checked whole before any of it is used: typed columns
   * of equal length, only the processes asked for, names as strings.
   */
  receiveScan(pids: readonly number[]): ScanReply {
    const reply = this.receive<ScanReply>('scanned', 'its processes');
    const bad = (what: string): never => {
      throw new HelperUnavailableError(`the helper sent ${what}`);
    };
    if (!(reply.pid instanceof Int32Array) || !(reply.fd instanceof Int32Array)) bad('a bad pid or fd list');
    if (!(reply.inode instanceof Float64Array)) bad('a bad inode list');
    if (!(reply.commandPid instanceof Int32Array) || !Array.isArray(reply.commands))
      bad('a bad command list');
    checkLength('fd list', reply.fd.length, reply.pid.length);
    checkLength('inode list', reply.inode.length, reply.pid.length);
    checkLength('command list', reply.commands.length, reply.commandPid.length);
    if (!Number.isSafeInteger(reply.unreadableProcesses) || reply.unreadableProcesses < 0)
      bad('a bad count of unreadable processes');
    const asked = new Set(pids);
    for (const pid of reply.pid) if (!asked.has(pid)) bad(`an owner pid ${pid} it was not asked about`);
    for (const inode of reply.inode)
      if (!Number.isSafeInteger(inode) || inode <= 0) bad(`a bad inode ${inode}`);
    for (const command of reply.commands) if (typeof command !== 'string') bad('a command that is no string');
    return reply;
  }

  requestRead(jobs: ReadJobs, only: readonly string[] | null, ioUring: boolean): void {
    this.send(
      {
        type: 'read',
        fingerprint: PROTOCOL_FINGERPRINT,
        only: only === null ? null : [...only],
        ioUring,
        jobs,
      },
      'its rows',
    );
  }

  /**
   * The helper's answer for `rows` rows, checked whole before any of it is used: every
   * outcome one the parent knows, every value where storeValues could have put it.
   */
  receiveRead(rows: number): ReadReply {
    const reply = this.receive<ReadReply>('values', 'its rows');
    if (!(reply.status instanceof Uint8Array))
      throw new HelperUnavailableError('the helper sent no status list');
    checkLength('status list', reply.status.length, rows);
    checkLength('message list', reply.messages?.length, rows);
    for (let row = 0; row < rows; row++) {
      if ((reply.status[row] as number) > UNREADABLE_REASONS.length)
        throw new HelperUnavailableError(`the helper sent an unknown outcome ${reply.status[row]}`);
      if (typeof reply.messages[row] !== 'string')
        throw new HelperUnavailableError('the helper sent a bad message');
    }
    const problem = reply.values ? checkValueColumns(reply.values, rows) : 'no values';
    if (problem !== null) throw new HelperUnavailableError(`the helper sent ${problem}`);
    return reply;
  }

  /** Ends the conversation: the helper reads the end of its pipe and exits. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.requests);
    closeSync(this.replies);
  }
}

/**
 * Below this many plain system calls (sockets × calls per socket, see
 * plainCallsPerSocket) a helper costs more than it saves: it needs about 0.2 s of a CPU
 * to start, and on a 2-CPU host it competes with V8's own threads. Measured on the
 * bench's VM, medians of 7–9 interleaved runs, with and without a helper: 10,000
 * sockets text (80,000 calls) 942 against 759 ms (an earlier version whose helper also
 * scanned during the dump), JSON (240,000) 1,490 against 1,513; 36,000 sockets text
 * (288,000) 1,919 against 1,901, JSON (864,000) 2,960 against 3,376.
 */
export const HELPER_MIN_CALLS = 400_000;

/** TCP and UDP sockets in use in this network namespace, from /proc/net/sockstat{,6}. */
export function socketsInUse(procRoot: string): number {
  let total = 0;
  for (const file of ['sockstat', 'sockstat6']) {
    let text: string;
    try {
      text = readFileSync(`${procRoot}/net/${file}`, 'latin1');
    } catch {
      continue; // no IPv6
    }
    for (const match of text.matchAll(/^(?:TCP|UDP|TCP6|UDP6): inuse (\d+)/gm)) total += Number(match[1]);
  }
  return total;
}

/**
 * Whether a helper may duplicate whatever this process may: with CAP_SYS_PTRACE, or
 * where Yama does not restrict ptrace (absent, or ptrace_scope 0). Under Yama's scope 1
 * (a common default) a process without the capability reaches only its own
 * descendants, which the helper, a sibling, is not; root without CAP_SYS_PTRACE (a
 * container's default set) is in that case too.
 */
export function mayInspectAnyProcess(): boolean {
  // Yama's scope 3 forbids ptrace access to everyone, CAP_SYS_PTRACE or not.
  if (yamaScope() === '3') return false;
  const effective = effectiveCapabilities();
  if (effective === null) return false;
  if (((effective >> BigInt(CAP_SYS_PTRACE)) & 1n) === 1n) return true;
  const scope = yamaScope();
  // No Yama: same-user processes are reachable from anywhere.
  return scope === undefined || scope === '0';
}

function yamaScope(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'latin1').trim();
  } catch {
    return undefined;
  }
}

/**
 * Whether a helper is worth starting here: a second CPU, enough work (sockets × the plain
 * system calls each needs), and the privilege to share it.
 */
export function helperWorthwhile(procRoot: string, callsPerSocket: number): boolean {
  return (
    availableParallelism() >= 2 &&
    socketsInUse(procRoot) * callsPerSocket >= HELPER_MIN_CALLS &&
    mayInspectAnyProcess()
  );
}

/**
 * Where to cut a list so that the items before the cut weigh about `share` of the whole:
 * an item goes before the cut when less than half of it lies past the share.
 */
export function cutByWeight(weights: ArrayLike<number>, share: number): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i] as number;
  let sum = 0;
  for (let i = 0; i < weights.length; i++) {
    const weight = weights[i] as number;
    if (sum + weight / 2 > total * share) return i;
    sum += weight;
  }
  return weights.length;
}

/**
 * Where to cut the PID list so that the processes before the cut hold about `share` of
 * the open fds (Linux 6.2+ reports a process's fd count as the size of /proc/PID/fd;
 * before that every process counts the same).
 */
export function splitProcesses(procRoot: string, pids: readonly number[], share: number): number {
  const weights = pids.map((pid) => {
    try {
      return statSync(`${procRoot}/${pid}/fd`).size || 1;
    } catch {
      return 0; // exited
    }
  });
  return cutByWeight(weights, share);
}
