/**
 * Options of every TCP socket of the namespace in one pass, by a BPF iterator (iter/tcp):
 * for each full socket (not TIME_WAIT or a request) its cookie, the options the kernel
 * lets a BPF program read with bpf_getsockopt — which runs the kernel's own getsockopt
 * code, do_tcp_getsockopt and sk_getsockopt — and the struct fields (offsets from the
 * kernel's BTF) from which getsockopt works out the options bpf_getsockopt refuses;
 * bpf-pass.ts does that arithmetic.
 *
 * Nothing here writes to a socket: bpf_getsockopt is the getsockopt path; the fields
 * are loads the verifier checks against the kernel's types.
 */

import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import { Assembler, Helper, IteratorRun, runIteratorProgram, type Width } from '../sys/bpf.js';
import { type Btf, BtfKind, type FieldPlace } from '../sys/btf.js';
import { ProtocolError } from '../sys/errors.js';
import { IteratorThread, iteratorThreadsUsable } from '../sys/iterator-thread.js';
import { readToEnd } from '../sys/read-to-end.js';
import { BPF_READABLE_TCP_OPTIONS, OPTION_CATALOGUE, type OptionSpec } from './catalogue.js';
import { IdIndex } from './id-index.js';

/** The path from struct tcp_sock to its struct sock. */
const SK = ['inet_conn', 'icsk_inet', 'sk'] as const;

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
}

/**
 * Fields of struct tcp_sock the program copies. Each is optional: where this kernel's
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
} satisfies Record<string, FieldSpec>;
export type TcpField = keyof typeof FIELDS;

/** Every option that some field of the pass stands in for. */
export const FIELD_READ_TCP_OPTIONS: ReadonlySet<string> = new Set(
  Object.values(FIELDS).flatMap((field: FieldSpec) => field.for),
);

interface FieldLayout {
  /** Byte offset in the record, and the width written there. */
  at: number;
  width: Width;
  /** Offset in struct tcp_sock, and the width read there. */
  source: number;
  sourceWidth: Width;
  /** A bitfield: where in its byte. */
  bits?: { shift: number; width: number };
  signed?: true;
  nonNull?: true;
}

interface Layout {
  /** Option names, in record order, with their levels and numbers. */
  options: readonly OptionSpec[];
  /** The fields this kernel has, of those wanted. */
  fields: Partial<Record<TcpField, FieldLayout>>;
  size: number;
}

function specOf(name: string): OptionSpec {
  const spec = OPTION_CATALOGUE.find((o) => o.name === name && o.protocols.includes('tcp'));
  if (!spec) throw new Error(`no TCP option ${name} in the catalogue`);
  return spec;
}

/** Where a field lies in this kernel's struct tcp_sock, or null where it has none. */
function placeOf(btf: Btf, field: FieldSpec): FieldPlace | null {
  for (const path of field.paths) {
    try {
      return btf.field('tcp_sock', path);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
    }
  }
  return null;
}

/**
 * Record layout: cookie, a value then a result per option, then the fields that the
 * options in `fieldOptions` need, widest first.
 */
function layoutFor(btf: Btf, optionNames: readonly string[], fieldOptions: ReadonlySet<string>): Layout {
  const options = optionNames.map(specOf);
  let at = 8 + 8 * options.length;
  const fields: Layout['fields'] = {};
  const places: Array<{ name: TcpField; spec: FieldSpec; place: FieldPlace; width: Width }> = [];
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
  return { options, fields, size: Math.ceil(at / 8) * 8 };
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
    a.load(field.sourceWidth, 1, 8, field.source);
    if (field.nonNull) {
      const isNull = a.label();
      a.moveImmediate(2, 0).jumpIfEqual(1, 0, isNull).moveImmediate(2, 1).bind(isNull);
      a.store(1, 10, record + field.at, 2);
    } else {
      a.store(field.width, 10, record + field.at, 1);
    }
  }
  a.load(8, 1, 7, 0); // meta->seq
  a.move(2, 10).addImmediate(2, record).moveImmediate(3, layout.size).call(Helper.seqWrite);
  a.bind(done);
  a.moveImmediate(0, 0).exit();
  return a.bytes();
}

/** The records of one pass, looked up by cookie (sock_diag's idiag_cookie, in decimal). */
export class TcpOptionRecords {
  private readonly view: DataView;
  /** Record offset by cookie. */
  private readonly index: IdIndex;

  constructor(
    private readonly layout: Layout,
    bytes: Uint8Array,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.index = new IdIndex(Math.floor(bytes.byteLength / layout.size));
    const [low, high] = hostIsLittleEndian ? [0, 4] : [4, 0];
    for (let at = 0; at + layout.size <= bytes.byteLength; at += layout.size) {
      const cookie =
        this.view.getUint32(at + high, hostIsLittleEndian) * 2 ** 32 +
        this.view.getUint32(at + low, hostIsLittleEndian);
      // Past 2^53 (never reached in practice) the socket is left to getsockopt.
      if (cookie > 0 && Number.isSafeInteger(cookie)) this.index.set(cookie, at);
    }
  }

  get size(): number {
    return this.index.size;
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
): PreparedTcpProgram {
  for (const name of optionNames)
    if (!BPF_READABLE_TCP_OPTIONS.includes(name)) throw new Error(`${name} is not read through BPF`);
  const layout = layoutFor(btf, optionNames, fieldOptions);
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
    let bytes: Uint8Array;
    try {
      bytes = this.thread ? this.thread.wait(THREAD_PATIENCE_MS) : readToEnd(this.run.fd, this.expectedBytes);
    } finally {
      this.run.close();
    }
    return new TcpOptionRecords(this.layout, bytes);
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
      thread = IteratorThread.start(run.fd, bytes);
    } catch {
      thread = undefined; // read in finish(), as without a second CPU
    }
  }
  return new PendingTcpPass(prepared.layout, run, thread, bytes);
}
