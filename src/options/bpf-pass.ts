/**
 * The BPF pass: before any socket is duplicated, one iterator over the namespace's TCP
 * sockets (bpf-tcp.ts) gives most option values directly. For each option of the
 * catalogue this says whether the pass settles it for a given socket, and with what
 * value — exactly what getsockopt would return and decodeOption make of it — or leaves
 * it to getsockopt (undefined). A socket whose options the pass settles entirely is
 * never duplicated at all.
 *
 * bpf_getsockopt gives the options it answers (BPF_READABLE_TCP_OPTIONS) through the
 * kernel's own getsockopt. For the others, fields stand in where getsockopt's answer is
 * the field itself, a flag of sk_flags, or the field put through getsockopt's own
 * arithmetic: jiffies into time (with the HZ kernel-units.ts learns), a deferral's
 * retransmissions into seconds, a sysctl where the socket set nothing (tcp_fin_timeout,
 * ip_default_ttl, tcp_pingpong_thresh). Where this kernel lacks a field or flag, or a
 * fact could not be learnt, or the value needs more than the fields hold (a TCP_ULP
 * name), getsockopt reads that option.
 */
import type { OptionValue, SocketRecord } from '../model.js';
import { CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, hasCapabilities } from '../procfs/capabilities.js';
import { type OptionDefaults, readOptionDefaults } from '../procfs/sysctl.js';
import { BpfError, Helper, kernelReadsAllowed } from '../sys/bpf.js';
import { type Btf, kernelBtf } from '../sys/btf.js';
import { ProtocolError } from '../sys/errors.js';
import {
  FIELD_READ_TCP_OPTIONS,
  type PendingTcpPass,
  type PreparedTcpProgram,
  prepareTcpProgram,
  runTcpProgram,
  startTcpProgram,
  type TcpField,
  type TcpOptionRecords,
} from './bpf-tcp.js';
import { BPF_READABLE_TCP_OPTIONS, type OptionSpec } from './catalogue.js';
import { u64Value } from './decode.js';
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
 * Below this many TCP sockets the pass is not worth its fixed cost: mapping and indexing
 * the kernel's BTF, preparing and loading the program, and for the early start a
 * thread, 20–30 ms before the first socket, which getsockopt needs for a few thousand
 * sockets on the bench's VM; and a small host's listing is fast either way.
 */
export const BPF_MIN_TCP_SOCKETS = 5000;

/** Whether this process may load a tracing program: CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN. */
export function mayLoadBpf(): boolean {
  return hasCapabilities(CAP_SYS_ADMIN) || hasCapabilities(CAP_BPF, CAP_PERFMON);
}

/** Bits of sk_flags (enum sock_flags) some options test; null where this kernel has no such flag. */
export interface SockFlagBits {
  linger: number | null;
  zerocopy: number | null;
  receiveTimestamp: number | null;
  receiveTimestampNs: number | null;
  timestampNew: number | null;
  urgentInline: number | null;
  localRoute: number | null;
}

/** What the pass knows of this kernel, learnt once per process. */
export interface KernelFacts {
  units: KernelUnits;
  flags: SockFlagBits;
  /** Whether TCP_QUICKACK compares icsk_ack.pingpong with the tcp_pingpong_thresh sysctl (6.x). */
  pingpongSysctl: boolean;
  /** INET_FLAGS_RECVERR6, the inet_flags bit IPV6_RECVERR reads (6.6 on); null before. */
  recverr6Bit: number | null;
}

/** How the pass settles one option from a socket's record: its value, or undefined (getsockopt reads it). */
export type Settler = (record: number) => OptionValue | undefined;

const TCP_NAGLE_CORK = 2;
const SOF_TXTIME_DEADLINE_MODE = 1;
const SOF_TXTIME_REPORT_ERRORS = 2;

export class BpfPass {
  /** Index of each option in the records' list, by name. */
  private readonly optionIndex = new Map<string, number>();

  constructor(
    private readonly records: TcpOptionRecords,
    private readonly kernel: KernelFacts,
    /** The sysctls read for this collection. */
    private readonly defaults: OptionDefaults,
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

  /**
   * What the record's values are, as a number (TcpOptionRecords.contentClass): records
   * with the same one hold the same values, so that the pass settles the same for both.
   */
  contentClass(record: number): number {
    return this.records.contentClass(record);
  }

  /** The value the pass settles for `spec` in `record`, or undefined: getsockopt reads it. */
  value(record: number, spec: OptionSpec): OptionValue | undefined {
    return this.settlerOf(spec)?.(record);
  }

  /**
   * The settlers of a list of specs, in its order (null for an option the pass never
   * settles): made once per list, as the reader asks for dozens of options of each of
   * tens of thousands of sockets.
   */
  settlers(specs: readonly OptionSpec[]): ReadonlyArray<Settler | null> {
    let list = this.settlerLists.get(specs);
    if (!list) {
      list = specs.map((spec) => this.settlerOf(spec));
      this.settlerLists.set(specs, list);
    }
    return list;
  }

  private readonly settlerLists = new Map<readonly OptionSpec[], ReadonlyArray<Settler | null>>();

  /**
   * How the pass settles `spec` from a record, or null where it never does: a function
   * made once per option, everything about this kernel decided here, so that each call
   * only reads the socket's record. Each is what the kernel's getsockopt returns
   * (sk_getsockopt, do_tcp_getsockopt, do_ip_getsockopt) from the fields it reads.
   */
  private settlerOf(spec: OptionSpec): Settler | null {
    const r = this.records;
    const hz = this.kernel.units.hz;
    const flags = this.kernel.flags;
    const defaults = this.defaults;
    const i = this.optionIndex.get(spec.name);
    if (i !== undefined) return (record) => r.option(record, i) ?? undefined;
    const small = (field: TcpField) => r.smallReader(field);
    const flag = (bit: number | null) => (bit === null ? null : r.bitReader('flags', bit));
    const flagValue = (bit: number | null): Settler | null => {
      const read = flag(bit);
      return read && ((record) => (read(record) ? 1 : 0));
    };
    switch (spec.name) {
      case 'SO_RCVTIMEO':
        return this.timeoutSettler('rcvtimeo');
      case 'SO_SNDTIMEO':
        return this.timeoutSettler('sndtimeo');
      case 'SO_LINGER': {
        const on = flag(flags.linger);
        if (!on) return null;
        const withTime = hz !== null && r.has('lingerTime');
        // Off needs no conversion; a time needs HZ.
        return (record) =>
          !on(record)
            ? null
            : withTime
              ? lingerSeconds(true, r.long(record, 'lingerTime'), hz as number)
              : undefined;
      }
      case 'SO_BUF_LOCK': {
        const locks = small('userLocks');
        return this.kernel.units.bufLock && locks ? (record) => locks(record) & SOCK_BUF_LOCK_MASK : null;
      }
      case 'TCP_FASTOPEN':
        return small('fastopenMaxQueue');
      case 'TCP_DEFER_ACCEPT': {
        const retransmits = small('deferAccept');
        if (!retransmits) return null;
        const convert = this.kernel.units.deferAccept;
        return (record) => {
          const n = retransmits(record);
          if (n === 0) return 0;
          return convert ? retransmitsToSeconds(n, DEFER_ACCEPT_TIMES) : undefined;
        };
      }
      // sk_getsockopt answers 1 for every socket: Linux keeps no send low-water mark.
      case 'SO_SNDLOWAT':
        return () => 1;
      case 'SO_BUSY_POLL':
        return small('busyPollUsec');
      case 'SO_PREFER_BUSY_POLL':
        return small('preferBusyPoll');
      case 'SO_INCOMING_CPU':
        return small('incomingCpu');
      case 'SO_TIMESTAMPING':
        return small('timestamping');
      case 'SO_ZEROCOPY':
        return flagValue(flags.zerocopy);
      case 'SO_OOBINLINE':
        return flagValue(flags.urgentInline);
      case 'SO_DONTROUTE':
        return flagValue(flags.localRoute);
      case 'SO_TIMESTAMP': {
        // Microsecond timestamps asked for the old way, not superseded by nanoseconds.
        const on = flag(flags.receiveTimestamp);
        const isNew = flag(flags.timestampNew);
        const ns = flag(flags.receiveTimestampNs);
        if (!on || !isNew || !ns) return null;
        return (record) => (on(record) && !isNew(record) && !ns(record) ? 1 : 0);
      }
      case 'SO_TIMESTAMPNS': {
        const ns = flag(flags.receiveTimestampNs);
        const isNew = flag(flags.timestampNew);
        if (!ns || !isNew) return null;
        return (record) => (ns(record) && !isNew(record) ? 1 : 0);
      }
      case 'SO_TXTIME': {
        const clock = small('txtimeClock');
        const deadline = small('txtimeDeadline');
        const errors = small('txtimeErrors');
        if (!clock || !deadline || !errors) return null;
        return (record) =>
          `${clock(record)}/${(deadline(record) ? SOF_TXTIME_DEADLINE_MODE : 0) | (errors(record) ? SOF_TXTIME_REPORT_ERRORS : 0)}`;
      }
      case 'SO_MAX_PACING_RATE':
        return r.has('maxPacingRate')
          ? (record) => u64Value(BigInt.asUintN(64, r.long(record, 'maxPacingRate')))
          : null;
      case 'TCP_CORK': {
        const nagle = small('nagle');
        return nagle && ((record) => (nagle(record) & TCP_NAGLE_CORK ? 1 : 0));
      }
      case 'TCP_QUICKACK': {
        // !inet_csk_in_pingpong_mode(sk): pingpong below the sysctl's threshold.
        const pingpong = small('pingpong');
        const threshold = defaults.pingpongThreshold;
        if (!pingpong || !this.kernel.pingpongSysctl || threshold === null) return null;
        return (record) => (pingpong(record) >= threshold ? 0 : 1);
      }
      case 'TCP_LINGER2': {
        // Negative (no FIN_WAIT2 timer) as it is; 0 is tcp_fin_timeout; else jiffies / HZ.
        const linger2 = small('linger2');
        if (!linger2) return null;
        const finTimeout = defaults.finTimeout;
        return (record) => {
          const value = linger2(record);
          if (value < 0) return value;
          if (value === 0) return finTimeout ?? undefined;
          return hz === null ? undefined : Math.floor(value / hz);
        };
      }
      case 'TCP_ULP': {
        // No upper layer protocol: getsockopt answers with an empty name. A name is read.
        const ulp = small('ulp');
        return ulp && ((record) => (ulp(record) === 0 ? '' : undefined));
      }
      case 'TCP_FASTOPEN_CONNECT':
        return small('fastopenConnect');
      case 'TCP_TX_DELAY':
        return small('txDelay');
      case 'TCP_INQ':
        return small('receiveQueueHint');
      case 'IP_TTL': {
        // uc_ttl -1: the namespace's ip_default_ttl.
        const ttl = small('unicastTtl');
        if (!ttl) return null;
        const defaultTtl = defaults.defaultTtl;
        return (record) => {
          const value = ttl(record);
          return value >= 0 ? value : (defaultTtl ?? undefined);
        };
      }
      case 'IP_MTU_DISCOVER':
        return small('pmtuDiscovery');
      case 'IP_MINTTL':
        return small('minTtl');
      case 'IPV6_V6ONLY':
        return small('v6only');
      case 'IPV6_RECVERR': {
        const on =
          this.kernel.recverr6Bit === null ? null : r.bitReader('inetFlags', this.kernel.recverr6Bit);
        return on && ((record) => (on(record) ? 1 : 0));
      }
      case 'IPV6_MTU_DISCOVER': {
        // Read through pinet6: only where the socket has one, as every IPv6 socket does.
        const hasInfo = small('ipv6Info');
        const mode = small('pmtuDiscovery6');
        return hasInfo && mode && ((record) => (hasInfo(record) === 1 ? mode(record) : undefined));
      }
      case 'IPV6_UNICAST_HOPS':
        return r.hopLimitReader();
      default:
        return null;
    }
  }

  /** A receive or send timeout: none needs no HZ, any other does. */
  private timeoutSettler(field: 'rcvtimeo' | 'sndtimeo'): Settler | null {
    const r = this.records;
    if (!r.has(field)) return null;
    const hz = this.kernel.units.hz;
    return (record) => {
      if (r.longIsMax(record, field)) return timeoutMilliseconds(LONG_MAX, 1);
      return hz === null ? undefined : timeoutMilliseconds(r.long(record, field), hz);
    };
  }
}

interface Prepared {
  program: PreparedTcpProgram;
  kernel: KernelFacts;
}

/** Bit `name` of enum sock_flags in this kernel, or null where it has none. */
function flagBit(btf: Btf, name: string): number | null {
  try {
    return btf.enumValue('sock_flags', name);
  } catch (error) {
    if (error instanceof ProtocolError) return null;
    throw error;
  }
}

/** An enumerator of any of this kernel's enums, or null where it has none. */
function enumeratorOf(btf: Btf, name: string): number | null {
  try {
    return btf.enumerator(name);
  } catch (error) {
    if (error instanceof ProtocolError) return null;
    throw error;
  }
}

/** Whether this kernel's struct netns_ipv4 has tcp_pingpong_thresh (do_tcp_getsockopt then compares with it). */
function hasPingpongSysctl(btf: Btf): boolean {
  try {
    btf.field('netns_ipv4', ['sysctl_tcp_pingpong_thresh']);
    return true;
  } catch (error) {
    if (error instanceof ProtocolError) return false;
    throw error;
  }
}

/** Per option list: what the kernel's BTF gave, kept for the next collection (watch mode). */
const prepared = new Map<string, Prepared | Error>();

/**
 * Set when the kernel refused a program that reads kernel memory (the IPv6 hop limit's
 * route metric; see kernelReadsAllowed) for this process: from then on the programs
 * leave IPV6_UNICAST_HOPS to getsockopt instead of losing the whole pass.
 */
let kernelReadsRefused = false;

function prepare(only: ReadonlySet<string> | undefined): Prepared | Error {
  const names = BPF_READABLE_TCP_OPTIONS.filter((name) => !only || only.has(name));
  const fieldOptions = new Set([...FIELD_READ_TCP_OPTIONS].filter((name) => !only || only.has(name)));
  const kernelReads = !kernelReadsRefused && kernelReadsAllowed();
  const key = `${names.join(',')}|${[...fieldOptions].join(',')}|${kernelReads}`;
  let ready = prepared.get(key);
  if (ready === undefined) {
    try {
      const btf = kernelBtf();
      ready = {
        program: prepareTcpProgram(btf, names, fieldOptions, kernelReads),
        kernel: {
          units: probeKernelUnits(),
          pingpongSysctl: hasPingpongSysctl(btf),
          recverr6Bit: fieldOptions.has('IPV6_RECVERR') ? enumeratorOf(btf, 'INET_FLAGS_RECVERR6') : null,
          flags: {
            linger: flagBit(btf, 'SOCK_LINGER'),
            zerocopy: flagBit(btf, 'SOCK_ZEROCOPY'),
            receiveTimestamp: flagBit(btf, 'SOCK_RCVTSTAMP'),
            receiveTimestampNs: flagBit(btf, 'SOCK_RCVTSTAMPNS'),
            // Before 5.1 there is no SOCK_TSTAMP_NEW, and SO_TIMESTAMP* are read the old way.
            timestampNew: flagBit(btf, 'SOCK_TSTAMP_NEW'),
            urgentInline: flagBit(btf, 'SOCK_URGINLINE'),
            localRoute: flagBit(btf, 'SOCK_LOCALROUTE'),
          },
        },
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
  return withProgram(
    only,
    (ready) => new BpfPass(runTcpProgram(ready.program, expectedSockets), ready.kernel, readOptionDefaults()),
  );
}

/**
 * `use` with the program prepared for `only`; where the verifier refuses a program that
 * reads kernel memory because this kernel withholds bpf_probe_read_kernel from it, once
 * more with one that does not — the first refusal kept if that fails too (exported for
 * its test). Any other failure is the pass's.
 */
export function withProgram<T>(
  only: ReadonlySet<string> | undefined,
  use: (ready: Prepared) => T,
): T | Error {
  const ready = prepareIfAllowed(only);
  if (ready instanceof Error) return ready;
  try {
    return use(ready);
  } catch (error) {
    if (!(ready.program.layout.hopLimit && refusesKernelReads(error))) return asError(error);
    kernelReadsRefused = true;
    const again = withProgram(only, use);
    return again instanceof Error ? asError(error) : again;
  }
}

/**
 * Whether the verifier refused a program for calling bpf_probe_read_kernel ("unknown
 * func bpf_probe_read_kernel#113", "program of this type cannot use helper
 * bpf_probe_read_kernel#113"), as it does under a lockdown knetstat could not see.
 */
function refusesKernelReads(error: unknown): boolean {
  return (
    error instanceof BpfError &&
    error.command === 'BPF_PROG_LOAD' &&
    (error.code === 'EINVAL' || error.code === 'EACCES' || error.code === 'EPERM') &&
    error.verifierLog.includes(`#${Helper.probeReadKernel}`)
  );
}

/** Forgets a refusal withProgram met (for tests: it is otherwise kept for the process). */
export function forgetKernelReadRefusal(): void {
  kernelReadsRefused = false;
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
        this.outcome = new BpfPass(this.pending.finish(), this.ready.kernel, readOptionDefaults());
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
  return withProgram(
    only,
    (ready) => new PendingBpfPass(startTcpProgram(ready.program, expectedSockets), ready),
  );
}
