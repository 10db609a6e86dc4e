/**
 * Shared plumbing for the property tests: byte builders that lay out netlink and
 * inet_diag structs the way the kernel does (test-side, independent of the codec under
 * test), fast-check arbitraries for well-formed and damaged input, and the two ways we
 * catch a read past the end of a buffer.
 */
import fc from 'fast-check';
import { hostIsLittleEndian } from '../../src/netlink/byte-reader.js';
import { ProtocolError, SystemCallError } from '../../src/sys/errors.js';

/** A byte that never occurs in generated data around a slice, to spot reads past it. */
export const SENTINEL = 0xa5;

/** A copy in an ArrayBuffer of exactly its length: any DataView read past it throws RangeError. */
export function exactCopy(bytes: Uint8Array): Uint8Array {
  const copy = new Uint8Array(new ArrayBuffer(bytes.byteLength));
  copy.set(bytes);
  return copy;
}

/** The same bytes as a subarray of a larger buffer whose other bytes are SENTINEL. */
export function embedded(bytes: Uint8Array, before: number, after: number): Uint8Array {
  const big = new Uint8Array(before + bytes.byteLength + after).fill(SENTINEL);
  big.set(bytes, before);
  return big.subarray(before, before + bytes.byteLength);
}

/** True when `view` lies inside `outer` (same memory, within its bounds). */
export function within(view: Uint8Array, outer: Uint8Array): boolean {
  return (
    view.buffer === outer.buffer &&
    view.byteOffset >= outer.byteOffset &&
    view.byteOffset + view.byteLength <= outer.byteOffset + outer.byteLength
  );
}

export type Outcome<T> = { value: T } | { error: ProtocolError | SystemCallError };

/**
 * Runs a parser: a value, or one of the two typed errors. Anything else (RangeError,
 * TypeError, a plain Error) is rethrown, which fails the property that called it.
 */
export function typedOutcome<T>(parse: () => T): Outcome<T> {
  try {
    return { value: parse() };
  } catch (error) {
    if (error instanceof ProtocolError || error instanceof SystemCallError) return { error };
    throw error;
  }
}

/** What an outcome looks like for comparing two runs: the value, or the error's class and message. */
export function comparable<T>(outcome: Outcome<T>): unknown {
  return 'value' in outcome
    ? { value: outcome.value }
    : { error: outcome.error.name, message: outcome.error.message };
}

class Writer {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
  }
  u8(at: number, v: number) {
    this.view.setUint8(at, v);
  }
  u16(at: number, v: number) {
    this.view.setUint16(at, v, hostIsLittleEndian);
  }
  u16be(at: number, v: number) {
    this.view.setUint16(at, v, false);
  }
  u32(at: number, v: number) {
    this.view.setUint32(at, v, hostIsLittleEndian);
  }
  set(at: number, b: Uint8Array) {
    this.bytes.set(b, at);
  }
  get result() {
    return this.bytes;
  }
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** struct nlmsghdr + payload, padded to 4 bytes as the kernel pads between messages. */
export function netlinkMessage(
  header: { type: number; flags: number; sequence: number; portId?: number; length?: number },
  payload: Uint8Array,
): Uint8Array {
  const length = 16 + payload.byteLength;
  const w = new Writer(align4(length));
  w.u32(0, header.length ?? length);
  w.u16(4, header.type);
  w.u16(6, header.flags);
  w.u32(8, header.sequence);
  w.u32(12, header.portId ?? 0);
  w.set(16, payload);
  return w.result;
}

/** struct rtattr + payload, padded to 4. */
export function rtattr(type: number, payload: Uint8Array): Uint8Array {
  const w = new Writer(align4(4 + payload.byteLength));
  w.u16(0, 4 + payload.byteLength);
  w.u16(2, type);
  w.set(4, payload);
  return w.result;
}

export function nlmsgerr(errno: number): Uint8Array {
  const w = new Writer(20);
  new DataView(w.result.buffer).setInt32(0, -errno, hostIsLittleEndian);
  return w.result;
}

export interface DiagRecord {
  family: 2 | 10;
  state: number;
  localPort: number;
  remotePort: number;
  local: Uint8Array;
  remote: Uint8Array;
  interfaceIndex: number;
  cookie: [number, number];
  expires: number;
  recvQ: number;
  sendQ: number;
  uid: number;
  inode: number;
}

/** struct inet_diag_msg (72 bytes) followed by the given attributes. */
export function inetDiagMessage(r: DiagRecord, attributes: readonly Uint8Array[] = []): Uint8Array {
  const w = new Writer(72);
  w.u8(0, r.family);
  w.u8(1, r.state);
  w.u16be(4, r.localPort);
  w.u16be(6, r.remotePort);
  w.set(8, r.local);
  w.set(24, r.remote);
  w.u32(40, r.interfaceIndex);
  w.u32(44, r.cookie[0]);
  w.u32(48, r.cookie[1]);
  w.u32(52, r.expires);
  w.u32(56, r.recvQ);
  w.u32(60, r.sendQ);
  w.u32(64, r.uid);
  w.u32(68, r.inode);
  return concat([w.result, ...attributes]);
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });

export const diagRecord: fc.Arbitrary<DiagRecord> = fc.record({
  family: fc.constantFrom(2 as const, 10 as const),
  state: fc.integer({ min: 0, max: 255 }),
  localPort: fc.integer({ min: 0, max: 0xffff }),
  remotePort: fc.integer({ min: 0, max: 0xffff }),
  local: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  remote: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  interfaceIndex: u32,
  cookie: fc.tuple(u32, u32),
  expires: u32,
  recvQ: u32,
  sendQ: u32,
  uid: u32,
  inode: u32,
});

/** tcp_info of any length a kernel might send (old ones are shorter), or a broken one. */
export const tcpInfoBytes = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 300 }),
  fc
    .constantFrom(104, 160, 192, 224, 232, 236, 248, 280)
    .chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
);

export const memInfoBytes = fc.uint8Array({ minLength: 0, maxLength: 48 });

/** The attributes a dump carries: tcp_info, sk_meminfo, and a few the parser should skip. */
export const attributeList = fc.array(
  fc.oneof(
    tcpInfoBytes.map((b) => rtattr(2, b)),
    memInfoBytes.map((b) => rtattr(7, b)),
    fc
      .tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 40 }))
      .map(([t, b]) => rtattr(t, b)),
  ),
  { maxLength: 5 },
);

/**
 * Headers whose length field says anything (0, less than a header, past the end), with
 * whatever follows: the inputs that make a walker stall or overrun.
 */
export function lyingRecords(headerSize: 4 | 16): fc.Arbitrary<Uint8Array> {
  const length = fc.oneof(
    fc.integer({ min: 0, max: headerSize + 8 }),
    fc.integer({ min: 0, max: headerSize === 4 ? 0xffff : 0xffffffff }),
  );
  return fc
    .array(fc.tuple(length, fc.uint8Array({ minLength: headerSize - 2, maxLength: headerSize + 24 })), {
      minLength: 1,
      maxLength: 5,
    })
    .map((records) =>
      concat(
        records.map(([declared, rest]) => {
          const head = new Uint8Array(headerSize === 4 ? 2 : 4);
          const view = new DataView(head.buffer);
          if (headerSize === 4) view.setUint16(0, declared, hostIsLittleEndian);
          else view.setUint32(0, declared, hostIsLittleEndian);
          return concat([head, rest]);
        }),
      ),
    );
}

/** Damage to a byte string: cut it short, overwrite some bytes, or both. */
export function damaged(bytes: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return bytes.chain((b) =>
    fc
      .record({
        cut: fc.option(fc.integer({ min: 0, max: Math.max(0, b.byteLength) }), { nil: undefined }),
        flips: fc.array(
          fc.tuple(
            fc.integer({ min: 0, max: Math.max(0, b.byteLength - 1) }),
            fc.integer({ min: 0, max: 255 }),
          ),
          { maxLength: 8 },
        ),
      })
      .map(({ cut, flips }) => {
        const out = b.slice(0, cut ?? b.byteLength);
        for (const [at, value] of flips) if (at < out.byteLength) out[at] = value;
        return out;
      }),
  );
}
