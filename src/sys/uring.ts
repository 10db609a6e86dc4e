/**
 * An io_uring that runs one socket's SOL_SOCKET getsockopt calls and the close of its
 * duplicate in a single io_uring_enter, instead of one system call each.
 *
 * Why: on a kernel with page-table isolation every system call costs about a microsecond
 * before it does any work, and knetstat makes tens per socket. SOCKET_URING_OP_GETSOCKOPT
 * (Linux 6.7) is getsockopt(2) itself: io_uring_cmd_sock calls do_sock_getsockopt, the
 * function behind the system call, with the same level, name and buffer, so nothing
 * about the inspected socket differs. The kernel accepts only SOL_SOCKET there; other
 * levels stay plain getsockopt calls.
 *
 * The ring is ours alone, used from this thread only, and every batch is submitted and
 * waited for before the caller goes on: nothing is left in flight between batches.
 * Entries are not linked: each holds its own reference to the socket's file from the
 * moment it is issued, so the close in the same batch cannot pull the socket away from
 * a getsockopt, whatever the order in which they run.
 */
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import { SystemCallError } from './errors.js';
import * as libc from './libc.js';

const IORING_OP_CLOSE = 19;
const IORING_OP_URING_CMD = 46;
const SOCKET_URING_OP_GETSOCKOPT = 2;
const IORING_ENTER_GETEVENTS = 1;
/** Submit every entry even when one fails early, so that the close is always submitted. */
const IORING_SETUP_SUBMIT_ALL = 1 << 7;
const IORING_OFF_SQ_RING = 0;
const IORING_OFF_CQ_RING = 0x8000000;
const IORING_OFF_SQES = 0x10000000;
const SQE_SIZE = 64;
const CQE_SIZE = 16;
const EINTR = 4;

/** Bytes of each option value slot; the reader's largest option (a name) fits in 64. */
const RING_SLOT_SIZE = 64;
/** Submission entries: enough for one socket's SOL_SOCKET options, its cookie and its close. */
const RING_ENTRIES = 64;
const CLOSE_TAG = 0xffff;

/** Offsets the kernel reports in struct io_uring_params (two io_*ring_offsets). */
interface RingOffsets {
  head: number;
  tail: number;
  mask: number;
  entries: number;
  /** sq: the index array; cq: the completion entries. */
  data: number;
}

/** struct io_sqring_offsets at byte 40 of the params (array at +24), io_cqring_offsets at 80 (cqes at +20). */
function ringOffsets(params: DataView, at: number, dataAt: number): RingOffsets {
  return {
    head: params.getUint32(at, true),
    tail: params.getUint32(at + 4, true),
    mask: params.getUint32(at + 8, true),
    entries: params.getUint32(at + 12, true),
    data: params.getUint32(at + dataAt, true),
  };
}

/** Why the ring cannot be used here, for the reader's notes and tests. */
export class RingUnavailable extends Error {
  override readonly name = 'RingUnavailable';
}

export class SocketCallRing {
  private readonly mappings: libc.MappedMemory[];
  private readonly sqWords: Uint32Array;
  private readonly sqHeadIndex: number;
  private readonly sqTailIndex: number;
  private readonly sqMask: number;
  private readonly cqWords: Int32Array;
  private readonly cqHeadIndex: number;
  private readonly cqTailIndex: number;
  private readonly cqMask: number;
  private readonly cqeBase: number;
  private readonly sqes: Uint32Array;
  private readonly slotAddressLow: Uint32Array;
  private readonly slotAddressHigh: Uint32Array;
  private readonly slotMemory: ArrayBuffer;
  /** Per slot: the length written, or the negated errno, after submit. */
  readonly results = new Int32Array(RING_ENTRIES);
  /** The close's result after submit: 0, or the negated errno. */
  closeResult = 0;
  /** After a failed submit: whether the batch, and so its close, reached the kernel. */
  closeSubmitted = false;
  private queued = 0;
  private closed = false;
  private readonly slotViews: Uint8Array[] = [];

  private constructor(
    private readonly fd: number,
    params: DataView,
  ) {
    const sq = ringOffsets(params, 40, 24);
    const cq = ringOffsets(params, 80, 20);
    const sqEntries = params.getUint32(0, true);
    const cqEntries = params.getUint32(4, true);
    this.mappings = [];
    try {
      const sqRing = libc.mapShared(fd, sq.data + sqEntries * 4, IORING_OFF_SQ_RING);
      this.mappings.push(sqRing);
      const cqRing = libc.mapShared(fd, cq.data + cqEntries * CQE_SIZE, IORING_OFF_CQ_RING);
      this.mappings.push(cqRing);
      const sqes = libc.mapShared(fd, sqEntries * SQE_SIZE, IORING_OFF_SQES);
      this.mappings.push(sqes);
      const slots = libc.mapAnonymous(RING_ENTRIES * RING_SLOT_SIZE);
      this.mappings.push(slots);

      this.sqWords = new Uint32Array(sqRing.bytes);
      this.sqHeadIndex = sq.head / 4;
      this.sqTailIndex = sq.tail / 4;
      this.sqMask = this.sqWords[sq.mask / 4] as number;
      // The index array maps ring positions to entries one to one, once for all.
      for (let i = 0; i < sqEntries; i++) this.sqWords[sq.data / 4 + i] = i;
      this.cqWords = new Int32Array(cqRing.bytes);
      this.cqHeadIndex = cq.head / 4;
      this.cqTailIndex = cq.tail / 4;
      this.cqMask = this.cqWords[cq.mask / 4] as number;
      this.cqeBase = cq.data / 4;
      this.sqes = new Uint32Array(sqes.bytes);
      this.slotMemory = slots.bytes;
      this.slotAddressLow = new Uint32Array(RING_ENTRIES);
      this.slotAddressHigh = new Uint32Array(RING_ENTRIES);
      for (let i = 0; i < RING_ENTRIES; i++) {
        const address = slots.address + BigInt(i * RING_SLOT_SIZE);
        this.slotAddressLow[i] = Number(address & 0xffffffffn);
        this.slotAddressHigh[i] = Number(address >> 32n);
        this.slotViews.push(new Uint8Array(this.slotMemory, i * RING_SLOT_SIZE, RING_SLOT_SIZE));
      }
    } catch (error) {
      this.release();
      throw error;
    }
  }

  /**
   * A ring whose getsockopt works on this kernel, proven on a socket of our own; or a
   * RingUnavailable saying why not (io_uring disabled by sysctl or seccomp, a kernel
   * before 6.7, a big-endian host).
   */
  static open(): SocketCallRing | RingUnavailable {
    if (!hostIsLittleEndian) return new RingUnavailable('io_uring entries are written little-endian');
    const params = new Uint8Array(120);
    const view = new DataView(params.buffer);
    view.setUint32(8, IORING_SETUP_SUBMIT_ALL, true);
    let fd: number;
    try {
      fd = libc.ioUringSetup(RING_ENTRIES, params);
    } catch (error) {
      if (error instanceof SystemCallError) return new RingUnavailable(`io_uring_setup: ${error.code}`);
      throw error;
    }
    let ring: SocketCallRing;
    try {
      ring = new SocketCallRing(fd, view);
    } catch (error) {
      libc.close(fd);
      if (error instanceof SystemCallError) return new RingUnavailable(`${error.syscall}: ${error.code}`);
      throw error;
    }
    const problem = ring.selfTest();
    if (problem) {
      ring.dispose();
      return new RingUnavailable(problem);
    }
    return ring;
  }

  /** getsockopt(SO_TYPE) and close on a UDP socket of our own: null when both worked as they should. */
  private selfTest(): string | null {
    const SO_TYPE = 3;
    const probe = libc.socket(libc.AF_INET, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC, 0);
    this.getsockopt(probe, libc.SOL_SOCKET, SO_TYPE, 0);
    this.close(probe);
    try {
      this.submit();
    } catch (error) {
      libc.close(probe);
      if (error instanceof SystemCallError) return `io_uring_enter: ${error.code}`;
      throw error;
    }
    if (this.closeResult !== 0) {
      libc.close(probe);
      return `io_uring close: errno ${-this.closeResult}`;
    }
    const length = this.results[0] as number;
    if (length < 0) return `io_uring getsockopt: errno ${-length} (Linux 6.7 or later is needed)`;
    const type = new DataView(this.slotMemory).getInt32(0, true);
    return length === 4 && type === libc.SOCK_DGRAM ? null : 'io_uring getsockopt returned a wrong value';
  }

  /** The bytes of `slot`, valid after submit until the next batch. */
  slot(slot: number): Uint8Array {
    return this.slotViews[slot] as Uint8Array;
  }

  /** Queues getsockopt(fd, level, name) into `slot` (0 ≤ slot < 64). Level must be SOL_SOCKET. */
  getsockopt(fd: number, level: number, name: number, slot: number): void {
    const w = this.nextEntry();
    const sqes = this.sqes;
    sqes[w] = IORING_OP_URING_CMD;
    sqes[w + 1] = fd;
    sqes[w + 2] = SOCKET_URING_OP_GETSOCKOPT;
    sqes[w + 4] = level;
    sqes[w + 5] = name;
    sqes[w + 8] = slot;
    sqes[w + 11] = RING_SLOT_SIZE;
    sqes[w + 12] = this.slotAddressLow[slot] as number;
    sqes[w + 13] = this.slotAddressHigh[slot] as number;
    this.results[slot] = 0;
  }

  /** Queues close(fd). */
  close(fd: number): void {
    const w = this.nextEntry();
    this.sqes[w] = IORING_OP_CLOSE;
    this.sqes[w + 1] = fd;
    this.sqes[w + 8] = CLOSE_TAG;
  }

  private nextEntry(): number {
    if (this.closed) throw new Error('the ring was disposed');
    if (this.queued === RING_ENTRIES) throw new Error('too many calls queued in one batch');
    const tail = (this.sqWords[this.sqTailIndex] as number) + this.queued;
    const w = ((tail & this.sqMask) * SQE_SIZE) / 4;
    this.sqes.fill(0, w, w + SQE_SIZE / 4);
    this.queued++;
    return w;
  }

  /**
   * Submits the queued calls and waits until every one has completed; their results are
   * then in `results` and `closeResult`. Throws a SystemCallError when io_uring_enter
   * fails other than by EINTR; `closeSubmitted` then tells whether the close was handed
   * to the kernel (it will run) or not (the caller must close the fd itself).
   */
  submit(): void {
    const count = this.queued;
    const tail = ((this.sqWords[this.sqTailIndex] as number) + count) >>> 0;
    // The entries are written before the tail moves; the system call that follows
    // orders both for the kernel.
    this.sqWords[this.sqTailIndex] = tail;
    this.queued = 0;
    let completed = 0;
    this.closeResult = 0;
    for (;;) {
      completed += this.reap();
      const unsubmitted = (tail - (this.sqWords[this.sqHeadIndex] as number)) >>> 0;
      if (unsubmitted === 0 && completed >= count) return;
      const result = libc.ioUringEnter(
        this.fd,
        unsubmitted,
        Math.max(0, count - completed),
        IORING_ENTER_GETEVENTS,
      );
      if (result < 0 && result !== -EINTR) {
        this.closeSubmitted = unsubmitted === 0;
        throw new SystemCallError('io_uring_enter', -result);
      }
    }
  }

  private reap(): number {
    const cq = this.cqWords;
    let head = cq[this.cqHeadIndex] as number;
    const tail = cq[this.cqTailIndex] as number;
    let count = 0;
    while (head !== tail) {
      const at = this.cqeBase + (((head & this.cqMask) * CQE_SIZE) >> 2);
      const tag = cq[at] as number;
      const result = cq[at + 2] as number;
      if (tag === CLOSE_TAG) this.closeResult = result;
      else this.results[tag] = result;
      head = (head + 1) | 0;
      count++;
    }
    cq[this.cqHeadIndex] = head;
    return count;
  }

  /** Closes the ring; calls never submitted are dropped with it. */
  dispose(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    libc.close(this.fd);
  }

  private release(): void {
    for (const memory of this.mappings.splice(0)) libc.unmap(memory);
  }
}
