/**
 * Options for many sockets, read on two threads. Reading a socket's options is a
 * pidfd_getfd, an fstat, a close and a getsockopt per option: system calls and little
 * else, independent from socket to socket. With tens of thousands of sockets and a spare
 * CPU, a worker thread reading half of them halves the longest phase of a listing.
 *
 * The worker runs the same OptionReader (reader-worker.ts); only the sockets and what was
 * read cross the thread boundary, as JSON text, which is much cheaper than structured
 * cloning tens of thousands of small objects. collectSockets stays synchronous: the main
 * thread reads its share, then sleeps in Atomics.wait until the worker is done and takes
 * its answer with receiveMessageOnPort, which needs no event loop.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { SocketOptions, SocketRecord } from '../model.js';
import type { OptionReader, OptionReadSummary } from './reader.js';

/** Below this many sockets to read, a thread costs more to start than it saves. */
export const PARALLEL_THRESHOLD = 4000;
/** Slots of the shared signal: done flag, and sockets read so far (a heartbeat). */
export const DONE = 0;
export const PROGRESS = 1;
/**
 * The worker is given up on when it reads nothing for this long (it could not start, say:
 * its 'error' event would need the event loop this thread is not running); its share is
 * then read here.
 */
const STALL_LIMIT_MS = 10_000;

/** What the worker needs of a socket to read its options. */
type ShareItem = Pick<
  SocketRecord,
  | 'protocol'
  | 'family'
  | 'state'
  | 'inode'
  | 'minisocket'
  | 'processes'
  | 'memInfo'
  | 'optionFacts'
  | 'options'
  | 'optionsError'
>;

/** Per socket: kept (false = vanished during the scan), the options, and why they are missing. */
type ShareResult = [kept: 0 | 1, options: SocketOptions | null, error: string | null];

/** Reads a share of sockets with `reader`; used on both threads. */
export function readShare(reader: OptionReader, sockets: ShareItem[], onEach?: () => void): ShareResult[] {
  const results: ShareResult[] = [];
  for (const socket of sockets) {
    const kept = reader.read(socket as SocketRecord);
    results.push([kept ? 1 : 0, socket.options, socket.optionsError ?? null]);
    onEach?.();
  }
  return results;
}

function toShareItem(s: SocketRecord): ShareItem {
  return {
    protocol: s.protocol,
    family: s.family,
    state: s.state,
    inode: s.inode,
    minisocket: s.minisocket,
    processes: s.processes,
    memInfo: s.memInfo,
    optionFacts: s.optionFacts,
    options: null,
  };
}

export function addSummary(into: OptionReadSummary, from: OptionReadSummary): void {
  into.read += from.read;
  for (const key of Object.keys(into.unreadable) as Array<keyof OptionReadSummary['unreadable']>) {
    into.unreadable[key] += from.unreadable[key];
  }
}

const WORKER_FILE = new URL('./reader-worker.js', import.meta.url);

/** A started worker, booting (loading koffi) while the caller scans /proc. */
export class OptionReadHelper {
  /** Why the worker's share had to be read on the calling thread, if it had to. */
  failure: string | null = null;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly signal: Int32Array,
  ) {}

  /**
   * A helper thread when it can pay off: more than one CPU and the compiled worker next
   * to this module (it is not, when the sources run untranspiled, e.g. under a test runner).
   */
  static start(only: ReadonlySet<string> | undefined): OptionReadHelper | null {
    if (availableParallelism() < 2 || !existsSync(fileURLToPath(WORKER_FILE))) return null;
    const signal = new Int32Array(new SharedArrayBuffer(8));
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(WORKER_FILE, {
      workerData: { port: port2, signal, only: only ? [...only] : null },
      transferList: [port2],
      // Not the caller's node flags: e.g. --input-type would keep the worker from starting.
      execArgv: [],
    });
    worker.unref();
    // A worker that dies before answering is noticed by read() (no progress) and its share
    // read on this thread; the event itself only arrives later, when nobody is waiting.
    worker.on('error', () => {});
    return new OptionReadHelper(worker, port1, signal);
  }

  /**
   * Reads `sockets`: half of those that take system calls (full sockets with an owner) on
   * the worker, the rest here, then waits for the worker. Fills each socket's options and
   * returns which to keep, in order.
   */
  read(reader: OptionReader, sockets: SocketRecord[], summary: OptionReadSummary): boolean[] {
    const costly = sockets.filter((s) => !s.minisocket && s.processes.length > 0);
    const theirs = costly.slice(Math.floor(costly.length / 2));
    const onWorker = new Set(theirs);
    this.port.postMessage(JSON.stringify(theirs.map(toShareItem)));
    const kept = new Map<SocketRecord, boolean>();
    for (const s of sockets) if (!onWorker.has(s)) kept.set(s, reader.read(s));
    const reply = this.wait();
    if ('error' in reply) {
      // The worker could not run or stopped answering: read its share here.
      this.failure = reply.error;
      for (const s of theirs) kept.set(s, reader.read(s));
    } else {
      addSummary(summary, reply.summary);
      const results = JSON.parse(reply.results) as ShareResult[];
      theirs.forEach((socket, i) => {
        const [keep, options, error] = results[i] as ShareResult;
        socket.options = options;
        if (error === null) delete socket.optionsError;
        else socket.optionsError = error;
        kept.set(socket, keep === 1);
      });
    }
    return sockets.map((s) => kept.get(s) === true);
  }

  private wait(): { results: string; summary: OptionReadSummary } | { error: string } {
    let progress = Atomics.load(this.signal, PROGRESS);
    let stalledSince = Date.now();
    while (Atomics.load(this.signal, DONE) === 0) {
      Atomics.wait(this.signal, DONE, 0, 1000);
      const now = Atomics.load(this.signal, PROGRESS);
      if (now !== progress) {
        progress = now;
        stalledSince = Date.now();
      } else if (Date.now() - stalledSince > STALL_LIMIT_MS) {
        return { error: `the option reader thread made no progress for ${STALL_LIMIT_MS / 1000} s` };
      }
    }
    const received = receiveMessageOnPort(this.port);
    if (!received) return { error: 'the option reader thread finished without an answer' };
    return received.message;
  }

  /** Ends the worker if it is still there (it ends by itself once it has answered). */
  stop(): void {
    this.port.close();
    void this.worker.terminate();
  }
}

/** Whether a listing this size is worth a second thread. */
export function worthAHelper(sockets: readonly SocketRecord[], threads: number | undefined): boolean {
  if (threads !== undefined) return threads > 1;
  let full = 0;
  for (const s of sockets) if (!s.minisocket) full++;
  return full >= PARALLEL_THRESHOLD;
}
