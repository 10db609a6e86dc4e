/**
 * Socket cookie → record offset, for the tens of thousands of records of a BPF pass: an
 * open-addressing table in two typed arrays, made in one go. A Map of as many numbers
 * costs more to build than the pass's whole read, and its entries are objects the
 * collector copies.
 *
 * Cookies are the kernel's sk_cookie, counted up from 1, so they are safe integers and 0
 * marks an empty slot.
 */
export class CookieIndex {
  private readonly keys: Float64Array;
  private readonly values: Int32Array;
  private readonly mask: number;
  private count = 0;

  /** Room for `capacity` cookies, the table kept at most half full. */
  constructor(capacity: number) {
    let slots = 16;
    while (slots < capacity * 2) slots *= 2;
    this.keys = new Float64Array(slots);
    this.values = new Int32Array(slots);
    this.mask = slots - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Fibonacci hashing of the cookie's two 32-bit halves folded together. */
  private slotOf(cookie: number): number {
    const low = cookie % 4294967296;
    const high = (cookie - low) / 4294967296;
    return Math.imul(low ^ Math.imul(high, 0x85ebca6b), 0x9e3779b1) & this.mask;
  }

  /** Sets the value of `cookie` (a positive safe integer); a second set replaces the first. */
  set(cookie: number, value: number): void {
    if (!(cookie > 0 && Number.isSafeInteger(cookie))) throw new RangeError(`not a socket cookie: ${cookie}`);
    for (let slot = this.slotOf(cookie); ; slot = (slot + 1) & this.mask) {
      const key = this.keys[slot] as number;
      if (key === cookie) {
        this.values[slot] = value;
        return;
      }
      if (key === 0) {
        if ((this.count + 1) * 2 > this.keys.length) throw new RangeError('the cookie index is full');
        this.keys[slot] = cookie;
        this.values[slot] = value;
        this.count++;
        return;
      }
    }
  }

  /** The value of `cookie`, or -1. */
  get(cookie: number): number {
    if (!(cookie > 0)) return -1;
    for (let slot = this.slotOf(cookie); ; slot = (slot + 1) & this.mask) {
      const key = this.keys[slot] as number;
      if (key === cookie) return this.values[slot] as number;
      if (key === 0) return -1;
    }
  }
}
