/**
 * The thread that reads a BPF iterator while the main thread does other work (the
 * sock_diag dump): the kernel runs the iterator's program inside these read(2) calls,
 * on the second CPU. Its code is iterator-reader-main.ts; this is the side that starts
 * it and waits for it.
 *
 * The main thread waits with Atomics.wait and takes the result with
 * receiveMessageOnPort: both synchronous, so the collection stays a synchronous call
 * and nothing goes through the event loop. The thread reads its own duplicate of the
 * fd and closes it itself, so that the caller may close its fd whenever it likes: no
 * fd number the thread reads can be reused meanwhile for something else (a duplicated
 * socket).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { MessagePort, Worker } from 'node:worker_threads';
import type { RecordIndexArrays } from '../options/record-index.js';
import { builtFile } from './built-file.js';
import * as libc from './libc.js';

/** What the thread is given. */
export interface ReaderJob {
  /** The thread's own fd of the iterator, which it closes. */
  fd: number;
  expectedBytes: number;
  /**
   * Where the stream is fixed-size records led by a socket cookie (the options pass),
   * their size: the thread also indexes them (options/record-index.ts), in the time the
   * main thread would otherwise have to do it in.
   */
  recordSize?: number;
  /** [0] turns 1 once the reply is on `port` (or the thread could not even load). */
  done: Int32Array;
  port: MessagePort;
  /** The URL of iterator-reader-main.js. */
  entry: string;
}

/** What the thread read: the bytes, and their index where it was asked to make one (all moved, not copied). */
export interface ThreadRead {
  bytes: Uint8Array;
  index?: RecordIndexArrays;
}

/** What the thread answers: what it read, or why it could not read. */
export type ReaderReply = ThreadRead | { error: string; code?: string };

/**
 * Loads the reader's module; should that fail (a dist/ half replaced), still closes the
 * fd and wakes the main thread, which would otherwise wait out its whole patience.
 */
const BOOTSTRAP = `
const { workerData: job } = require('node:worker_threads');
import(job.entry).catch((error) => {
  try { require('node:fs').closeSync(job.fd); } catch {}
  job.port.postMessage({ error: 'the iterator reader did not load: ' + (error && error.message) });
  Atomics.store(job.done, 0, 1);
  Atomics.notify(job.done, 0);
});
`;

/** worker_threads, loaded when a thread is first started: a small listing starts none. */
function workerThreads(): typeof import('node:worker_threads') {
  return createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
}

/** Set once a thread has failed: the rest of the process reads iterators itself. */
let threadsFailed = false;

/** Whether a reader thread can be of use: a second CPU, the built file, and no failure yet. */
export function iteratorThreadsUsable(): boolean {
  return !threadsFailed && availableParallelism() > 1 && existsSync(builtFile('sys/iterator-reader-main.js'));
}

export class IteratorThread {
  private constructor(
    private readonly worker: Worker,
    private readonly done: Int32Array,
    private readonly port: MessagePort,
  ) {}

  /**
   * Starts reading `fd` to its end on a thread (see iteratorThreadsUsable first), and
   * indexing it as records of `recordSize` bytes where that is given.
   */
  static start(fd: number, expectedBytes: number, recordSize?: number): IteratorThread {
    const { MessageChannel, Worker } = workerThreads();
    const done = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    const own = libc.duplicateFd(fd);
    const job: ReaderJob = {
      fd: own,
      expectedBytes,
      ...(recordSize === undefined ? {} : { recordSize }),
      done,
      port: port2,
      entry: pathToFileURL(builtFile('sys/iterator-reader-main.js')).href,
    };
    let worker: Worker;
    try {
      worker = new Worker(BOOTSTRAP, {
        eval: true,
        workerData: job,
        transferList: [port2],
        // Its own heap need hold no more than the buffer it fills.
        resourceLimits: { maxYoungGenerationSizeMb: 4 },
        stdout: false,
        stderr: false,
        // It closes the fd it was given, which Node would otherwise warn of on stderr.
        trackUnmanagedFds: false,
      });
    } catch (error) {
      libc.close(own);
      port1.close();
      throw error;
    }
    // An error the thread could not report comes as an event, and an event nobody
    // listens to would end the process once its event loop runs (watch mode). The wait
    // learns of it as a missing reply.
    worker.on('error', () => {});
    // Never what keeps the process alive: a wait that gave up leaves it to finish alone.
    worker.unref();
    return new IteratorThread(worker, done, port1);
  }

  /**
   * What the thread read, waiting for it at most `timeoutMs`; throws with the thread's
   * reason, or when it did not finish in time (then later iterators are read without one).
   */
  wait(timeoutMs: number): ThreadRead {
    const outcome = Atomics.wait(this.done, 0, 0, timeoutMs);
    const received = workerThreads().receiveMessageOnPort(this.port);
    this.port.close();
    if (received === undefined) {
      threadsFailed = true;
      void this.worker.terminate();
      throw new Error(
        outcome === 'timed-out'
          ? `the iterator reader thread did not finish in ${timeoutMs} ms`
          : 'the iterator reader thread ended without a reply',
      );
    }
    const reply = received.message as ReaderReply;
    if ('error' in reply) {
      if (reply.code === undefined) threadsFailed = true;
      throw Object.assign(new Error(reply.error), { code: reply.code });
    }
    return reply;
  }
}
