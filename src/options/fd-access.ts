/** The system calls the option reader makes, as an interface so that tests can inject failures and reused fds. */
import { SystemCallError } from '../sys/errors.js';
import * as libc from '../sys/libc.js';
import { SocketCallRing } from '../sys/uring.js';
import type { DirectCallAccess, SocketCalls } from './calls.js';

export interface FdAccess extends DirectCallAccess {
  pidfdOpen(pid: number): number;
  pidfdGetfd(pidfd: number, fd: number): number;
  /** The socket inode of `fd`, or 0 when it is no socket. */
  inodeOf(fd: number): number;
  /**
   * An io_uring for the SOL_SOCKET calls and the close, or why there is none; absent
   * = each call is its own system call.
   */
  openRing?(): SocketCalls | Error;
}

/** Plain system calls, one per call. */
export const directFdAccess: FdAccess = {
  pidfdOpen: libc.pidfdOpen,
  pidfdGetfd: libc.pidfdGetfd,
  inodeOf: libc.fstatSocketInode,
  getsockopt: libc.getsockoptRaw,
  close: libc.close,
};

/**
 * The default: plain system calls, with the SOL_SOCKET calls and the close of each
 * duplicate batched in an io_uring where the kernel allows it.
 */
export const libcFdAccess: FdAccess = { ...directFdAccess, openRing: SocketCallRing.open };

/** One pidfd per process, opened on first need and kept until `close`. */
export class PidfdTable {
  /** pid → its pidfd, or the negated errno of pidfd_open. */
  private readonly pidfds = new Map<number, number>();

  constructor(private readonly access: FdAccess) {}

  /** The process's pidfd, or the negated errno of pidfd_open (ESRCH: it exited). */
  pidfdOf(pid: number): number {
    let pidfd = this.pidfds.get(pid);
    if (pidfd === undefined) {
      try {
        pidfd = this.access.pidfdOpen(pid);
      } catch (error) {
        if (!(error instanceof SystemCallError)) throw error;
        pidfd = -error.errno;
      }
      this.pidfds.set(pid, pidfd);
    }
    return pidfd;
  }

  close(): void {
    for (const pidfd of this.pidfds.values()) {
      if (pidfd < 0) continue;
      try {
        this.access.close(pidfd);
      } catch {
        // Nothing useful to do: the fd is ours and was open.
      }
    }
    this.pidfds.clear();
  }
}
