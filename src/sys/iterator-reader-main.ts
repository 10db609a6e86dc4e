/**
 * The iterator reader thread (see iterator-thread.ts): reads its fd to the end, closes
 * it, indexes the records where asked, moves it all to the main thread, and wakes it,
 * whatever happened.
 */
import { closeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { indexRecords } from '../options/record-index.js';
import type { ReaderJob, ReaderReply, ThreadRead } from './iterator-thread.js';
import { readToEnd } from './read-to-end.js';

const job = workerData as ReaderJob;

/** The bytes, their index where asked, and the buffers to move with them. */
function readAndIndex(): { reply: ThreadRead; transfer: ArrayBuffer[] } {
  let bytes: Uint8Array;
  try {
    bytes = readToEnd(job.fd, job.expectedBytes);
  } finally {
    closeSync(job.fd);
  }
  const transfer = [bytes.buffer as ArrayBuffer];
  if (job.recordSize === undefined) return { reply: { bytes }, transfer };
  const index = indexRecords(bytes, job.recordSize);
  const { cookies, classes } = index;
  transfer.push(cookies.keys.buffer as ArrayBuffer, cookies.values.buffer as ArrayBuffer);
  transfer.push(classes.buffer as ArrayBuffer);
  return { reply: { bytes, index }, transfer };
}

try {
  let reply: ReaderReply;
  let transfer: ArrayBuffer[] = [];
  try {
    ({ reply, transfer } = readAndIndex());
  } catch (error) {
    const { message, code } = error as NodeJS.ErrnoException;
    reply = code === undefined ? { error: message } : { error: message, code };
  }
  job.port.postMessage(reply, transfer);
  job.port.close();
} finally {
  Atomics.store(job.done, 0, 1);
  Atomics.notify(job.done, 0);
}
