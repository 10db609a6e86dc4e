/**
 * The thread that reads a BPF iterator during the dump (sys/iterator-thread.ts), on
 * plain files: what it reads arrives whole on the main thread, and a read that fails
 * comes back as an error with its errno name rather than as a wait to the deadline.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { indexRecords } from '../../src/options/record-index.js';
import { IteratorThread } from '../../src/sys/iterator-thread.js';
import { readToEnd } from '../../src/sys/read-to-end.js';

const dir = mkdtempSync(join(tmpdir(), 'knetstat-thread-'));
afterAll(() => rmSync(dir, { recursive: true }));

function fileOf(bytes: Uint8Array): number {
  const path = join(dir, `f${Math.random()}`);
  writeFileSync(path, bytes);
  return openSync(path, 'r');
}

describe('reading to the end', () => {
  // More than the 4096-byte least read and the guess, so that the buffer grows.
  const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff);

  it('reads everything however small the guess, into a buffer of its own', () => {
    for (const guess of [0, 100, 70_000, 1 << 20]) {
      const fd = fileOf(bytes);
      const read = readToEnd(fd, guess);
      closeSync(fd);
      expect(Buffer.from(read).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  it('on the thread: the same bytes, moved to this one', () => {
    const fd = fileOf(bytes);
    const thread = IteratorThread.start(fd, 1000);
    const read = thread.wait(20_000);
    closeSync(fd);
    expect(Buffer.from(read.bytes).equals(Buffer.from(bytes))).toBe(true);
    expect(read.index).toBeUndefined(); // not asked for
    // An empty stream is an empty result, not a failure.
    const empty = fileOf(new Uint8Array(0));
    expect(IteratorThread.start(empty, 10).wait(20_000).bytes.byteLength).toBe(0);
    closeSync(empty);
  });

  it('on the thread: its own fd, so that the caller may close its own at once', () => {
    const fd = fileOf(bytes);
    const thread = IteratorThread.start(fd, 1000);
    closeSync(fd);
    expect(Buffer.from(thread.wait(20_000).bytes).equals(Buffer.from(bytes))).toBe(true);
  });

  it('on the thread: records indexed there as they would be here', () => {
    // 70,000 bytes: 1,093 whole 64-byte records and a partial one, which is left out;
    // each led by a cookie the index takes (1 ... 1,093, in host order).
    const records = bytes.slice();
    const view = new DataView(records.buffer);
    const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    for (let n = 0; (n + 1) * 64 <= records.length; n++) view.setBigUint64(n * 64, BigInt(n + 1), le);
    const fd = fileOf(records);
    const read = IteratorThread.start(fd, 1000, 64).wait(20_000);
    closeSync(fd);
    expect(Buffer.from(read.bytes).equals(Buffer.from(records))).toBe(true);
    const here = indexRecords(records, 64);
    expect(here.cookies.count).toBe(1093);
    expect(read.index?.classes).toEqual(here.classes);
    expect(read.index?.cookies.count).toBe(here.cookies.count);
    expect(read.index?.cookies.keys).toEqual(here.cookies.keys);
    expect(read.index?.cookies.values).toEqual(here.cookies.values);
  });

  it('on the thread: records it cannot index are an error, not a wait', () => {
    const fd = fileOf(bytes);
    const thread = IteratorThread.start(fd, 1000, 12);
    closeSync(fd);
    expect(() => thread.wait(20_000)).toThrow(/not a record size: 12/);
  });

  it('on the thread: a read that fails is an error with its code', () => {
    // A directory opens but cannot be read.
    const fd = openSync(dir, 'r');
    const thread = IteratorThread.start(fd, 1000);
    expect(() => thread.wait(20_000)).toThrow(expect.objectContaining({ code: 'EISDIR' }));
    closeSync(fd);
  });
});
