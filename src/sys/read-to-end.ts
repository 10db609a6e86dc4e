/**
 * Reading a stream to its end into one buffer: for BPF iterators, whose output can be
 * megabytes and comes a few pages per read(2). No koffi here: the iterator reader thread
 * (iterator-thread.ts) loads only this.
 */
import { readSync } from 'node:fs';

/** The least room a read is given: a page, more than any one record. */
const MIN_READ = 4096;

/**
 * Everything `fd` gives until end of file, read into one buffer of about `expectedBytes`
 * (doubled when it is more): no second copy of the stream. The buffer owns its memory,
 * so that it can be handed to another thread.
 */
export function readToEnd(fd: number, expectedBytes: number): Uint8Array {
  let buffer = new Uint8Array(Math.max(expectedBytes, MIN_READ));
  let filled = 0;
  for (;;) {
    if (buffer.length - filled < MIN_READ) {
      const bigger = new Uint8Array(buffer.length * 2);
      bigger.set(buffer.subarray(0, filled));
      buffer = bigger;
    }
    const got = readSync(fd, buffer, filled, buffer.length - filled, null);
    if (got === 0) break;
    filled += got;
  }
  return buffer.subarray(0, filled);
}
