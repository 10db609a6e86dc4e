/**
 * Values kept by a 32-bit hash of what they were made from, so that a collection makes
 * one object where thousands of sockets would have equal ones (dump facts, options
 * objects, options settled alike). A bucket holds every value whose hash collided; the
 * caller tells them apart by comparing what the hash was made of.
 */

/** FNV-1a's start and step, over 32-bit words rather than bytes. */
export const HASH_START = 0x811c9dc5;
export function mixHash(hash: number, word: number): number {
  return Math.imul(hash ^ word, 0x01000193);
}

/**
 * A value's word in a hash: a number by its low 32 bits, a string by its length and end
 * characters, null and undefined apart. Collisions are harmless (see above).
 */
export function valueWord(value: number | string | null | undefined): number {
  if (typeof value === 'number') return value | 0;
  if (typeof value === 'string')
    return value.length === 0
      ? 0x5f3759df
      : (value.length << 16) ^ value.charCodeAt(0) ^ (value.charCodeAt(value.length - 1) << 8);
  return value === null ? 0x2545f491 : 0x9e3779b9;
}

export class HashBuckets<T> {
  private readonly buckets = new Map<number, T[]>();
  private count = 0;

  /**
   * Keeps at most `capacity` values; past that, `'stop'` keeps no more (for a table
   * that lives as long as one collection), `'clear'` starts again (for one that lives
   * as long as the process).
   */
  constructor(
    private readonly capacity: number,
    private readonly whenFull: 'stop' | 'clear',
  ) {}

  /** The values kept under `hash`, for the caller to find its own among. */
  get(hash: number): readonly T[] | undefined {
    return this.buckets.get(hash);
  }

  add(hash: number, value: T): void {
    if (this.count >= this.capacity) {
      if (this.whenFull === 'stop') return;
      this.buckets.clear();
      this.count = 0;
    }
    const bucket = this.buckets.get(hash);
    if (bucket) bucket.push(value);
    else this.buckets.set(hash, [value]);
    this.count++;
  }
}
