/**
 * The id → value table of the BPF passes (options/id-index.ts), against a Map
 * given the same cookies: sequential ones as the kernel counts them, ones past 2^32,
 * ones that share a slot, a cookie set twice.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdIndex } from '../../src/options/id-index.js';

describe('IdIndex', () => {
  it('finds what a Map finds, and -1 for the rest', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 1, max: 100_000 }), fc.integer({ min: 1, max: 2 ** 53 - 1 })), {
          maxLength: 400,
        }),
        fc.array(fc.integer({ min: 0, max: 2 ** 53 - 1 }), { maxLength: 50 }),
        (cookies, probes) => {
          const index = new IdIndex(cookies.length);
          const map = new Map<number, number>();
          cookies.forEach((cookie, i) => {
            index.set(cookie, i * 8);
            map.set(cookie, i * 8);
          });
          expect(index.size).toBe(map.size);
          for (const cookie of [...cookies, ...probes]) expect(index.get(cookie)).toBe(map.get(cookie) ?? -1);
        },
      ),
    );
  });

  it('holds 36,000 sequential cookies, as a pass over the bench finds them', () => {
    const index = new IdIndex(36_000);
    for (let i = 0; i < 36_000; i++) index.set(4097 + i, i * 200);
    expect(index.size).toBe(36_000);
    expect(index.get(4097)).toBe(0);
    expect(index.get(4097 + 35_999)).toBe(35_999 * 200);
    expect(index.get(4096)).toBe(-1);
  });

  it('is made again from its arrays, as the reader thread hands them over', () => {
    const index = new IdIndex(100);
    for (let i = 1; i <= 100; i++) index.set(i * 2 ** 32 + i, i);
    const again = new IdIndex(index.arrays());
    expect(again.size).toBe(100);
    for (let i = 1; i <= 100; i++) expect(again.get(i * 2 ** 32 + i)).toBe(i);
    expect(again.get(7)).toBe(-1);
    // Arrays that cannot be an index's: not a power of two, unequal, or fuller than three quarters.
    const { keys, values } = index.arrays();
    expect(() => new IdIndex({ keys: keys.subarray(1), values: values.subarray(1), count: 1 })).toThrow(
      RangeError,
    );
    expect(() => new IdIndex({ keys, values: values.subarray(0, 16), count: 1 })).toThrow(RangeError);
    expect(() => new IdIndex({ keys, values, count: keys.length })).toThrow(RangeError);
  });

  it('refuses what is not a cookie, and more cookies than it was made for', () => {
    const index = new IdIndex(2);
    expect(() => index.set(0, 1)).toThrow(RangeError);
    expect(() => index.set(2 ** 53, 1)).toThrow(RangeError);
    expect(index.get(Number.NaN)).toBe(-1);
    // 16 slots at most three quarters full: 12 ids.
    for (let i = 1; i <= 12; i++) index.set(i, i);
    expect(() => index.set(13, 13)).toThrow(RangeError);
  });
});
