/**
 * Options of every TCP socket of the namespace in one pass, by a BPF iterator (iter/tcp):
 * for each full socket (not TIME_WAIT or a request) its cookie, the options the kernel
 * lets a BPF program read with bpf_getsockopt — which runs the kernel's own getsockopt
 * code, do_tcp_getsockopt and sk_getsockopt — and a few fields read where the kernel
 * keeps them (offsets from the kernel's BTF), which tell whether the options that
 * bpf_getsockopt refuses are at their defaults.
 *
 * Nothing here writes to a socket: bpf_getsockopt is the getsockopt path; the fields
 * are loads the verifier checks against the kernel's types.
 */

import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import { Assembler, Helper, IteratorRun, runIteratorProgram, type Width } from '../sys/bpf.js';
import { type Btf, BtfKind } from '../sys/btf.js';
import { IteratorThread } from '../sys/iterator-thread.js';
import { BPF_READABLE_TCP_OPTIONS, OPTION_CATALOGUE, type OptionSpec } from './catalogue.js';

/** Fields of struct tcp_sock the program copies, by path, and the width it reads. */
const FIELDS = {
  rcvtimeo: ['inet_conn', 'icsk_inet', 'sk', 'sk_rcvtimeo'],
  sndtimeo: ['inet_conn', 'icsk_inet', 'sk', 'sk_sndtimeo'],
  flags: ['inet_conn', 'icsk_inet', 'sk', '__sk_common', 'skc_flags'],
  lingerTime: ['inet_conn', 'icsk_inet', 'sk', 'sk_lingertime'],
  fastopenMaxQueue: ['inet_conn', 'icsk_accept_queue', 'fastopenq', 'max_qlen'],
  userLocks: ['inet_conn', 'icsk_inet', 'sk', 'sk_userlocks'],
  deferAccept: ['inet_conn', 'icsk_accept_queue', 'rskq_defer_accept'],
} as const;
export type TcpField = keyof typeof FIELDS;

interface Layout {
  /** Option names, in record order, with their levels and numbers. */
  options: readonly OptionSpec[];
  /** Byte offset in the record of each field, its width, and for a bitfield where in its byte. */
  fields: Record<
    TcpField,
    { at: number; width: Width; source: number; bits?: { shift: number; width: number } }
  >;
  size: number;
}

function specOf(name: string): OptionSpec {
  const spec = OPTION_CATALOGUE.find((o) => o.name === name && o.protocols.includes('tcp'));
  if (!spec) throw new Error(`no TCP option ${name} in the catalogue`);
  return spec;
}

/** Record layout: cookie, a value then a result per option, then the fields, widest first. */
function layoutFor(btf: Btf, optionNames: readonly string[]): Layout {
  const options = optionNames.map(specOf);
  let at = 8 + 8 * options.length;
  const fields = {} as Layout['fields'];
  const places = (Object.keys(FIELDS) as TcpField[]).map((name) => ({
    name,
    place: btf.field('tcp_sock', FIELDS[name]),
  }));
  places.sort((a, b) => b.place.size - a.place.size);
  for (const { name, place } of places) {
    const width = place.size as Width;
    if (![1, 2, 4, 8].includes(width)) throw new Error(`tcp_sock field ${name} is ${place.size} bytes`);
    at = Math.ceil(at / width) * width;
    fields[name] = place.bits
      ? { at, width, source: place.offset, bits: place.bits }
      : { at, width, source: place.offset };
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
  for (const field of Object.values(layout.fields))
    a.load(field.width, 1, 8, field.source).store(field.width, 10, record + field.at, 1);
  a.load(8, 1, 7, 0); // meta->seq
  a.move(2, 10).addImmediate(2, record).moveImmediate(3, layout.size).call(Helper.seqWrite);
  a.bind(done);
  a.moveImmediate(0, 0).exit();
  return a.bytes();
}

/** The records of one pass, looked up by cookie (sock_diag's idiag_cookie, in decimal). */
export class TcpOptionRecords {
  private readonly view: DataView;
  /** Record offset by cookie; cookies are counted up from 1, so they are safe integers. */
  private readonly index = new Map<number, number>();

  constructor(
    private readonly layout: Layout,
    bytes: Uint8Array,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const [low, high] = hostIsLittleEndian ? [0, 4] : [4, 0];
    for (let at = 0; at + layout.size <= bytes.byteLength; at += layout.size) {
      const cookie =
        this.view.getUint32(at + high, hostIsLittleEndian) * 2 ** 32 +
        this.view.getUint32(at + low, hostIsLittleEndian);
      // Past 2^53 (never reached in practice) the socket is left to getsockopt.
      if (Number.isSafeInteger(cookie)) this.index.set(cookie, at);
    }
  }

  get size(): number {
    return this.index.size;
  }

  /** The record of the socket with `cookie`, or -1 when the pass did not see it. */
  find(cookie: string): number {
    return this.index.get(Number(cookie)) ?? -1;
  }

  /** Option `i` of the layout's list: its value, or null where bpf_getsockopt refused it. */
  option(record: number, i: number): number | null {
    const count = this.layout.options.length;
    if (this.view.getInt32(record + 8 + 4 * (count + i), hostIsLittleEndian) !== 0) return null;
    return this.view.getInt32(record + 8 + 4 * i, hostIsLittleEndian);
  }

  /** A copied field of 1, 2 or 4 bytes (an int, u8 or u16), or a bitfield's bits alone. */
  small(record: number, name: TcpField): number {
    const { at, width, bits } = this.layout.fields[name];
    const v = this.view;
    switch (width) {
      case 1: {
        const byte = v.getUint8(record + at);
        return bits ? (byte >> bits.shift) & ((1 << bits.width) - 1) : byte;
      }
      case 2:
        return v.getUint16(record + at, hostIsLittleEndian);
      case 4:
        return v.getInt32(record + at, hostIsLittleEndian);
      default:
        throw new Error(`tcp_sock field ${name} is ${width} bytes, not a small one`);
    }
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

  /** Bit `bit` (below 64) of a long field, such as a flags word. */
  longBit(record: number, name: TcpField, bit: number): boolean {
    const at = record + this.longAt(name);
    const word = bit < 32 === hostIsLittleEndian ? at : at + 4;
    return ((this.view.getUint32(word, hostIsLittleEndian) >>> (bit & 31)) & 1) === 1;
  }

  private longAt(name: TcpField): number {
    const { at, width } = this.layout.fields[name];
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
export function prepareTcpProgram(btf: Btf, optionNames: readonly string[]): PreparedTcpProgram {
  for (const name of optionNames)
    if (!BPF_READABLE_TCP_OPTIONS.includes(name)) throw new Error(`${name} is not read through BPF`);
  const layout = layoutFor(btf, optionNames);
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

/** A pass begun on the reader thread (startTcpProgram), to be finished once. */
export class PendingTcpPass {
  constructor(
    private readonly layout: Layout,
    private readonly run: IteratorRun,
    private readonly thread: IteratorThread,
  ) {}

  /** Waits for the thread's records; the program is unloaded whatever the outcome. */
  finish(): TcpOptionRecords {
    let bytes: Uint8Array;
    try {
      bytes = this.thread.wait(THREAD_PATIENCE_MS);
    } finally {
      this.run.close();
    }
    return new TcpOptionRecords(this.layout, bytes);
  }
}

/**
 * runTcpProgram's pass started and read on a thread, so that the kernel runs it on the
 * second CPU while this thread dumps sock_diag; `finish` collects it. Throws as
 * runTcpProgram does where the kernel refuses the program.
 */
export function startTcpProgram(prepared: PreparedTcpProgram, expectedSockets: number): PendingTcpPass {
  const run = IteratorRun.start(prepared.program, prepared.attachBtfId, PROGRAM_NAME);
  try {
    return new PendingTcpPass(
      prepared.layout,
      run,
      IteratorThread.start(run.fd, expectedBytes(prepared, expectedSockets)),
    );
  } catch (error) {
    run.close();
    throw error;
  }
}
