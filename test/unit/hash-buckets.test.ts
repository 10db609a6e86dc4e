/** The table that lets a collection share equal objects: buckets, capacity, and the hash words. */
import { describe, expect, it } from 'vitest';
import { HASH_START, HashBuckets, mixHash, valueWord } from '../../src/hash-buckets.js';

describe('HashBuckets', () => {
  it('keeps every value under its hash, colliding ones side by side', () => {
    const kept = new HashBuckets<string>(10, 'stop');
    kept.add(7, 'a');
    kept.add(7, 'b');
    kept.add(8, 'c');
    expect(kept.get(7)).toEqual(['a', 'b']);
    expect(kept.get(8)).toEqual(['c']);
    expect(kept.get(9)).toBeUndefined();
  });

  it("past its capacity keeps no more ('stop') or starts again ('clear')", () => {
    const stopping = new HashBuckets<number>(2, 'stop');
    const clearing = new HashBuckets<number>(2, 'clear');
    for (const table of [stopping, clearing]) for (const n of [1, 2, 3]) table.add(n, n);
    expect([1, 2, 3].map((n) => stopping.get(n))).toEqual([[1], [2], undefined]);
    expect([1, 2, 3].map((n) => clearing.get(n))).toEqual([undefined, undefined, [3]]);
  });
});

describe('the hash words', () => {
  it('tell apart what the tables compare, and keep equal values equal', () => {
    const words = [0, 1, -1, 2 ** 31, '', 'bbr', 'cubic', null, undefined].map(valueWord);
    expect(new Set(words).size).toBe(words.length);
    expect(valueWord('cubic')).toBe(valueWord(`cu${'bic'}`));
    expect(mixHash(mixHash(HASH_START, 1), 2)).not.toBe(mixHash(mixHash(HASH_START, 2), 1));
  });
});
