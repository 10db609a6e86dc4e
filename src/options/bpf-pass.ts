/**
 * The BPF pass: before any socket is duplicated, one iterator over the namespace's TCP
 * sockets (bpf-tcp.ts) gives most option values directly. For each option of the
 * catalogue this says whether the pass settles it for a given socket, and with what
 * value — exactly what getsockopt would return and decodeOption make of it — or leaves
 * it to getsockopt (undefined). A socket whose options the pass settles entirely is
 * never duplicated at all.
 *
 * Fields stand in for getsockopt where its answer is the field itself or the field
 * converted with the kernel's own arithmetic (kernel-units.ts): SO_RCVTIMEO and
 * SO_SNDTIMEO from sk_rcvtimeo and sk_sndtimeo in jiffies, SO_LINGER from the SOCK_LINGER
 * flag and sk_lingertime, SO_BUF_LOCK as sk_userlocks & 3, TCP_FASTOPEN as
 * fastopenq.max_qlen, TCP_DEFER_ACCEPT from rskq_defer_accept in retransmissions. Where
 * this kernel's HZ or deferral constants could not be learnt, only the values that need
 * no conversion (no timeout, linger off, no deferral) are settled; the rest is read by
 * getsockopt.
 */
import type { OptionValue, SocketRecord } from '../model.js';
import { CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, hasCapabilities } from '../procfs/capabilities.js';
import { kernelBtf } from '../sys/btf.js';
import {
  type PendingTcpPass,
  type PreparedTcpProgram,
  prepareTcpProgram,
  runTcpProgram,
  startTcpProgram,
  type TcpOptionRecords,
} from './bpf-tcp.js';
import { BPF_READABLE_TCP_OPTIONS, type OptionSpec } from './catalogue.js';
import {
  DEFER_ACCEPT_TIMES,
  type KernelUnits,
  LONG_MAX,
  lingerSeconds,
  probeKernelUnits,
  retransmitsToSeconds,
  timeoutMilliseconds,
} from './kernel-units.js';

const SOCK_BUF_LOCK_MASK = 3;

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
    /** SOCK_LINGER's bit number in sk_flags. */
    private readonly lingerBit: number,
    /** This kernel's HZ and deferral constants; where getsockopt lacks SO_BUF_LOCK, so does the pass. */
    private readonly units: KernelUnits,
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
    const hz = this.units.hz;
    const i = this.optionIndex.get(spec.name);
    if (i !== undefined) return r.option(record, i) ?? undefined;
    switch (spec.name) {
      case 'SO_RCVTIMEO':
        return this.timeout(record, 'rcvtimeo');
      case 'SO_SNDTIMEO':
        return this.timeout(record, 'sndtimeo');
      case 'SO_LINGER': {
        if (!r.longBit(record, 'flags', this.lingerBit)) return null;
        return hz === null ? undefined : lingerSeconds(true, r.long(record, 'lingerTime'), hz);
      }
      case 'SO_BUF_LOCK':
        return this.units.bufLock ? r.small(record, 'userLocks') & SOCK_BUF_LOCK_MASK : undefined;
      case 'TCP_FASTOPEN':
        return r.small(record, 'fastopenMaxQueue');
      case 'TCP_DEFER_ACCEPT': {
        const retransmits = r.small(record, 'deferAccept');
        if (retransmits === 0) return 0;
        return this.units.deferAccept ? retransmitsToSeconds(retransmits, DEFER_ACCEPT_TIMES) : undefined;
      }
      default:
        return undefined;
    }
  }

  /** A receive or send timeout: none needs no HZ, any other does. */
  private timeout(record: number, field: 'rcvtimeo' | 'sndtimeo'): OptionValue | undefined {
    if (this.records.longIsMax(record, field)) return timeoutMilliseconds(LONG_MAX, 1);
    const hz = this.units.hz;
    return hz === null ? undefined : timeoutMilliseconds(this.records.long(record, field), hz);
  }
}

interface Prepared {
  program: PreparedTcpProgram;
  lingerBit: number;
  units: KernelUnits;
}

/** Per option list: what the kernel's BTF gave, kept for the next collection (watch mode). */
const prepared = new Map<string, Prepared | Error>();

function prepare(only: ReadonlySet<string> | undefined): Prepared | Error {
  const names = BPF_READABLE_TCP_OPTIONS.filter((name) => !only || only.has(name));
  const key = names.join(',');
  let ready = prepared.get(key);
  if (ready === undefined) {
    try {
      const btf = kernelBtf();
      ready = {
        program: prepareTcpProgram(btf, names),
        lingerBit: btf.enumValue('sock_flags', 'SOCK_LINGER'),
        units: probeKernelUnits(),
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
  const ready = prepareIfAllowed(only);
  if (ready instanceof Error) return ready;
  try {
    return new BpfPass(runTcpProgram(ready.program, expectedSockets), ready.lingerBit, ready.units);
  } catch (error) {
    return asError(error);
  }
}

function prepareIfAllowed(only: ReadonlySet<string> | undefined): Prepared | Error {
  if (!mayLoadBpf()) return new Error('needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN');
  return prepare(only);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A pass started before the dump (startBpfPass): finished, or abandoned, once. */
export class PendingBpfPass {
  constructor(
    private readonly pending: PendingTcpPass,
    private readonly ready: Prepared,
  ) {}

  private outcome: BpfPass | Error | undefined;

  /** The pass, or why it failed (runBpfPass's outcomes); the same on a second call. */
  finish(): BpfPass | Error {
    if (this.outcome === undefined) {
      try {
        this.outcome = new BpfPass(this.pending.finish(), this.ready.lingerBit, this.ready.units);
      } catch (error) {
        this.outcome = asError(error);
      }
    }
    return this.outcome;
  }
}

/**
 * runBpfPass begun now and read on a thread (bpf-tcp.ts, startTcpProgram), for a caller
 * that has other work before it needs the values: the sock_diag dump. Settling is the
 * same: records are found by cookie, and a socket the pass did not see (one opened
 * after it) is read with getsockopt.
 */
export function startBpfPass(
  only: ReadonlySet<string> | undefined,
  expectedSockets: number,
): PendingBpfPass | Error {
  const ready = prepareIfAllowed(only);
  if (ready instanceof Error) return ready;
  try {
    return new PendingBpfPass(startTcpProgram(ready.program, expectedSockets), ready);
  } catch (error) {
    return asError(error);
  }
}
