/**
 * The iterator reader thread (see iterator-thread.ts): reads its fd to the end, closes
 * it, moves the bytes to the main thread, and wakes it, whatever happened.
 */
import { closeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import type { ReaderJob, ReaderReply } from './iterator-thread.js';
import { readToEnd } from './read-to-end.js';

const job = workerData as ReaderJob;
try {
  let reply: ReaderReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const bytes = readToEnd(job.fd, job.expectedBytes);
    reply = { bytes };
    transfer = [bytes.buffer as ArrayBuffer];
  } catch (error) {
    const { message, code } = error as NodeJS.ErrnoException;
    reply = code === undefined ? { error: message } : { error: message, code };
  } finally {
    closeSync(job.fd);
  }
  job.port.postMessage(reply, transfer);
  job.port.close();
} finally {
  Atomics.store(job.done, 0, 1);
  Atomics.notify(job.done, 0);
}
