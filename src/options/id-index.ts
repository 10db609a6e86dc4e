/** An index's contents, as moved between threads (options/record-index.ts). */
export interface IdIndexArrays {
  /** The ids by slot, 0 where empty; a power of two of slots. */
  keys: Float64Array;
  values: Int32Array;
  count: number;
}

/** Whether `count` ids fit `slots` slots, at most three quarters full. */
function fits(count: number, slots: number): boolean {
  return count * 4 <= slots * 3;
}

/**
 * Positive integer id → int value, for tens of thousands of ids at a time (socket
 * cookies → BPF records, socket inodes → sockets): an open-addressing table in two
 * typed arrays, made in one go. A Map of as many numbers costs more to build than the
 * BPF pass's whole read, and its entries are objects the collector copies.
 *
 * The ids are safe integers from 1 up (the kernel's sk_cookie counts from 1, and a socket
 * inode is never 0), so 0 marks an empty slot.
 */
export class IdIndex {
  private readonly keys: Float64Array;
  private readonly values: Int32Array;
  private readonly mask: number;
  private count: number;

  /**
   * Room for `capacity` ids, the table kept at most three quarters full; or the contents
   * of one made elsewhere. (Not emptier: its arrays are fresh memory, and on the VM of
   * bench/RESULTS.md each page of it costs 12.7 µs the first time it is touched, more
   * than the probes a fuller table adds.)
   */
  constructor(capacity: number | IdIndexArrays) {
    if (typeof capacity === 'number') {
      let slots = 16;
      while (!fits(capacity, slots)) slots *= 2;
      this.keys = new Float64Array(slots);
      this.values = new Int32Array(slots);
      this.count = 0;
    } else {
      const { keys, values, count } = capacity;
      const slots = keys.length;
      if (slots < 16 || (slots & (slots - 1)) !== 0 || values.length !== slots || !fits(count, slots))
        throw new RangeError('not the arrays of an IdIndex');
      this.keys = keys;
      this.values = values;
      this.count = count;
    }
    this.mask = this.keys.length - 1;
  }

  /** The contents, for another thread to make the same index of (they are not copied). */
  arrays(): IdIndexArrays {
    return { keys: this.keys, values: this.values, count: this.count };
  }

  get size(): number {
    return this.count;
  }

  /** Fibonacci hashing of the id's two 32-bit halves folded together. */
  private slotOf(id: number): number {
    const low = id % 4294967296;
    const high = (id - low) / 4294967296;
    return Math.imul(low ^ Math.imul(high, 0x85ebca6b), 0x9e3779b1) & this.mask;
  }

  /** Sets the value of `id` (a positive safe integer); a second set replaces the first. */
  set(id: number, value: number): void {
    if (!(id > 0 && Number.isSafeInteger(id))) throw new RangeError(`not an id: ${id}`);
    for (let slot = this.slotOf(id); ; slot = (slot + 1) & this.mask) {
      const key = this.keys[slot] as number;
      if (key === id) {
        this.values[slot] = value;
        return;
      }
      if (key === 0) {
        if (!fits(this.count + 1, this.keys.length)) throw new RangeError('the index is full');
        this.keys[slot] = id;
        this.values[slot] = value;
        this.count++;
        return;
      }
    }
  }

  /** The value of `id`, or -1. */
  get(id: number): number {
    if (!(id > 0)) return -1;
    for (let slot = this.slotOf(id); ; slot = (slot + 1) & this.mask) {
      const key = this.keys[slot] as number;
      if (key === id) return this.values[slot] as number;
      if (key === 0) return -1;
    }
  }
}
