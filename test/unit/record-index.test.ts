/**
 * The index of a BPF pass's records (options/record-index.ts), made on the reader
 * thread: cookies to record offsets as an IdIndex would map them, and content classes
 * that are equal exactly when two records hold the same bytes after their cookies.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdIndex } from '../../src/options/id-index.js';
import { indexRecords, KindTable } from '../../src/options/record-index.js';

const SIZE = 24; // a cookie and four words

/** Records of SIZE bytes: each a cookie (host order) and four int32 values. */
function records(rows: ReadonlyArray<{ cookie: bigint; values: readonly number[] }>): Uint8Array {
  const bytes = new Uint8Array(rows.length * SIZE);
  const view = new DataView(bytes.buffer);
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  rows.forEach(({ cookie, values }, n) => {
    view.setBigUint64(n * SIZE, cookie, le);
    values.forEach((v, i) => {
      view.setInt32(n * SIZE + 8 + 4 * i, v, le);
    });
  });
  return bytes;
}

describe('indexRecords', () => {
  it('classes records by their values alone, the first of each kind naming it', () => {
    const bytes = records([
      { cookie: 5n, values: [1, 2, 3, 4] },
      { cookie: 6n, values: [1, 2, 3, 4] },
      { cookie: 7n, values: [1, 2, 3, 5] },
      { cookie: 8n, values: [1, 2, 3, 5] },
      { cookie: 9n, values: [1, 2, 3, 4] },
    ]);
    const { cookies, classes } = indexRecords(bytes, SIZE);
    expect([...classes]).toEqual([0, 0, 2, 2, 0]);
    const index = new IdIndex(cookies);
    expect([5, 6, 7, 8, 9].map((c) => index.get(c))).toEqual([0, 24, 48, 72, 96]);
    expect(index.get(10)).toBe(-1);
  });

  it('agrees with comparing every pair of records, on any values', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: -2, max: 2 }), { minLength: 4, maxLength: 4 }), {
          maxLength: 60,
        }),
        (rows) => {
          const bytes = records(rows.map((values, n) => ({ cookie: BigInt(n + 1), values })));
          const { classes } = indexRecords(bytes, SIZE);
          rows.forEach((values, n) => {
            const first = rows.findIndex((other) => other.every((v, i) => v === values[i]));
            expect(classes[n]).toBe(first);
          });
        },
      ),
    );
  });

  it('keeps telling kinds apart as its table of them grows (thousands of kinds)', () => {
    // 3,000 kinds, each record written twice, the second time under another cookie.
    const rows = Array.from({ length: 6000 }, (_, n) => ({
      cookie: BigInt(n + 1),
      values: [n % 3000, (n % 3000) * 7, -1, 0],
    }));
    const { classes } = indexRecords(records(rows), SIZE);
    for (let n = 0; n < 3000; n++) {
      expect(classes[n]).toBe(n);
      expect(classes[n + 3000]).toBe(n);
    }
  });

  it('tells records apart by their values when their hashes collide', () => {
    // Every record given the same hash: only the comparison of values separates them.
    const rows = [
      { cookie: 1n, values: [1, 2, 3, 4] },
      { cookie: 2n, values: [1, 2, 3, 5] },
      { cookie: 3n, values: [1, 2, 3, 4] },
      { cookie: 4n, values: [9, 2, 3, 5] },
      { cookie: 5n, values: [1, 2, 3, 5] },
    ];
    const words = new Int32Array(records(rows).buffer);
    const kinds = new KindTable();
    expect(rows.map((_, n) => kinds.firstOf(words, SIZE / 4, n, 42))).toEqual([0, 1, 0, 3, 1]);
  });

  it('leaves out cookie 0, cookies past 2^53 and a partial record; a cookie seen twice keeps its last record', () => {
    const bytes = records([
      { cookie: 0n, values: [1, 1, 1, 1] },
      { cookie: 2n ** 53n, values: [1, 1, 1, 1] },
      { cookie: 2n ** 53n - 1n, values: [2, 2, 2, 2] },
      { cookie: 3n, values: [3, 3, 3, 3] },
      { cookie: 3n, values: [4, 4, 4, 4] },
    ]);
    const withTail = new Uint8Array(bytes.length + 10);
    withTail.set(bytes);
    const { cookies, classes } = indexRecords(withTail, SIZE);
    expect(classes.length).toBe(5);
    const index = new IdIndex(cookies);
    expect(index.size).toBe(2);
    expect(index.get(2 ** 53 - 1)).toBe(2 * SIZE);
    expect(index.get(3)).toBe(4 * SIZE);
  });

  it('reads records that do not start on a word boundary from an aligned copy', () => {
    const bytes = records([
      { cookie: 11n, values: [9, 8, 7, 6] },
      { cookie: 12n, values: [9, 8, 7, 6] },
    ]);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const { cookies, classes } = indexRecords(shifted.subarray(1), SIZE);
    expect([...classes]).toEqual([0, 0]);
    expect(new IdIndex(cookies).get(12)).toBe(SIZE);
  });

  it('classes records of a cookie alone (nothing to hash) as one kind', () => {
    const bytes = new Uint8Array(8 * 4);
    new DataView(bytes.buffer).setUint32(8, 5, true);
    expect([...indexRecords(bytes, 8).classes]).toEqual([0, 0, 0, 0]);
  });

  it('refuses a size that is not whole 8-byte words', () => {
    expect(() => indexRecords(new Uint8Array(48), 12)).toThrow(RangeError);
    expect(() => indexRecords(new Uint8Array(48), 0)).toThrow(RangeError);
  });
});
