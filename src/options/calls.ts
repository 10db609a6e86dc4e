/**
 * How the reader issues one socket's calls: getsockopt calls into numbered slots, then
 * the close of the duplicate, then `submit`. Two executors share this shape:
 * `DirectCalls` makes each call at once (one system call each), and sys/uring.ts's
 * SocketCallRing queues SOL_SOCKET calls and the close and runs them all in one
 * io_uring_enter at `submit`. The reader is the same code for both.
 */
import { SystemCallError } from '../sys/errors.js';

/** Bytes of one slot: enough for every option of the catalogue (the longest is a name). */
export const SLOT_SIZE = 64;
/** Slots per socket: a cookie and the options, with room to spare. */
export const SLOT_COUNT = 64;

export interface SocketCalls {
  /** getsockopt(fd, level, name) into `slot`. */
  getsockopt(fd: number, level: number, name: number, slot: number): void;
  /** close(fd), after this socket's getsockopt calls. */
  close(fd: number): void;
  /**
   * Runs whatever is still queued and waits for it. Throws a SystemCallError when the
   * batch could not be run; `closeSubmitted` then says whether the close will still
   * happen (true) or the caller must close the fd itself (false).
   */
  submit(): void;
  /** Per slot after submit: the length the kernel wrote, or the negated errno. */
  readonly results: Int32Array;
  /** The bytes of `slot`, valid after submit until the next socket. */
  slot(slot: number): Uint8Array;
  /** After submit: 0, or the negated errno of the close. */
  closeResult: number;
  closeSubmitted: boolean;
  dispose(): void;
}

/** The plain system calls the executors need (the reader's FdAccess provides them). */
export interface DirectCallAccess {
  /** Length written, or the negated errno. */
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, length: Uint32Array): number;
  close(fd: number): void;
}

/** Each call made at once, one system call each. */
export class DirectCalls implements SocketCalls {
  readonly results = new Int32Array(SLOT_COUNT);
  closeResult = 0;
  closeSubmitted = true;
  private readonly memory = new ArrayBuffer(SLOT_COUNT * SLOT_SIZE);
  private readonly slots: Uint8Array[] = [];
  private readonly length = new Uint32Array(1);

  constructor(private readonly access: DirectCallAccess) {
    for (let i = 0; i < SLOT_COUNT; i++)
      this.slots.push(new Uint8Array(this.memory, i * SLOT_SIZE, SLOT_SIZE));
  }

  getsockopt(fd: number, level: number, name: number, slot: number): void {
    this.results[slot] = this.access.getsockopt(fd, level, name, this.slot(slot), this.length);
  }

  /**
   * Linux releases the descriptor even when close fails (EINTR while a lingering socket
   * whose owner closed it meanwhile waits): the failure is recorded, not thrown.
   */
  close(fd: number): void {
    this.closeResult = 0;
    try {
      this.access.close(fd);
    } catch (error) {
      if (!(error instanceof SystemCallError)) throw error;
      this.closeResult = -error.errno;
    }
  }

  submit(): void {}

  slot(slot: number): Uint8Array {
    return this.slots[slot] as Uint8Array;
  }

  dispose(): void {}
}
