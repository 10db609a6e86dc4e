/**
 * Reads one job row (see jobs.ts): per owner pidfd_getfd, proof that the duplicate is the
 * socket we enumerated (its cookie, or its inode where the listing has none: the pid or
 * fd may have been reused since the /proc scan), the getsockopt calls of its option
 * list, and the close — microseconds from first to last. The duplicate is a bare number
 * that never reaches net, dgram or libuv, which would set O_NONBLOCK on the open file
 * description the owner shares.
 */
import type { OptionValue } from '../model.js';
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import { isSystemCallError, SystemCallError } from '../sys/errors.js';
import { DirectCalls, type SocketCalls } from './calls.js';
import { type OptionSpec, SOL_SOCKET } from './catalogue.js';
import { decodeOption } from './decode.js';
import type { FdAccess } from './fd-access.js';
import { isKnown, type ReadJobs, type SpecLists, UNREADABLE_REASONS, type UnreadableReason } from './jobs.js';

const SO_COOKIE = 57;
/** Slot 0 holds the socket cookie; option i of a list goes to slot i + 1. */
const COOKIE_SLOT = 0;

interface Failure {
  reason: UnreadableReason;
  message: string;
}

function explainFailure(error: SystemCallError, pid: number): Failure {
  if (error.code === 'EPERM' || error.code === 'EACCES') {
    return {
      reason: 'not-permitted',
      message: `not permitted to inspect pid ${pid} (${error.syscall}: ${error.code}); run as root or grant CAP_SYS_PTRACE`,
    };
  }
  if (error.code === 'ENOSYS') {
    return {
      reason: 'unsupported',
      message: `${error.syscall} is not available: Linux 5.6 or later is needed`,
    };
  }
  return { reason: 'failed', message: `${error.syscall} failed for pid ${pid}: ${error.code}` };
}

export class RowReader {
  /** Calls made one system call each: options at other levels than SOL_SOCKET, always. */
  private readonly direct: DirectCalls;
  /** SOL_SOCKET calls and closes: an io_uring when there is one, else `direct`. */
  private batch: SocketCalls | undefined;
  /** After readRow: the values of a row that was read (undefined where unknown or known from the dump). */
  readonly values: Array<OptionValue | undefined> = [];
  /** After readRow: why a row was not read. */
  message = '';

  constructor(
    private readonly access: FdAccess,
    private readonly specs: SpecLists,
  ) {
    this.direct = new DirectCalls(access);
  }

  /** The executor for SOL_SOCKET calls and closes, the io_uring opened on first use. */
  private batchCalls(): SocketCalls {
    if (this.batch === undefined) {
      const ring = this.access.openRing?.() ?? new Error('no io_uring requested');
      // Where io_uring is refused, plain calls read the same values.
      this.batch = ring instanceof Error ? this.direct : ring;
    }
    return this.batch;
  }

  /** After the io_uring failed: plain system calls from now on. */
  private abandonRing(): void {
    if (this.batch && this.batch !== this.direct) this.batch.dispose();
    this.batch = this.direct;
  }

  /**
   * Reads row `row` of `jobs`: 0 when its options were read (they are in `values`), else
   * 1 + the index of the reason in UNREADABLE_REASONS (the words are in `message`).
   */
  readRow(jobs: ReadJobs, row: number): number {
    let failure: Failure = { reason: 'vanished', message: 'the socket was closed during the scan' };
    const end = jobs.ownerStart[row + 1] as number;
    for (let o = jobs.ownerStart[row] as number; o < end; o++) {
      const pid = jobs.ownerPid[o] as number;
      const pidfd = jobs.ownerPidfd[o] as number;
      if (pidfd < 0) {
        // The process exited since the scan: nothing to explain.
        const error = new SystemCallError('pidfd_open', -pidfd);
        if (error.code !== 'ESRCH') failure = explainFailure(error, pid);
        continue;
      }
      let duplicate: number;
      try {
        duplicate = this.access.pidfdGetfd(pidfd, jobs.ownerFd[o] as number);
      } catch (error) {
        if (!(error instanceof SystemCallError)) throw error;
        if (!isSystemCallError(error, 'ESRCH', 'EBADF')) failure = explainFailure(error, pid);
        continue;
      }
      const outcome = this.readDuplicate(duplicate, jobs, row, pid, jobs.ownerFd[o] as number);
      if (outcome === null) return 0;
      failure = outcome;
    }
    this.message = failure.message;
    return 1 + UNREADABLE_REASONS.indexOf(failure.reason);
  }

  /**
   * Proves that `fd` is the row's socket, reads every option of its list that the dump did
   * not give and closes the duplicate: options at SOL_SOCKET and the close through the
   * batch executor, the rest at once. On success the values are in `values`.
   */
  private readDuplicate(
    fd: number,
    jobs: ReadJobs,
    row: number,
    pid: number,
    ownerFd: number,
  ): Failure | null {
    const direct = this.direct;
    const hasCookie = jobs.hasCookie[row] === 1;
    if (!hasCookie) {
      const expected = jobs.inode[row] as number;
      let inode: number;
      try {
        inode = this.access.inodeOf(fd);
      } catch (error) {
        direct.close(fd);
        if (!(error instanceof SystemCallError)) throw error;
        return explainFailure(error, pid);
      }
      if (inode !== expected) {
        direct.close(fd);
        return reused(pid, ownerFd, inode === 0 ? 'not a socket' : `inode ${inode}`, `${expected}`);
      }
    }
    const batch = this.batchCalls();
    const specs = this.specs.get(jobs.key[row] as number);
    let closeQueued = false;
    try {
      if (hasCookie) batch.getsockopt(fd, SOL_SOCKET, SO_COOKIE, COOKIE_SLOT);
      for (let i = 0; i < specs.length; i++) {
        if (isKnown(jobs, row, i)) continue;
        const spec = specs[i] as OptionSpec;
        (spec.level === SOL_SOCKET ? batch : direct).getsockopt(fd, spec.level, spec.optname, i + 1);
      }
      batch.close(fd);
      closeQueued = true;
      batch.submit();
    } catch (error) {
      // Whatever happens, the duplicate is closed exactly once: by the kernel if the
      // batch reached it, else here, after dropping what was queued with the ring.
      const handedOver = closeQueued && batch.closeSubmitted;
      if (batch !== direct) this.abandonRing();
      if (!handedOver) direct.close(fd);
      if (!(error instanceof SystemCallError)) throw error;
      return { reason: 'failed', message: `${error.syscall} failed: ${error.code}` };
    }
    if (hasCookie) {
      const cookie = cookieRead(batch);
      const expected = jobs.cookie[row] as bigint;
      if (cookie !== expected)
        return reused(
          pid,
          ownerFd,
          cookie === null ? 'not a socket' : `cookie ${cookie}`,
          `cookie ${expected}`,
        );
    }
    const values = this.values;
    values.length = specs.length;
    for (let i = 0; i < specs.length; i++) {
      values[i] = undefined;
      if (isKnown(jobs, row, i)) continue;
      const spec = specs[i] as OptionSpec;
      const from = spec.level === SOL_SOCKET ? batch : direct;
      const written = from.results[i + 1] as number;
      // ENOPROTOOPT, EINVAL, EOPNOTSUPP, ENOTCONN: the kernel lacks the option or it does not apply.
      if (written >= 0) values[i] = decodeOption(spec.decoding, from.slot(i + 1), written);
    }
    return null;
  }

  /** Closes the io_uring, if one was opened. */
  close(): void {
    if (this.batch && this.batch !== this.direct) this.batch.dispose();
    this.batch = undefined;
  }
}

/** The SO_COOKIE value in the cookie slot, or null when the call failed (no socket). */
function cookieRead(batch: SocketCalls): bigint | null {
  if ((batch.results[COOKIE_SLOT] as number) !== 8) return null;
  const bytes = batch.slot(COOKIE_SLOT);
  return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, hostIsLittleEndian);
}

function reused(pid: number, fd: number, now: string, was: string): Failure {
  return {
    reason: 'reused',
    message: `fd ${fd} of pid ${pid} now holds another file (${now}, not ${was}): not read`,
  };
}
