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
import { Assembler, Helper, runIteratorProgram, type Width } from '../sys/bpf.js';
import { type Btf, BtfKind } from '../sys/btf.js';
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

  /** A copied field, as a bigint (longs and flags words are 64 bits); a bitfield's bits alone. */
  field(record: number, name: TcpField): bigint {
    const { at, width, bits } = this.layout.fields[name];
    const v = this.view;
    switch (width) {
      case 1: {
        const byte = v.getUint8(record + at);
        return BigInt(bits ? (byte >> bits.shift) & ((1 << bits.width) - 1) : byte);
      }
      case 2:
        return BigInt(v.getUint16(record + at, hostIsLittleEndian));
      case 4:
        return BigInt(v.getInt32(record + at, hostIsLittleEndian));
      default:
        return v.getBigInt64(record + at, hostIsLittleEndian);
    }
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
  // Room for the sockets the dump listed and some opened since.
  const expected = prepared.layout.size * (expectedSockets + (expectedSockets >> 4) + 64);
  const bytes = runIteratorProgram(prepared.program, prepared.attachBtfId, 'knetstat_tcp', expected);
  return new TcpOptionRecords(prepared.layout, bytes);
}
