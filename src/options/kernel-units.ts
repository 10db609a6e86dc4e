/**
 * How getsockopt turns what the kernel keeps into what it returns, for the options the
 * BPF pass reads as fields: timeouts and linger times are kept in jiffies (1/HZ s) and
 * returned in seconds and microseconds; a TCP deferral is kept as a count of SYN-ACK
 * retransmissions and returned in seconds. The arithmetic is the kernel's
 * (sock_get_timeout and sk_getsockopt in net/core/sock.c, retrans_to_secs in
 * net/ipv4/tcp.c), done on the same integers.
 *
 * The kernel does not tell userspace its HZ, nor the constants of the deferral's
 * conversion. They are learnt from a TCP socket of our own, never bound or connected,
 * that is given known options and asked for them back (probeKernelUnits); where an
 * answer does not fit, that conversion is not done and getsockopt reads the option.
 */
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import * as libc from '../sys/libc.js';
import { SOL_SOCKET, SOL_TCP } from './catalogue.js';
import { lingerValue, timevalMilliseconds } from './decode.js';

const MICROSECONDS = 1_000_000n;
/** MAX_SCHEDULE_TIMEOUT: a timeout never set, which getsockopt returns as {0, 0}. */
export const LONG_MAX = 0x7fffffffffffffffn;

/** SO_RCVTIMEO or SO_SNDTIMEO in milliseconds, as decodeOption makes of getsockopt's timeval. */
export function timeoutMilliseconds(jiffies: bigint, hz: number): number {
  if (jiffies === LONG_MAX) return timevalMilliseconds(0n, 0n);
  const h = BigInt(hz);
  return timevalMilliseconds(jiffies / h, ((jiffies % h) * MICROSECONDS) / h);
}

/**
 * SO_LINGER as decodeOption makes of getsockopt's struct linger: null when off, else
 * sk_lingertime / HZ in a C int (a time set past MAX_SCHEDULE_TIMEOUT / HZ wraps there too).
 */
export function lingerSeconds(on: boolean, lingerJiffies: bigint, hz: number): number | null {
  return lingerValue(on ? 1 : 0, Number(BigInt.asIntN(32, lingerJiffies / BigInt(hz))));
}

/** The deferral's conversion: the first SYN-ACK timeout and the largest one, in seconds. */
export interface RetransmitTimes {
  initial: number;
  max: number;
}

/** The times do_tcp_getsockopt converts TCP_DEFER_ACCEPT with: TCP_TIMEOUT_INIT and TCP_RTO_MAX, in seconds. */
export const DEFER_ACCEPT_TIMES: RetransmitTimes = { initial: 1, max: 120 };

/** retrans_to_secs: the seconds `retransmits` SYN-ACK timeouts add up to, doubling up to the largest. */
export function retransmitsToSeconds(retransmits: number, times: RetransmitTimes): number {
  if (retransmits <= 0) return 0;
  let timeout = times.initial;
  let period = timeout;
  for (let left = retransmits - 1; left > 0; left--) {
    timeout = Math.min(timeout * 2, times.max);
    period += timeout;
  }
  return period;
}

/** secs_to_retrans: the retransmissions setsockopt keeps for `seconds` (at most 255). */
export function secondsToRetransmits(seconds: number, times: RetransmitTimes): number {
  if (seconds <= 0) return 0;
  let timeout = times.initial;
  let period = timeout;
  let retransmits = 1;
  while (seconds > period && retransmits < 255) {
    retransmits++;
    timeout = Math.min(timeout * 2, times.max);
    period += timeout;
  }
  return retransmits;
}

/** This kernel's facts that the conversions need; null where the probe could not settle one. */
export interface KernelUnits {
  /** The kernel's HZ. */
  hz: number | null;
  /** Whether TCP_DEFER_ACCEPT converts with DEFER_ACCEPT_TIMES. */
  deferAccept: boolean;
  /** Whether getsockopt knows SO_BUF_LOCK (Linux 5.14). */
  bufLock: boolean;
}

const SOCK_STREAM = 1;
const SO_RCVTIMEO = 66; // SO_RCVTIMEO_NEW: struct __kernel_sock_timeval, two s64
const SO_BUF_LOCK = 72;
const TCP_DEFER_ACCEPT = 9;
/** Deferrals whose round trip tells the doubling and the cap (255 retransmissions) apart. */
const DEFER_PROBES = [1, 2, 5, 100, 400, 100_000];

/**
 * The HZ whose tick is `microseconds` long as sock_get_timeout reports one jiffy
 * (USEC_PER_SEC / HZ, rounded down), or null when no HZ, or more than one, fits.
 */
export function hzFromTick(microseconds: number): number | null {
  if (!Number.isInteger(microseconds) || microseconds <= 0) return null;
  const fits: number[] = [];
  const guess = Math.floor(1_000_000 / microseconds);
  for (let hz = Math.max(1, guess - 2); hz <= guess + 2; hz++)
    if (Math.floor(1_000_000 / hz) === microseconds) fits.push(hz);
  return fits.length === 1 ? (fits[0] as number) : null;
}

function int32(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, hostIsLittleEndian);
  return bytes;
}

/** getsockopt of an int on the probe, or null where the kernel refuses it. */
function readInt(fd: number, level: number, name: number): number | null {
  const bytes = new Uint8Array(4);
  if (libc.getsockoptRaw(fd, level, name, bytes, new Uint32Array(1)) !== 4) return null;
  return new DataView(bytes.buffer).getInt32(0, hostIsLittleEndian);
}

/** One jiffy as a receive timeout: set {0 s, 1 µs}, which the kernel rounds up to one jiffy. */
function probeHz(fd: number): number | null {
  try {
    return tickOf(fd);
  } catch {
    return null; // a kernel before SO_RCVTIMEO_NEW (5.1)
  }
}

function tickOf(fd: number): number | null {
  const timeval = new Uint8Array(16);
  const view = new DataView(timeval.buffer);
  view.setBigInt64(8, 1n, hostIsLittleEndian);
  libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeval);
  timeval.fill(0);
  if (libc.getsockoptRaw(fd, SOL_SOCKET, SO_RCVTIMEO, timeval, new Uint32Array(1)) !== 16) return null;
  if (view.getBigInt64(0, hostIsLittleEndian) !== 0n) return null;
  return hzFromTick(Number(view.getBigInt64(8, hostIsLittleEndian)));
}

/** Whether each probe deferral comes back as DEFER_ACCEPT_TIMES's round trip of it. */
function probeDeferAccept(fd: number): boolean {
  try {
    return deferralsRoundTrip(fd);
  } catch {
    return false;
  }
}

function deferralsRoundTrip(fd: number): boolean {
  return DEFER_PROBES.every((seconds) => {
    libc.setsockopt(fd, SOL_TCP, TCP_DEFER_ACCEPT, int32(seconds));
    const expected = retransmitsToSeconds(
      secondsToRetransmits(seconds, DEFER_ACCEPT_TIMES),
      DEFER_ACCEPT_TIMES,
    );
    return readInt(fd, SOL_TCP, TCP_DEFER_ACCEPT) === expected;
  });
}

let learnt: KernelUnits | undefined;

/** This kernel's units, asked of a socket of our own once per process. */
export function probeKernelUnits(): KernelUnits {
  if (learnt) return learnt;
  const fd = libc.socket(libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
  try {
    learnt = {
      hz: probeHz(fd),
      deferAccept: probeDeferAccept(fd),
      bufLock: readInt(fd, SOL_SOCKET, SO_BUF_LOCK) !== null,
    };
  } finally {
    libc.close(fd);
  }
  return learnt;
}
