/**
 * Reads each socket's options from its owner: pidfd_open once per process, then per
 * socket pidfd_getfd, an fstat to prove the duplicate is the socket we enumerated
 * (the pid or fd may have been reused since the /proc scan), the catalogue's getsockopt
 * calls, and close — microseconds from first to last. The duplicate is a bare number
 * that never reaches net, dgram or libuv, which would set O_NONBLOCK on the open file
 * description the owner shares.
 */
import type { OptionValue, SocketOptions, SocketOwner, SocketRecord } from '../model.js';
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import { isSystemCallError, SystemCallError } from '../sys/errors.js';
import * as libc from '../sys/libc.js';
import { SocketCallRing } from '../sys/uring.js';
import { type DirectCallAccess, DirectCalls, type SocketCalls } from './calls.js';
import { type OptionSpec, optionsFor, type SockDiagSource } from './catalogue.js';
import { decodeOption } from './decode.js';

/** The system calls the reader makes; tests inject failures and reused fds through it. */
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

/** The default: plain system calls, with SOL_SOCKET calls and closes batched in an io_uring where the kernel allows. */
export const libcFdAccess: FdAccess = { ...directFdAccess, openRing: SocketCallRing.open };

/**
 * The value getsockopt would return, as the sock_diag dump reported it, or undefined
 * when the dump did not carry it (then the option is read with getsockopt).
 */
export function valueFromSockDiag(source: SockDiagSource, socket: SocketRecord): OptionValue | undefined {
  const facts = socket.optionFacts;
  switch (source.fact) {
    case 'rcvbuf':
      return socket.memInfo?.rcvbuf;
    case 'sndbuf':
      return socket.memInfo?.sndbuf;
    case 'inetFlags':
      return facts?.inetFlags === undefined ? undefined : (facts.inetFlags >> source.bit) & 1;
    case 'boundInterface':
      // Bound to a device: its name needs getsockopt.
      return facts?.boundInterface === 0 ? '' : undefined;
    default:
      return facts?.[source.fact];
  }
}

/** Why the options of a socket are unknown. */
export type UnreadableReason =
  | 'refused'
  | 'detached'
  | 'no-owner'
  | 'not-permitted'
  | 'unsupported'
  | 'vanished'
  | 'reused'
  | 'failed';

export interface OptionReadSummary {
  read: number;
  unreadable: Record<UnreadableReason, number>;
}

export interface ReadOptionsSettings {
  /** Restrict the read to these option names (for output that needs fewer); undefined = all. */
  only?: ReadonlySet<string>;
  access?: FdAccess;
  /**
   * Why no socket may be duplicated on this host (see procfs/cgroups.ts): then every
   * socket's options stay unknown with this reason, and pidfd_getfd is never called.
   */
  refuseDuplication?: string;
}

type ProcessHandle = { pidfd: number } | { error: SystemCallError };

const SO_COOKIE = 57;
/** Slot 0 holds the socket cookie; option i of a spec list goes to slot i + 1. */
const COOKIE_SLOT = 0;

export class OptionReader {
  private readonly access: FdAccess;
  private readonly only: ReadonlySet<string> | undefined;
  private readonly refuseDuplication: string | undefined;
  private readonly processes = new Map<number, ProcessHandle>();
  /** Calls made one system call each: options at other levels than SOL_SOCKET, always. */
  private readonly direct: DirectCalls;
  /** SOL_SOCKET calls and closes: an io_uring when there is one, else `direct`. */
  private batch: SocketCalls | undefined;
  /** Why the io_uring is not used, once that is known (for tests and diagnostics). */
  ringUnavailable: string | undefined;
  /** By protocol, family and listening (see specsFor): the same few lists for every socket. */
  private readonly specCache: Array<OptionSpec[] | undefined> = [];
  /** An object with every key of a spec list, in order, for readAll to copy. */
  private readonly templates = new Map<readonly OptionSpec[], SocketOptions>();
  /** readAll's values, reused from socket to socket. */
  private readonly values: Array<OptionValue | undefined> = [];
  readonly summary: OptionReadSummary = {
    read: 0,
    unreadable: {
      refused: 0,
      detached: 0,
      'no-owner': 0,
      'not-permitted': 0,
      unsupported: 0,
      vanished: 0,
      reused: 0,
      failed: 0,
    },
  };

  constructor(settings: ReadOptionsSettings = {}) {
    this.access = settings.access ?? libcFdAccess;
    this.only = settings.only;
    this.refuseDuplication = settings.refuseDuplication;
    this.direct = new DirectCalls(this.access);
  }

  /** The executor for SOL_SOCKET calls and closes, the io_uring opened on first use. */
  private batchCalls(): SocketCalls {
    if (this.batch === undefined) {
      const ring = this.access.openRing?.() ?? new Error('no io_uring requested');
      if (ring instanceof Error) {
        this.ringUnavailable = ring.message;
        this.batch = this.direct;
      } else {
        this.batch = ring;
      }
    }
    return this.batch;
  }

  /** After the io_uring failed: plain system calls from now on. */
  private abandonRing(reason: string): void {
    if (this.batch && this.batch !== this.direct) this.batch.dispose();
    this.batch = this.direct;
    this.ringUnavailable = reason;
  }

  private specsFor(socket: SocketRecord): OptionSpec[] {
    const listening = socket.state === 'LISTEN';
    const key = (socket.protocol === 'tcp' ? 4 : 0) + (socket.family === 6 ? 2 : 0) + (listening ? 1 : 0);
    let specs = this.specCache[key];
    if (!specs) {
      specs = optionsFor(socket.protocol, socket.family, listening).filter(
        (o) => !this.only || this.only.has(o.name),
      );
      this.specCache[key] = specs;
    }
    return specs;
  }

  private processHandle(pid: number): ProcessHandle {
    let handle = this.processes.get(pid);
    if (!handle) {
      try {
        handle = { pidfd: this.access.pidfdOpen(pid) };
      } catch (error) {
        if (!(error instanceof SystemCallError)) throw error;
        handle = { error };
      }
      this.processes.set(pid, handle);
    }
    return handle;
  }

  /**
   * Fills `socket.options`, or sets `options: null` and `optionsError`. Returns false when
   * the socket vanished during the scan (every owner closed it or exited): such a socket
   * no longer exists and is skipped quietly.
   */
  read(socket: SocketRecord): boolean {
    if (socket.minisocket) {
      socket.options = null;
      socket.optionsError =
        socket.state === 'TIME_WAIT'
          ? 'TIME_WAIT entries have no options'
          : 'a pending connection request has no options yet';
      return true;
    }
    if (socket.inode === 0) {
      // No struct socket, hence no fd anywhere: a connection still in its listener's accept
      // queue, or one its process already closed (an orphan finishing its FIN exchange).
      // Nobody's privileges would make it readable, so it is not a failure to report.
      this.fail(socket, 'detached', 'no process holds it (not accepted yet, or closed by its process)');
      return true;
    }
    if (socket.processes.length === 0) {
      this.fail(
        socket,
        'no-owner',
        'no visible owner (a kernel socket, or a process this user may not inspect)',
      );
      return true;
    }
    if (this.refuseDuplication !== undefined) {
      this.fail(socket, 'refused', this.refuseDuplication);
      return true;
    }
    let reason: UnreadableReason = 'vanished';
    let message = 'the socket was closed during the scan';
    for (const owner of socket.processes) {
      const handle = this.processHandle(owner.pid);
      if ('error' in handle) {
        if (handle.error.code !== 'ESRCH') ({ reason, message } = this.explain(handle.error, owner.pid));
        continue;
      }
      let duplicate: number;
      try {
        duplicate = this.access.pidfdGetfd(handle.pidfd, owner.fd);
      } catch (error) {
        if (!(error instanceof SystemCallError)) throw error;
        if (!isSystemCallError(error, 'ESRCH', 'EBADF'))
          ({ reason, message } = this.explain(error, owner.pid));
        continue;
      }
      const failure = this.readDuplicate(duplicate, socket, owner);
      if (failure === null) {
        delete socket.optionsError;
        this.summary.read++;
        return true;
      }
      ({ reason, message } = failure);
    }
    this.fail(socket, reason, message);
    return reason !== 'vanished';
  }

  /**
   * Proves that `fd`, just duplicated from `owner`, is `socket` (its cookie, or its inode
   * where the listing has no cookie), reads every option the socket's spec list needs
   * and closes the duplicate: options at SOL_SOCKET and the close through the batch
   * executor, the rest at once. On success sets `socket.options` and returns null.
   */
  private readDuplicate(
    fd: number,
    socket: SocketRecord,
    owner: SocketOwner,
  ): { reason: UnreadableReason; message: string } | null {
    const direct = this.direct;
    if (socket.cookie === null) {
      let inode: number;
      try {
        inode = this.access.inodeOf(fd);
      } catch (error) {
        direct.close(fd);
        if (!(error instanceof SystemCallError)) throw error;
        return this.explain(error, owner.pid);
      }
      if (inode !== socket.inode) {
        direct.close(fd);
        return this.reused(owner, inode === 0 ? 'not a socket' : `inode ${inode}`, `${socket.inode}`);
      }
    }
    const batch = this.batchCalls();
    const specs = this.specsFor(socket);
    const values = this.values;
    let closeQueued = false;
    try {
      if (socket.cookie !== null) batch.getsockopt(fd, libc.SOL_SOCKET, SO_COOKIE, COOKIE_SLOT);
      for (let i = 0; i < specs.length; i++) {
        const spec = specs[i] as OptionSpec;
        const known = spec.sockDiag ? valueFromSockDiag(spec.sockDiag, socket) : undefined;
        values[i] = known;
        if (known === undefined) {
          (spec.level === libc.SOL_SOCKET ? batch : direct).getsockopt(fd, spec.level, spec.optname, i + 1);
        }
      }
      batch.close(fd);
      closeQueued = true;
      batch.submit();
    } catch (error) {
      // Whatever happens, the duplicate is closed exactly once: by the kernel if the
      // batch reached it, else here, after dropping what was queued with the ring.
      const handedOver = closeQueued && batch.closeSubmitted;
      if (batch !== direct) this.abandonRing(error instanceof Error ? error.message : String(error));
      if (!handedOver) direct.close(fd);
      if (!(error instanceof SystemCallError)) throw error;
      return { reason: 'failed', message: `${error.syscall} failed: ${error.code}` };
    }
    if (socket.cookie !== null) {
      const cookie = this.cookieRead(batch);
      if (cookie !== socket.cookie)
        return this.reused(
          owner,
          cookie === null ? 'not a socket' : `cookie ${cookie}`,
          `cookie ${socket.cookie}`,
        );
    }
    return this.decodeAll(specs, socket, batch);
  }

  /** The SO_COOKIE value in the cookie slot, or null when the call failed (no socket). */
  private cookieRead(batch: SocketCalls): bigint | null {
    if ((batch.results[COOKIE_SLOT] as number) !== 8) return null;
    const bytes = batch.slot(COOKIE_SLOT);
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, hostIsLittleEndian);
  }

  private reused(
    owner: SocketOwner,
    now: string,
    was: string,
  ): { reason: UnreadableReason; message: string } {
    return {
      reason: 'reused',
      message: `fd ${owner.fd} of pid ${owner.pid} now holds another file (${now}, not ${was}): not read`,
    };
  }

  /**
   * Decodes the slots into `socket.options`. The values are gathered first and the object
   * is then made in one go, as a copy of a template with the same keys: an object that
   * gets dozens of computed keys one by one turns into a hash table, several times the
   * memory of a plain object, and there is one of these per socket.
   */
  private decodeAll(specs: readonly OptionSpec[], socket: SocketRecord, batch: SocketCalls): null {
    const values = this.values;
    let present = 0;
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i] as OptionSpec;
      if (values[i] === undefined) {
        const from = spec.level === libc.SOL_SOCKET ? batch : this.direct;
        const written = from.results[i + 1] as number;
        // ENOPROTOOPT, EINVAL, EOPNOTSUPP, ENOTCONN: the kernel lacks the option or it does not apply.
        if (written >= 0) values[i] = decodeOption(spec.decoding, from.slot(i + 1), written);
      }
      if (values[i] !== undefined) present++;
    }
    if (present === specs.length) {
      const options = { ...this.templateFor(specs) };
      for (let i = 0; i < specs.length; i++)
        options[(specs[i] as OptionSpec).name] = values[i] as OptionValue;
      socket.options = options;
      return null;
    }
    // Some options are missing (this kernel lacks them): only the ones read.
    const entries: Array<[string, OptionValue]> = [];
    for (let i = 0; i < specs.length; i++) {
      if (values[i] !== undefined) entries.push([(specs[i] as OptionSpec).name, values[i] as OptionValue]);
    }
    socket.options = Object.fromEntries(entries);
    return null;
  }

  private templateFor(specs: readonly OptionSpec[]): SocketOptions {
    let template = this.templates.get(specs);
    if (!template) {
      template = Object.fromEntries(specs.map((spec) => [spec.name, null]));
      this.templates.set(specs, template);
    }
    return template;
  }

  private explain(error: SystemCallError, pid: number): { reason: UnreadableReason; message: string } {
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

  private fail(socket: SocketRecord, reason: UnreadableReason, message: string): void {
    socket.options = null;
    socket.optionsError = message;
    this.summary.unreadable[reason]++;
  }

  /** Closes every pidfd opened for this collection. */
  close(): void {
    for (const handle of this.processes.values()) {
      if ('pidfd' in handle) {
        try {
          this.access.close(handle.pidfd);
        } catch {
          // Nothing useful to do: the fd is ours and was open.
        }
      }
    }
    this.processes.clear();
    if (this.batch && this.batch !== this.direct) this.batch.dispose();
    this.batch = undefined;
  }
}
