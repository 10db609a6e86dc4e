/**
 * The helper thread's entry (see helper-thread.ts): for each job, claims chunks of rows
 * until none are left, reads them with the same RowReader as the main thread, and posts
 * each chunk's results back on the port it was given.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { directFdAccess, libcFdAccess } from './fd-access.js';
import type { HelperChunk, HelperJob } from './helper-thread.js';
import { CHUNK_ROWS, HELPER_DONE, HELPER_FAILED, NEXT_ROW } from './helper-thread.js';
import { SpecLists } from './jobs.js';
import { RowReader } from './row-reader.js';

const { port, ready } = workerData as { port: MessagePort; ready: Int32Array };

function run(job: HelperJob): void {
  const control = new Int32Array(job.control);
  const { jobs } = job;
  const specs = new SpecLists(job.only ? new Set(job.only) : undefined);
  const reader = new RowReader(job.ioUring ? libcFdAccess : directFdAccess, specs);
  try {
    for (;;) {
      const start = Atomics.add(control, NEXT_ROW, CHUNK_ROWS);
      if (start >= jobs.count) break;
      const end = Math.min(start + CHUNK_ROWS, jobs.count);
      const chunk: HelperChunk = {
        id: job.id,
        start,
        end,
        status: new Uint8Array(end - start),
        messages: [],
        values: [],
      };
      for (let row = start; row < end; row++) {
        const status = reader.readRow(jobs, row);
        chunk.status[row - start] = status;
        if (status === 0) for (const value of reader.values) chunk.values.push(value);
        else chunk.messages[row - start] = reader.message;
      }
      port.postMessage(chunk);
      Atomics.add(control, HELPER_DONE, end - start);
      Atomics.notify(control, HELPER_DONE);
    }
  } catch (error) {
    port.postMessage({
      id: job.id,
      start: 0,
      end: 0,
      status: new Uint8Array(0),
      messages: [],
      values: [],
      error: String(error),
    });
    Atomics.store(control, HELPER_FAILED, 1);
    Atomics.notify(control, HELPER_DONE);
  } finally {
    reader.close();
  }
}

parentPort?.on('message', run);
Atomics.store(ready, 0, 1);
Atomics.notify(ready, 0);
