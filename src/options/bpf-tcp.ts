/**
 * Options of every TCP socket of the namespace in one pass, by a BPF iterator (iter/tcp):
 * for each full socket (not TIME_WAIT or a request) its cookie, the options the kernel
 * lets a BPF program read with bpf_getsockopt — which runs the kernel's own getsockopt
 * code, do_tcp_getsockopt and sk_getsockopt — and the struct fields (offsets from the
 * kernel's BTF) from which getsockopt works out the options bpf_getsockopt refuses;
 * bpf-pass.ts does that arithmetic. An IPv6 socket's IPv6 options come from its struct
 * ipv6_pinfo, and its effective hop limit is worked out in the program, from its route,
 * device and namespace, as do_ipv6_getsockopt does (assembleHopLimit).
 *
 * Nothing here writes to a socket: bpf_getsockopt is the getsockopt path; the fields
 * are loads the verifier checks against the kernel's types, and the one read it cannot
 * check (a route's metric) is bpf_probe_read_kernel into the program's own stack.
 */

import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import {
  Assembler,
  Helper,
  IteratorRun,
  kernelReadsAllowed,
  runIteratorProgram,
  type Width,
} from '../sys/bpf.js';
import { type Btf, BtfKind, type FieldPlace } from '../sys/btf.js';
import { ProtocolError } from '../sys/errors.js';
import { IteratorThread, iteratorThreadsUsable, type ThreadRead } from '../sys/iterator-thread.js';
import { readToEnd } from '../sys/read-to-end.js';
import { BPF_READABLE_TCP_OPTIONS, OPTION_CATALOGUE, type OptionSpec } from './catalogue.js';
import { IdIndex } from './id-index.js';
import { indexRecords, type RecordIndexArrays } from './record-index.js';

/** The paths from struct tcp_sock to its struct inet_sock and struct sock. */
const INET = ['inet_conn', 'icsk_inet'] as const;
const SK = [...INET, 'sk'] as const;

/** The IPv6 options of a TCP socket that the pass settles. */
const IPV6_OPTIONS = ['IPV6_V6ONLY', 'IPV6_RECVERR', 'IPV6_MTU_DISCOVER', 'IPV6_UNICAST_HOPS'];

interface FieldSpec {
  /** Where in struct tcp_sock, tried in order (members move between kernels). */
  paths: ReadonlyArray<readonly string[]>;
  /** The options whose values are worked out from it (bpf-pass.ts). */
  for: readonly string[];
  /** A signed integer narrower than 4 bytes, which the record's reader sign-extends. */
  signed?: true;
  /**
   * A long (or flags word) read as 64 bits: on a kernel where it is narrower (32-bit),
   * it is left out.
   */
  long?: true;
  /**
   * A pointer of which the program writes only whether it is null, as one byte: no
   * kernel address leaves the kernel.
   */
  nonNull?: true;
  /**
   * A field of another struct, reached through a pointer of struct tcp_sock: the
   * nonNull field that copies whether the pointer is set (the program reads through it
   * only then), and the struct it points to, in which `paths` lie.
   */
  through?: { pointer: string; struct: string };
}

/**
 * Fields of struct tcp_sock (or of a struct it points to) the program copies. Each is optional: where this kernel's
 * BTF lacks it (another version, a configuration without it), the options that need it
 * are left to getsockopt.
 */
const FIELDS = {
  rcvtimeo: { paths: [[...SK, 'sk_rcvtimeo']], for: ['SO_RCVTIMEO'], long: true },
  sndtimeo: { paths: [[...SK, 'sk_sndtimeo']], for: ['SO_SNDTIMEO'], long: true },
  flags: {
    paths: [[...SK, '__sk_common', 'skc_flags']],
    for: ['SO_LINGER', 'SO_ZEROCOPY', 'SO_TIMESTAMP', 'SO_TIMESTAMPNS', 'SO_OOBINLINE', 'SO_DONTROUTE'],
    long: true,
  },
  lingerTime: { paths: [[...SK, 'sk_lingertime']], for: ['SO_LINGER'], long: true },
  fastopenMaxQueue: {
    paths: [['inet_conn', 'icsk_accept_queue', 'fastopenq', 'max_qlen']],
    for: ['TCP_FASTOPEN'],
  },
  userLocks: { paths: [[...SK, 'sk_userlocks']], for: ['SO_BUF_LOCK'] },
  deferAccept: {
    paths: [['inet_conn', 'icsk_accept_queue', 'rskq_defer_accept']],
    for: ['TCP_DEFER_ACCEPT'],
  },
  busyPollUsec: { paths: [[...SK, 'sk_ll_usec']], for: ['SO_BUSY_POLL'] },
  preferBusyPoll: { paths: [[...SK, 'sk_prefer_busy_poll']], for: ['SO_PREFER_BUSY_POLL'] },
  incomingCpu: {
    paths: [
      [...SK, '__sk_common', 'skc_incoming_cpu'],
      [...SK, 'sk_incoming_cpu'],
    ],
    for: ['SO_INCOMING_CPU'],
  },
  timestamping: { paths: [[...SK, 'sk_tsflags']], for: ['SO_TIMESTAMPING'] },
  txtimeClock: { paths: [[...SK, 'sk_clockid']], for: ['SO_TXTIME'] },
  txtimeDeadline: { paths: [[...SK, 'sk_txtime_deadline_mode']], for: ['SO_TXTIME'] },
  txtimeErrors: { paths: [[...SK, 'sk_txtime_report_errors']], for: ['SO_TXTIME'] },
  maxPacingRate: { paths: [[...SK, 'sk_max_pacing_rate']], for: ['SO_MAX_PACING_RATE'], long: true },
  nagle: { paths: [['nonagle']], for: ['TCP_CORK'] },
  pingpong: { paths: [['inet_conn', 'icsk_ack', 'pingpong']], for: ['TCP_QUICKACK'] },
  linger2: { paths: [['linger2']], for: ['TCP_LINGER2'] },
  ulp: { paths: [['inet_conn', 'icsk_ulp_ops']], for: ['TCP_ULP'], nonNull: true },
  fastopenConnect: { paths: [['fastopen_connect']], for: ['TCP_FASTOPEN_CONNECT'] },
  txDelay: { paths: [['tcp_tx_delay']], for: ['TCP_TX_DELAY'] },
  receiveQueueHint: { paths: [['recvmsg_inq']], for: ['TCP_INQ'] },
  unicastTtl: { paths: [['inet_conn', 'icsk_inet', 'uc_ttl']], for: ['IP_TTL'], signed: true },
  pmtuDiscovery: { paths: [['inet_conn', 'icsk_inet', 'pmtudisc']], for: ['IP_MTU_DISCOVER'] },
  minTtl: { paths: [['inet_conn', 'icsk_inet', 'min_ttl']], for: ['IP_MINTTL'] },
  // An IPv6 socket's struct ipv6_pinfo; NULL on an IPv4 one.
  ipv6Info: { paths: [[...INET, 'pinet6']], for: IPV6_OPTIONS, nonNull: true },
  v6only: { paths: [[...SK, '__sk_common', 'skc_ipv6only']], for: ['IPV6_V6ONLY'] },
  // Since 6.6 the IPv6 flags too are bits of inet_flags (INET_FLAGS_RECVERR6).
  inetFlags: { paths: [[...INET, 'inet_flags']], for: ['IPV6_RECVERR'], long: true },
  pmtuDiscovery6: {
    paths: [['pmtudisc']],
    through: { pointer: 'ipv6Info', struct: 'ipv6_pinfo' },
    for: ['IPV6_MTU_DISCOVER'],
  },
} satisfies Record<string, FieldSpec>;
export type TcpField = keyof typeof FIELDS;

/** Every option that some field of the pass stands in for. */
export const FIELD_READ_TCP_OPTIONS: ReadonlySet<string> = new Set(
  Object.values(FIELDS).flatMap((field: FieldSpec) => field.for),
);

/**
 * RTAX_HOPLIMIT (uapi linux/rtnetlink.h), the route metric ip6_dst_hoplimit reads first;
 * and DST_METRICS_FLAGS (net/dst.h), the low bits of dst_entry._metrics that are flags,
 * not address, since 2.6.39.
 */
const RTAX_HOPLIMIT = 10;
const DST_METRICS_FLAGS = 3;

/** Where the kernel keeps what IPV6_UNICAST_HOPS is worked out from (see hopLimitPlaces). */
interface HopLimitPlaces {
  pinet6: number;
  hopLimit: FieldPlace;
  dstCache: number;
  metrics: number;
  dev: number;
  ip6Ptr: number;
  deviceHopLimit: FieldPlace;
  deviceNet: number;
  sockNet: number;
  devconfAll: number;
  devconfHopLimit: FieldPlace;
}

interface FieldLayout {
  /** Byte offset in the record, and the width written there. */
  at: number;
  width: Width;
  /** Offset in struct tcp_sock (or, with `through`, in the struct pointed to), and the width read there. */
  source: number;
  sourceWidth: Width;
  /** A bitfield: where in its byte. */
  bits?: { shift: number; width: number };
  signed?: true;
  nonNull?: true;
  /** Read through the pointer at this offset of struct tcp_sock, where it is set. */
  through?: number;
}

interface Layout {
  /** Option names, in record order, with their levels and numbers. */
  options: readonly OptionSpec[];
  /** The fields this kernel has, of those wanted. */
  fields: Partial<Record<TcpField, FieldLayout>>;
  /**
   * IPV6_UNICAST_HOPS as the program works it out (an int at `at`), and a byte at
   * `knownAt` that is 1 where it could; absent where not asked for, or where this
   * kernel's types or its lockdown leave it to getsockopt.
   */
  hopLimit?: { at: number; knownAt: number; places: HopLimitPlaces };
  size: number;
}

function specOf(name: string): OptionSpec {
  const spec = OPTION_CATALOGUE.find((o) => o.name === name && o.protocols.includes('tcp'));
  if (!spec) throw new Error(`no TCP option ${name} in the catalogue`);
  return spec;
}

/**
 * Where a field lies in this kernel's struct tcp_sock (or the struct it is reached
 * through), or null where it has none.
 */
function placeOf(btf: Btf, field: FieldSpec): FieldPlace | null {
  for (const path of field.paths) {
    const place = tryField(btf, field.through?.struct ?? 'tcp_sock', path);
    if (place) return place;
  }
  return null;
}

function tryField(btf: Btf, struct: string, path: readonly string[]): FieldPlace | null {
  try {
    return btf.field(struct, path);
  } catch (error) {
    if (error instanceof ProtocolError) return null;
    throw error;
  }
}

/** Byte offset of a pointer member, or null where this kernel lacks it (or it is no pointer-sized member). */
function pointerAt(btf: Btf, struct: string, path: readonly string[]): number | null {
  const place = tryField(btf, struct, path);
  return place && place.size === 8 && !place.bits ? place.offset : null;
}

/** A signed int member of 2 or 4 bytes, or null. */
function intPlace(btf: Btf, struct: string, path: readonly string[]): FieldPlace | null {
  const place = tryField(btf, struct, path);
  return place && (place.size === 2 || place.size === 4) && !place.bits ? place : null;
}

/**
 * The places IPV6_UNICAST_HOPS needs in this kernel (do_ipv6_getsockopt,
 * ip6_dst_hoplimit), or null where any is missing: np->hop_limit; the socket's cached
 * route, its metrics and device; the device's inet6_dev and namespace; the namespace's
 * devconf_all.
 */
function hopLimitPlaces(btf: Btf): HopLimitPlaces | null {
  const places = {
    pinet6: pointerAt(btf, 'tcp_sock', [...INET, 'pinet6']),
    hopLimit: intPlace(btf, 'ipv6_pinfo', ['hop_limit']),
    dstCache: pointerAt(btf, 'tcp_sock', [...SK, 'sk_dst_cache']),
    metrics: pointerAt(btf, 'dst_entry', ['_metrics']),
    dev: pointerAt(btf, 'dst_entry', ['dev']),
    ip6Ptr: pointerAt(btf, 'net_device', ['ip6_ptr']),
    deviceHopLimit: intPlace(btf, 'inet6_dev', ['cnf', 'hop_limit']),
    deviceNet: pointerAt(btf, 'net_device', ['nd_net', 'net']),
    sockNet: pointerAt(btf, 'tcp_sock', [...SK, '__sk_common', 'skc_net', 'net']),
    devconfAll: pointerAt(btf, 'net', ['ipv6', 'devconf_all']),
    devconfHopLimit: intPlace(btf, 'ipv6_devconf', ['hop_limit']),
  };
  for (const value of Object.values(places)) if (value === null) return null;
  return places as HopLimitPlaces;
}

/**
 * Record layout: cookie, a value then a result per option, then the fields that the
 * options in `fieldOptions` need, widest first.
 */
function layoutFor(
  btf: Btf,
  optionNames: readonly string[],
  fieldOptions: ReadonlySet<string>,
  kernelReads: boolean,
): Layout {
  const options = optionNames.map(specOf);
  let at = 8 + 8 * options.length;
  const fields: Layout['fields'] = {};
  const places: Array<{ name: TcpField; spec: FieldSpec; place: FieldPlace; width: Width }> = [];
  const hopPlaces = fieldOptions.has('IPV6_UNICAST_HOPS') && kernelReads ? hopLimitPlaces(btf) : null;
  for (const [name, spec] of Object.entries(FIELDS) as Array<[TcpField, FieldSpec]>) {
    if (!spec.for.some((option) => fieldOptions.has(option))) continue;
    const place = placeOf(btf, spec);
    // A long narrower than 8 bytes (a 32-bit kernel), or any other field wider than 4
    // that is not a pointer tested for null, is not one knetstat knows how to read.
    if (place === null || (spec.long ? place.size !== 8 : !spec.nonNull && place.size > 4)) continue;
    if (![1, 2, 4, 8].includes(place.size)) throw new Error(`tcp_sock field ${name} is ${place.size} bytes`);
    places.push({ name, spec, place, width: spec.nonNull ? 1 : (place.size as Width) });
  }
  places.sort((a, b) => b.width - a.width);
  for (const { name, spec, place, width } of places) {
    at = Math.ceil(at / width) * width;
    const field: FieldLayout = { at, width, source: place.offset, sourceWidth: place.size as Width };
    if (place.bits) field.bits = place.bits;
    if (spec.signed) field.signed = true;
    if (spec.nonNull) field.nonNull = true;
    fields[name] = field;
    at += width;
  }
  // A field read through a pointer whose own field this kernel lacks cannot be read.
  for (const [name, spec] of Object.entries(FIELDS) as Array<[TcpField, FieldSpec]>) {
    const field = fields[name];
    if (!field || !spec.through) continue;
    const pointer = fields[spec.through.pointer as TcpField];
    if (pointer === undefined) delete fields[name];
    else field.through = pointer.source;
  }
  let hopLimit: Layout['hopLimit'];
  if (hopPlaces && fields.ipv6Info) {
    at = Math.ceil(at / 4) * 4;
    hopLimit = { at, knownAt: at + 4, places: hopPlaces };
    at += 5;
  }
  const layout: Layout = { options, fields, size: Math.ceil(at / 8) * 8 };
  if (hopLimit) layout.hopLimit = hopLimit;
  return layout;
}

/** The iter/tcp program for `layout` (see the header for what it writes). */
function assemble(layout: Layout): Uint8Array {
  const a = new Assembler();
  const record = -layout.size;
  const done = a.label();
  a.move(6, 1); // r6 = struct bpf_iter__tcp *ctx
  a.load(8, 7, 6, 0); // r7 = ctx->meta
  a.load(8, 1, 6, 8); // r1 = ctx->sk_common
  a.jumpIfEqual(1, 0, done); // the end of the iteration
  a.call(Helper.skcToTcpSock);
  a.jumpIfEqual(0, 0, done); // TIME_WAIT and request sockets have no options
  a.move(8, 0); // r8 = struct tcp_sock *
  for (let at = record; at < 0; at += 8) a.storeImmediate(8, 10, at, 0);
  a.move(1, 8).call(Helper.getSocketCookie).store(8, 10, record, 0);
  layout.options.forEach((spec, i) => {
    a.move(1, 8)
      .moveImmediate(2, spec.level)
      .moveImmediate(3, spec.optname)
      .move(4, 10)
      .addImmediate(4, record + 8 + 4 * i)
      .moveImmediate(5, 4)
      .call(Helper.getsockopt)
      .store(4, 10, record + 8 + 4 * (layout.options.length + i), 0);
  });
  for (const field of Object.values(layout.fields)) {
    const unset = a.label();
    if (field.through !== undefined) {
      a.load(8, 1, 8, field.through).jumpIfEqual(1, 0, unset);
      a.load(field.sourceWidth, 1, 1, field.source);
    } else {
      a.load(field.sourceWidth, 1, 8, field.source);
    }
    if (field.nonNull) {
      const isNull = a.label();
      a.moveImmediate(2, 0).jumpIfEqual(1, 0, isNull).moveImmediate(2, 1).bind(isNull);
      a.store(1, 10, record + field.at, 2);
    } else {
      a.store(field.width, 10, record + field.at, 1);
    }
    a.bind(unset);
  }
  if (layout.hopLimit)
    assembleHopLimit(
      a,
      record + layout.hopLimit.at,
      record + layout.hopLimit.knownAt,
      layout.hopLimit.places,
    );
  a.load(8, 1, 7, 0); // meta->seq
  a.move(2, 10).addImmediate(2, record).moveImmediate(3, layout.size).call(Helper.seqWrite);
  a.bind(done);
  a.moveImmediate(0, 0).exit();
  return a.bytes();
}

/**
 * IPV6_UNICAST_HOPS, as do_ipv6_getsockopt and ip6_dst_hoplimit work it out, written as
 * an int at `value` (frame offset) with a 1 at `known`; nothing where the socket has no
 * ipv6_pinfo or the route's metrics could not be read. With r8 the struct tcp_sock:
 *   val = np->hop_limit
 *   if val < 0 and the socket has a cached route dst:
 *     val = dst's RTAX_HOPLIMIT metric, or if that is 0 the hop_limit of dst->dev's
 *           inet6_dev, or without one the devconf_all hop_limit of dst->dev's namespace
 *   if val < 0: val = the socket's namespace's devconf_all hop_limit
 * The metrics are a plain array behind a flagged pointer (no type the verifier can
 * follow), so they are read with bpf_probe_read_kernel; every other step is a load the
 * verifier checks against the kernel's types. Nothing is written to any of them.
 */
function assembleHopLimit(a: Assembler, value: number, known: number, p: HopLimitPlaces): void {
  const end = a.label();
  const have = a.label();
  const noDevice = a.label();
  const routeDone = a.label();
  const fromNamespace = a.label();
  a.load(8, 1, 8, p.pinet6).jumpIfEqual(1, 0, end);
  a.load(p.hopLimit.size as Width, 2, 1, p.hopLimit.offset).signExtend(2, p.hopLimit.size as Width);
  a.jumpIfSignedAtLeast(2, 0, have);
  a.load(8, 9, 8, p.dstCache).jumpIfEqual(9, 0, fromNamespace);
  // dst_metric_raw(dst, RTAX_HOPLIMIT): the metrics array, flags masked off.
  a.load(8, 3, 9, p.metrics)
    .andImmediate(3, ~DST_METRICS_FLAGS)
    .addImmediate(3, 4 * (RTAX_HOPLIMIT - 1))
    .move(1, 10)
    .addImmediate(1, value)
    .moveImmediate(2, 4)
    .call(Helper.probeReadKernel)
    .jumpIfNotEqual(0, 0, end);
  a.load(4, 2, 10, value).signExtend(2, 4).jumpIfNotEqual(2, 0, routeDone);
  a.load(8, 1, 9, p.dev);
  a.load(8, 3, 1, p.ip6Ptr).jumpIfEqual(3, 0, noDevice);
  a.load(p.deviceHopLimit.size as Width, 2, 3, p.deviceHopLimit.offset);
  a.signExtend(2, p.deviceHopLimit.size as Width).jump(routeDone);
  a.bind(noDevice);
  a.load(8, 1, 1, p.deviceNet).load(8, 1, 1, p.devconfAll);
  a.load(p.devconfHopLimit.size as Width, 2, 1, p.devconfHopLimit.offset);
  a.signExtend(2, p.devconfHopLimit.size as Width);
  a.bind(routeDone);
  a.jumpIfSignedAtLeast(2, 0, have);
  a.bind(fromNamespace);
  a.load(8, 1, 8, p.sockNet).load(8, 1, 1, p.devconfAll);
  a.load(p.devconfHopLimit.size as Width, 2, 1, p.devconfHopLimit.offset);
  a.signExtend(2, p.devconfHopLimit.size as Width);
  a.bind(have);
  a.store(4, 10, value, 2).storeImmediate(1, 10, known, 1);
  a.bind(end);
}

/** The records of one pass, looked up by cookie (sock_diag's idiag_cookie, in decimal). */
export class TcpOptionRecords {
  private readonly view: DataView;
  /** Record offset by cookie. */
  private readonly index: IdIndex;
  /** By record number: the first record with the same values (RecordIndexArrays.classes). */
  private readonly classes: Int32Array;

  /** `index`: the records' index where the reader thread made it; else it is made here. */
  constructor(
    private readonly layout: Layout,
    bytes: Uint8Array,
    index: RecordIndexArrays = indexRecords(bytes, layout.size),
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.index = new IdIndex(index.cookies);
    // An index made elsewhere (the reader thread) must be of these very records.
    const records = Math.floor(bytes.byteLength / layout.size);
    if (index.classes.length !== records)
      throw new Error(`the options pass's index has ${index.classes.length} records, its bytes ${records}`);
    this.classes = index.classes;
  }

  get size(): number {
    return this.index.size;
  }

  /**
   * What the record's values are, apart from its cookie, as a number: two records have
   * the same one exactly when they hold the same values.
   */
  contentClass(record: number): number {
    return this.classes[record / this.layout.size] as number;
  }

  /** The record of the socket with `cookie` (decimal, as sock_diag's), or -1 when the pass did not see it. */
  find(cookie: string): number {
    return this.index.get(Number(cookie));
  }

  /** Option `i` of the layout's list: its value, or null where bpf_getsockopt refused it. */
  option(record: number, i: number): number | null {
    const count = this.layout.options.length;
    if (this.view.getInt32(record + 8 + 4 * (count + i), hostIsLittleEndian) !== 0) return null;
    return this.view.getInt32(record + 8 + 4 * i, hostIsLittleEndian);
  }

  /**
   * A reader of one copied field of 1, 2 or 4 bytes (an int, u8 or u16, sign-extended
   * where it is signed), or a bitfield's bits alone: made once, so that reading a
   * socket's value neither looks the field up by name nor chooses its width. Null where
   * this kernel lacks the field.
   */
  smallReader(name: TcpField): ((record: number) => number) | null {
    const field = this.layout.fields[name];
    if (field === undefined) return null;
    const { at, width, bits, signed } = field;
    const v = this.view;
    if (width === 1 && signed) return (record) => v.getInt8(record + at);
    if (width === 1 && bits) {
      const mask = (1 << bits.width) - 1;
      return (record) => (v.getUint8(record + at) >> bits.shift) & mask;
    }
    if (width === 1) return (record) => v.getUint8(record + at);
    if (width === 2 && signed) return (record) => v.getInt16(record + at, hostIsLittleEndian);
    if (width === 2) return (record) => v.getUint16(record + at, hostIsLittleEndian);
    if (width === 4) return (record) => v.getInt32(record + at, hostIsLittleEndian);
    throw new Error(`tcp_sock field ${name} is ${width} bytes, not a small one`);
  }

  /** A reader of bit `bit` of a long field (a flags word), made once; null where this kernel lacks the field. */
  bitReader(name: TcpField, bit: number): ((record: number) => boolean) | null {
    const field = this.layout.fields[name];
    if (field === undefined || field.width !== 8) return null;
    const word = field.at + (bit < 32 === hostIsLittleEndian ? 0 : 4);
    const shift = bit & 31;
    const v = this.view;
    return (record) => ((v.getUint32(record + word, hostIsLittleEndian) >>> shift) & 1) === 1;
  }

  /** A copied field of 8 bytes (a long): the rare caller that needs its value. */
  long(record: number, name: TcpField): bigint {
    return this.view.getBigInt64(record + this.longAt(name), hostIsLittleEndian);
  }

  /** Whether a long field is LONG_MAX (a timeout never set): no bigint made, as for nearly every socket. */
  longIsMax(record: number, name: TcpField): boolean {
    const at = record + this.longAt(name);
    const [low, high] = hostIsLittleEndian ? [at, at + 4] : [at + 4, at];
    return (
      this.view.getUint32(high, hostIsLittleEndian) === 0x7fffffff &&
      this.view.getUint32(low, hostIsLittleEndian) === 0xffffffff
    );
  }

  /**
   * A reader of IPV6_UNICAST_HOPS as the program worked it out (undefined for a socket
   * where it could not), made once; null where the program did not.
   */
  hopLimitReader(): ((record: number) => number | undefined) | null {
    const hopLimit = this.layout.hopLimit;
    if (!hopLimit) return null;
    const { at, knownAt } = hopLimit;
    const v = this.view;
    return (record) =>
      v.getUint8(record + knownAt) === 1 ? v.getInt32(record + at, hostIsLittleEndian) : undefined;
  }

  /** Whether this kernel has the field (and the pass read it). */
  has(name: TcpField): boolean {
    return this.layout.fields[name] !== undefined;
  }

  private longAt(name: TcpField): number {
    const field = this.layout.fields[name];
    if (field === undefined) throw new Error(`the pass did not read tcp_sock field ${name}`);
    const { at, width } = field;
    if (width !== 8) throw new Error(`tcp_sock field ${name} is ${width} bytes, not a long`);
    return at;
  }

  get optionNames(): string[] {
    return this.layout.options.map((o) => o.name);
  }
}

/** What a pass needs from the kernel's BTF, worked out once per process. */
export interface PreparedTcpProgram {
  readonly layout: Layout;
  readonly program: Uint8Array;
  readonly attachBtfId: number;
}

/**
 * The program for `optionNames` (a subset of BPF_READABLE_TCP_OPTIONS) against this
 * kernel's types. Throws a ProtocolError where the kernel's types lack a field.
 */
export function prepareTcpProgram(
  btf: Btf,
  optionNames: readonly string[],
  fieldOptions: ReadonlySet<string> = FIELD_READ_TCP_OPTIONS,
  kernelReads: boolean = kernelReadsAllowed(),
): PreparedTcpProgram {
  for (const name of optionNames)
    if (!BPF_READABLE_TCP_OPTIONS.includes(name)) throw new Error(`${name} is not read through BPF`);
  const layout = layoutFor(btf, optionNames, fieldOptions, kernelReads);
  return { layout, program: assemble(layout), attachBtfId: btf.find('bpf_iter_tcp', BtfKind.Function) };
}

/**
 * One pass of a prepared program over the TCP sockets of this process's network
 * namespace (about `expectedSockets` of them, which sizes the buffer). Throws a BpfError where the kernel refuses (no CAP_BPF and CAP_PERFMON, a
 * kernel before bpf_getsockopt in iterators).
 */
export function runTcpProgram(prepared: PreparedTcpProgram, expectedSockets: number): TcpOptionRecords {
  const bytes = runIteratorProgram(
    prepared.program,
    prepared.attachBtfId,
    PROGRAM_NAME,
    expectedBytes(prepared, expectedSockets),
  );
  return new TcpOptionRecords(prepared.layout, bytes);
}

const PROGRAM_NAME = 'knetstat_tcp';

/** Room for the sockets expected and some opened since. */
function expectedBytes(prepared: PreparedTcpProgram, expectedSockets: number): number {
  return prepared.layout.size * (expectedSockets + (expectedSockets >> 4) + 64);
}

/**
 * How long the main thread waits, after its own work, for a pass read on a thread: far
 * more than any real one takes (80 ms for 36,000 sockets here); past it, getsockopt
 * reads the options.
 */
const THREAD_PATIENCE_MS = 20_000;

/** A pass begun (startTcpProgram), read on the reader thread where there is one; finished once. */
export class PendingTcpPass {
  constructor(
    private readonly layout: Layout,
    private readonly run: IteratorRun,
    private readonly thread: IteratorThread | undefined,
    private readonly expectedBytes: number,
  ) {}

  /** Waits for the thread's records, or reads them now; the program is unloaded whatever the outcome. */
  finish(): TcpOptionRecords {
    let read: ThreadRead;
    try {
      read = this.thread
        ? this.thread.wait(THREAD_PATIENCE_MS)
        : { bytes: readToEnd(this.run.fd, this.expectedBytes) };
    } finally {
      this.run.close();
    }
    return new TcpOptionRecords(this.layout, read.bytes, read.index);
  }
}

/**
 * runTcpProgram's pass loaded now and, where a second CPU and a thread allow, read on
 * that thread, so that the kernel runs it while this thread dumps sock_diag; `finish`
 * collects it (or reads it then, without a thread). Throws as runTcpProgram does where
 * the kernel refuses the program.
 */
export function startTcpProgram(prepared: PreparedTcpProgram, expectedSockets: number): PendingTcpPass {
  const run = IteratorRun.start(prepared.program, prepared.attachBtfId, PROGRAM_NAME);
  const bytes = expectedBytes(prepared, expectedSockets);
  let thread: IteratorThread | undefined;
  if (iteratorThreadsUsable()) {
    try {
      thread = IteratorThread.start(run.fd, bytes, prepared.layout.size);
    } catch {
      thread = undefined; // read in finish(), as without a second CPU
    }
  }
  return new PendingTcpPass(prepared.layout, run, thread, bytes);
}
