/** The system calls the option reader makes, as an interface so that tests can inject failures and reused fds. */
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
