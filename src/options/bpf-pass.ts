/**
 * The BPF pass: before any socket is duplicated, one iterator over the namespace's TCP
 * sockets (bpf-tcp.ts) gives most option values directly. For each option of the
 * catalogue this says whether the pass settles it for a given socket, and with what
 * value — exactly what getsockopt would return and decodeOption make of it — or leaves
 * it to getsockopt (undefined). A socket whose options the pass settles entirely is
 * never duplicated at all.
 *
 * The fields stand in only where their meaning is exact: a receive or send timeout of
 * MAX_SCHEDULE_TIMEOUT is getsockopt's {0, 0}, a clear SOCK_LINGER flag its l_onoff 0,
 * SO_BUF_LOCK is sk_userlocks & 3, TCP_FASTOPEN fastopenq.max_qlen, and a zero
 * rskq_defer_accept getsockopt's 0. Anything else (a timeout or linger time, which
 * getsockopt converts from jiffies by the kernel's HZ; a deferral, which it converts
 * from retransmissions) is left to getsockopt.
 */
import type { OptionValue, SocketRecord } from '../model.js';
import { CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, hasCapabilities } from '../procfs/capabilities.js';
import { kernelBtf } from '../sys/btf.js';
import * as libc from '../sys/libc.js';
import {
  type PreparedTcpProgram,
  prepareTcpProgram,
  runTcpProgram,
  type TcpOptionRecords,
} from './bpf-tcp.js';
import { BPF_READABLE_TCP_OPTIONS, type OptionSpec, SOL_SOCKET } from './catalogue.js';

const LONG_MAX = 0x7fffffffffffffffn;
const SOCK_BUF_LOCK_MASK = 3n;

/**
 * Below this many TCP sockets the pass costs more than it saves: reading the kernel's
 * BTF (about 5 MB) and loading the program take 40–60 ms, about what getsockopt needs
 * for 4,000 sockets on the bench's VM.
 */
export const BPF_MIN_TCP_SOCKETS = 5000;

/** Whether this process may load a tracing program: CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN. */
export function mayLoadBpf(): boolean {
  return hasCapabilities(CAP_SYS_ADMIN) || hasCapabilities(CAP_BPF, CAP_PERFMON);
}

export class BpfPass {
  /** Index of each option in the records' list, by name. */
  private readonly optionIndex = new Map<string, number>();

  constructor(
    private readonly records: TcpOptionRecords,
    private readonly lingerBit: bigint,
    /** Whether getsockopt knows SO_BUF_LOCK here (Linux 5.14+): where not, neither may the pass. */
    private readonly bufLock: boolean,
  ) {
    records.optionNames.forEach((name, i) => {
      this.optionIndex.set(name, i);
    });
  }

  /** How many sockets the pass saw. */
  get size(): number {
    return this.records.size;
  }

  /** The socket's record, or -1 when the pass has none (not TCP, no cookie, not seen). */
  recordOf(socket: SocketRecord): number {
    if (socket.protocol !== 'tcp' || socket.cookie === null) return -1;
    return this.records.find(socket.cookie);
  }

  /** The value the pass settles for `spec` in `record`, or undefined: getsockopt reads it. */
  value(record: number, spec: OptionSpec): OptionValue | undefined {
    const r = this.records;
    const i = this.optionIndex.get(spec.name);
    if (i !== undefined) return r.option(record, i) ?? undefined;
    switch (spec.name) {
      case 'SO_RCVTIMEO':
        return r.field(record, 'rcvtimeo') === LONG_MAX ? 0 : undefined;
      case 'SO_SNDTIMEO':
        return r.field(record, 'sndtimeo') === LONG_MAX ? 0 : undefined;
      case 'SO_LINGER':
        return (r.field(record, 'flags') & this.lingerBit) === 0n ? null : undefined;
      case 'SO_BUF_LOCK':
        return this.bufLock ? Number(r.field(record, 'userLocks') & SOCK_BUF_LOCK_MASK) : undefined;
      case 'TCP_FASTOPEN':
        return Number(r.field(record, 'fastopenMaxQueue'));
      case 'TCP_DEFER_ACCEPT':
        return r.field(record, 'deferAccept') === 0n ? 0 : undefined;
      default:
        return undefined;
    }
  }
}

interface Prepared {
  program: PreparedTcpProgram;
  lingerBit: bigint;
  bufLock: boolean;
}

/** Per option list: what the kernel's BTF gave, kept for the next collection (watch mode). */
const prepared = new Map<string, Prepared | Error>();

const SO_BUF_LOCK = 72;
const SOCK_STREAM = 1;

/** Whether this kernel's getsockopt knows SO_BUF_LOCK, asked of a socket of our own. */
function kernelKnowsBufLock(): boolean {
  const probe = libc.socket(libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
  try {
    return libc.getsockoptRaw(probe, SOL_SOCKET, SO_BUF_LOCK, new Uint8Array(4), new Uint32Array(1)) >= 0;
  } finally {
    libc.close(probe);
  }
}

function prepare(only: ReadonlySet<string> | undefined): Prepared | Error {
  const names = BPF_READABLE_TCP_OPTIONS.filter((name) => !only || only.has(name));
  const key = names.join(',');
  let ready = prepared.get(key);
  if (ready === undefined) {
    try {
      const btf = kernelBtf();
      ready = {
        program: prepareTcpProgram(btf, names),
        lingerBit: 1n << BigInt(btf.enumValue('sock_flags', 'SOCK_LINGER')),
        bufLock: kernelKnowsBufLock(),
      };
    } catch (error) {
      ready = error instanceof Error ? error : new Error(String(error));
    }
    prepared.set(key, ready);
  }
  return ready;
}

/**
 * Runs the pass for the options in `only` (every option when undefined): the pass, or
 * why there is none (no privilege, no BTF, a kernel whose types or verifier refuse the
 * program). The caller reads every option with getsockopt then, as without the pass.
 */
export function runBpfPass(only: ReadonlySet<string> | undefined, expectedSockets: number): BpfPass | Error {
  if (!mayLoadBpf()) return new Error('needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN');
  const ready = prepare(only);
  if (ready instanceof Error) return ready;
  try {
    return new BpfPass(runTcpProgram(ready.program, expectedSockets), ready.lingerBit, ready.bufLock);
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}
