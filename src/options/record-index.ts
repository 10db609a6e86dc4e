/**
 * The index of a BPF pass's records (bpf-tcp.ts): which record has which socket cookie,
 * and which records hold the same values. Made on the iterator reader thread, which has
 * read the records while the main thread dumped sock_diag and would otherwise wait, and
 * moved to the main thread with them; made here, by the same code, where there is no
 * thread. Only typed arrays: nothing to copy between threads, nothing for the collector.
 *
 * A record is `size` bytes (a multiple of 8) that start with the socket's cookie, a
 * host-order u64; every record is whole multiples of 4-byte words.
 */
import { HASH_START, mixHash } from '../hash-buckets.js';
import { HIGH_WORD, LOW_WORD } from '../netlink/byte-reader.js';
import { IdIndex, type IdIndexArrays } from './id-index.js';

export interface RecordIndexArrays {
  /** Record offset (in bytes) by cookie. */
  cookies: IdIndexArrays;
  /**
   * By record number (offset / size): the number of the first record whose bytes after
   * the cookie are all the same as this one's. Records of sockets whose options are all
   * alike share one, so that their options are worked out once.
   */
  classes: Int32Array;
}

/** Cookies from 2^53 on (never reached in practice) are not safe integers: those sockets are left to getsockopt. */
const SAFE_HIGH_WORDS = 2 ** 21;

/** The records' 32-bit words: `bytes` itself where it starts on a multiple of 4, else a copy that does. */
function recordWords(bytes: Uint8Array): Int32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : new Uint8Array(bytes);
  return new Int32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 2);
}

/** Indexes the whole records of `size` bytes in `bytes`; a partial one at the end is ignored. */
export function indexRecords(bytes: Uint8Array, size: number): RecordIndexArrays {
  if (!(size >= 8 && size % 8 === 0)) throw new RangeError(`not a record size: ${size}`);
  const words = recordWords(bytes);
  const count = Math.floor(bytes.byteLength / size);
  const step = size >>> 2;
  const cookies = new IdIndex(count);
  const classes = new Int32Array(count);
  const kinds = new KindTable();
  for (let n = 0, w = 0; n < count; n++, w += step) {
    const high = words[w + HIGH_WORD] as number;
    const cookie = (high >>> 0) * 4294967296 + ((words[w + LOW_WORD] as number) >>> 0);
    if (cookie > 0 && high >>> 0 < SAFE_HIGH_WORDS) cookies.set(cookie, n * size);
    let hash = HASH_START;
    for (let i = w + 2, end = w + step; i < end; i++) hash = mixHash(hash, words[i] as number);
    classes[n] = kinds.firstOf(words, step, n, hash | 0); // as the Int32Array keeps it
  }
  return { cookies: cookies.arrays(), classes };
}

/**
 * The first record of each kind (the same values after the cookie) by a hash of those
 * values: open addressing over record numbers (+1, 0 = empty), with the hashes beside
 * them so that only an equal hash costs a comparison of the values. It starts small and
 * doubles: a listing has a few hundred kinds of record more often than thousands, and
 * a table sized for every record would be fresh memory, costly to touch (see IdIndex).
 */
export class KindTable {
  private first = new Int32Array(1024);
  private hashes = new Int32Array(1024);
  private count = 0;

  /** The first record with the values of record `n` (at word n * step), which is `n` itself if it is the first. */
  firstOf(words: Int32Array, step: number, n: number, hash: number): number {
    const mask = this.first.length - 1;
    for (let slot = Math.imul(hash, 0x9e3779b1) & mask; ; slot = (slot + 1) & mask) {
      const first = (this.first[slot] as number) - 1;
      if (first < 0) {
        this.first[slot] = n + 1;
        this.hashes[slot] = hash;
        if (++this.count * 2 > this.first.length) this.grow();
        return n;
      }
      if (this.hashes[slot] === hash && sameValues(words, first * step, n * step, step)) return first;
    }
  }

  private grow(): void {
    const { first, hashes } = this;
    this.first = new Int32Array(first.length * 2);
    this.hashes = new Int32Array(first.length * 2);
    const mask = this.first.length - 1;
    for (let old = 0; old < first.length; old++) {
      if (first[old] === 0) continue;
      const hash = hashes[old] as number;
      let slot = Math.imul(hash, 0x9e3779b1) & mask;
      while (this.first[slot] !== 0) slot = (slot + 1) & mask;
      this.first[slot] = first[old] as number;
      this.hashes[slot] = hash;
    }
  }
}

/** Whether the records at words `a` and `b` (each `step` words) agree after their cookies. */
function sameValues(words: Int32Array, a: number, b: number, step: number): boolean {
  for (let i = 2; i < step; i++) if (words[a + i] !== words[b + i]) return false;
  return true;
}
