/**
 * A second thread that takes a share of the option reading. Nearly all of that time is
 * system calls (pidfd_getfd and the getsockopt calls io_uring cannot batch), which run
 * in parallel on two CPUs; the threads share the process's fd table, so pidfds and
 * duplicates mean the same on both.
 *
 * Rows are claimed in chunks through an atomic counter, so the main thread never waits
 * for a helper that has not started yet: it simply takes every chunk itself. At the end
 * it waits only for chunks the helper has claimed, and reads again, itself, any row the
 * helper could not finish (reading is side-effect free, so a row read twice is harmless).
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type { ReadJobs } from './jobs.js';

/** Rows per claim: small enough to balance the two threads, large enough to cost nothing. */
export const CHUNK_ROWS = 128;
/** control[NEXT_ROW]: the next row to claim; control[HELPER_DONE]: rows the helper finished. */
export const NEXT_ROW = 0;
export const HELPER_DONE = 1;
export const HELPER_FAILED = 2;
const CONTROL_WORDS = 4;
/** Below this many rows a second thread is not worth a message. */
export const MIN_HELPER_ROWS = 2 * CHUNK_ROWS;
/** How long the main thread waits for a claimed chunk before reading it itself. */
const STALL_MS = 10_000;

/** How to read: the same on both threads. */
export interface ReadMode {
  /** Option names to read, or null for the whole catalogue. */
  only: string[] | null;
  ioUring: boolean;
}

export interface HelperJob extends ReadMode {
  id: number;
  jobs: ReadJobs;
  control: SharedArrayBuffer;
}

/** One chunk's results, as the helper posts them. */
export interface HelperChunk {
  id: number;
  start: number;
  end: number;
  /** Per row: 0 = read, else 1 + reason index. */
  status: Uint8Array;
  /** By row - start, for rows not read. */
  messages: Array<string | undefined>;
  /** The values of the rows read, one list length each, in row order. */
  values: unknown[];
  error?: string;
}

let helper: ReadHelper | null | undefined;
let nextJobId = 1;

export class ReadHelper {
  private alive = true;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    /** Word 0 becomes 1 once the helper listens for jobs. */
    private readonly ready: Int32Array,
  ) {
    worker.on('error', () => {
      this.alive = false;
    });
    worker.on('exit', () => {
      this.alive = false;
    });
  }

  /**
   * The process's helper thread, started on first use (it loads while the main thread
   * lists sockets). None when running from TypeScript sources (tests under vitest),
   * where the worker's module cannot be loaded as is.
   */
  static shared(): ReadHelper | null {
    if (helper === undefined) {
      const script = new URL('./read-worker.js', import.meta.url);
      if (!import.meta.url.endsWith('.js') || availableParallelism() < 2) {
        helper = null;
      } else {
        const { port1, port2 } = new MessageChannel();
        const ready = new Int32Array(new SharedArrayBuffer(4));
        const worker = new Worker(script, { workerData: { port: port2, ready }, transferList: [port2] });
        // An idle helper must not keep the process alive.
        worker.unref();
        port1.unref();
        helper = new ReadHelper(worker, port1, ready);
      }
    }
    return helper?.alive ? helper : null;
  }

  /**
   * Waits up to `timeoutMs` for the helper to listen for jobs; whether it does. Reading
   * never needs this (the main thread takes what the helper does not); tests do, to be
   * sure that the helper takes a share.
   */
  waitUntilReady(timeoutMs: number): boolean {
    Atomics.wait(this.ready, 0, 0, timeoutMs);
    return Atomics.load(this.ready, 0) === 1;
  }

  /**
   * Hands `jobs` to the helper, runs `readChunk` on the main thread for every chunk it
   * claims, then waits for the helper's chunks and passes each to `take`. Returns the
   * rows that nobody finished (the helper failed or stalled), for the caller to read.
   */
  share(
    jobs: ReadJobs,
    mode: ReadMode,
    readChunk: (start: number, end: number) => void,
    take: (chunk: HelperChunk) => void,
  ): number[] {
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
    const id = nextJobId++;
    const job: HelperJob = { id, jobs, ...mode, control: control.buffer as SharedArrayBuffer };
    this.worker.postMessage(job);
    // 1 = finished: by the main thread here, or by the helper as its chunks arrive.
    const finished = new Uint8Array(jobs.count);
    let ownRows = 0;
    for (;;) {
      const start = Atomics.add(control, NEXT_ROW, CHUNK_ROWS);
      if (start >= jobs.count) break;
      const end = Math.min(start + CHUNK_ROWS, jobs.count);
      readChunk(start, end);
      finished.fill(1, start, end);
      ownRows += end - start;
    }
    // Wait for what the helper claimed, as long as it makes progress.
    for (;;) {
      const done = Atomics.load(control, HELPER_DONE);
      if (ownRows + done >= jobs.count || Atomics.load(control, HELPER_FAILED) !== 0) break;
      if (Atomics.wait(control, HELPER_DONE, done, STALL_MS) === 'timed-out') {
        if (Atomics.load(control, HELPER_DONE) === done) break;
      }
    }
    for (let message = receiveMessageOnPort(this.port); message; message = receiveMessageOnPort(this.port)) {
      const chunk = message.message as HelperChunk;
      if (chunk.id !== id || chunk.error !== undefined) continue;
      take(chunk);
      finished.fill(1, chunk.start, chunk.end);
    }
    const leftOver: number[] = [];
    for (let row = 0; row < jobs.count; row++) if (!finished[row]) leftOver.push(row);
    return leftOver;
  }
}
