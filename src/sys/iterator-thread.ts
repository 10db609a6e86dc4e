/**
 * The thread that reads a BPF iterator while the main thread does other work (the
 * sock_diag dump): the kernel runs the iterator's program inside these read(2) calls,
 * on the second CPU. Its entry point is iterator-reader-main.ts; this is the side that
 * starts it and waits for it.
 *
 * The main thread waits with Atomics.wait and takes the result with
 * receiveMessageOnPort: both synchronous, so the collection stays a synchronous call
 * and nothing goes through the event loop.
 */
import { existsSync } from 'node:fs';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { builtFile } from './built-file.js';

/** What the thread is given. */
export interface ReaderJob {
  fd: number;
  expectedBytes: number;
  /** [0] turns 1 once the reply is on `port`. */
  done: Int32Array;
  port: MessagePort;
}

/** What the thread answers: the bytes (moved, not copied), or why it could not read. */
export type ReaderReply = { bytes: Uint8Array } | { error: string; code?: string };

export class IteratorThread {
  private constructor(
    private readonly worker: Worker,
    private readonly done: Int32Array,
    private readonly port: MessagePort,
  ) {}

  /** Starts reading `fd` (which the caller keeps open until `wait` returns) on a thread. */
  static start(fd: number, expectedBytes: number): IteratorThread {
    const file = builtFile('sys/iterator-reader-main.js');
    // A thread that cannot load its file would never answer: the wait would last its
    // whole patience.
    if (!existsSync(file)) throw new Error(`the iterator reader is not built (${file})`);
    const done = new Int32Array(new SharedArrayBuffer(4));
    const { port1, port2 } = new MessageChannel();
    const job: ReaderJob = { fd, expectedBytes, done, port: port2 };
    const worker = new Worker(file, {
      workerData: job,
      transferList: [port2],
      // Its own heap need hold no more than the buffer it fills.
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
      stdout: false,
      stderr: false,
    });
    // Never what keeps the process alive: a wait that gave up leaves it to finish alone.
    worker.unref();
    return new IteratorThread(worker, done, port1);
  }

  /**
   * What the thread read, waiting for it at most `timeoutMs`; throws with the thread's
   * reason, or when it did not finish in time.
   */
  wait(timeoutMs: number): Uint8Array {
    const outcome = Atomics.wait(this.done, 0, 0, timeoutMs);
    const received = receiveMessageOnPort(this.port);
    this.port.close();
    if (received === undefined) {
      void this.worker.terminate();
      throw new Error(
        outcome === 'timed-out'
          ? `the iterator reader thread did not finish in ${timeoutMs} ms`
          : 'the iterator reader thread ended without a reply',
      );
    }
    const reply = received.message as ReaderReply;
    if ('error' in reply) throw Object.assign(new Error(reply.error), { code: reply.code });
    return reply.bytes;
  }
}
