/**
 * The netlink codec and the dump loop against random, truncated and corrupted input:
 * every call returns a result or throws ProtocolError / SystemCallError, never anything
 * else; it never reads outside the bytes it was given (exact-length copies turn an
 * overread into a RangeError; copies inside a sentinel-filled buffer must parse the
 * same and hand back views only inside the slice); and it always terminates.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIPv4, formatIPv6 } from '../../src/address.js';
import { hostIsLittleEndian } from '../../src/netlink/byte-reader.js';
import {
  type InetDiagMessage,
  parseInetDiagMessage,
  parseSocketMemoryInfo,
  parseTcpInfo,
  splitAttributes,
} from '../../src/netlink/inet-diag.js';
import { NLM_F_DUMP_INTR, splitNetlinkMessages } from '../../src/netlink/message.js';
import {
  type DatagramTransport,
  type DumpRequest,
  dumpInetSockets,
  MAX_DUMP_ATTEMPTS,
} from '../../src/netlink/sock-diag.js';
import { ProtocolError, SystemCallError } from '../../src/sys/errors.js';
import {
  attributeList,
  comparable,
  concat,
  type DiagRecord,
  damaged,
  diagRecord,
  embedded,
  exactCopy,
  inetDiagMessage,
  lyingRecords,
  memInfoBytes,
  netlinkMessage,
  nlmsgerr,
  rtattr,
  SENTINEL,
  tcpInfoBytes,
  typedOutcome,
  within,
} from './bytes.js';

const RUNS = { numRuns: 300 };

/** Drains a generator, failing if it yields more items than the input could hold. */
function drain<T>(items: Iterable<T>, atMost: number): T[] {
  const out: T[] = [];
  for (const item of items) {
    out.push(item);
    if (out.length > atMost) throw new Error(`yielded more than ${atMost} items: it does not terminate`);
  }
  return out;
}

const padding = fc.integer({ min: 0, max: 64 });

describe('splitNetlinkMessages', () => {
  const datagram = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    lyingRecords(16),
    damaged(
      fc
        .array(
          fc.record({
            type: fc.integer({ min: 0, max: 0xffff }),
            flags: fc.integer({ min: 0, max: 0xffff }),
            sequence: fc.integer({ min: 0, max: 0xffffffff }),
            payload: fc.uint8Array({ maxLength: 100 }),
          }),
          { maxLength: 5 },
        )
        .map((ms) => concat(ms.map((m) => netlinkMessage(m, m.payload)))),
    ),
  );

  it('returns messages or a ProtocolError, reads only its slice, and terminates', () => {
    fc.assert(
      fc.property(datagram, padding, padding, (bytes, before, after) => {
        const exact = typedOutcome(() =>
          drain(splitNetlinkMessages(exactCopy(bytes)), bytes.byteLength / 16),
        );
        const slice = embedded(bytes, before, after);
        const inside = typedOutcome(() => drain(splitNetlinkMessages(slice), bytes.byteLength / 16));
        if ('value' in inside) {
          for (const m of inside.value) expect(within(m.payload, slice)).toBe(true);
        }
        const flatten = (o: typeof exact) =>
          comparable('value' in o ? { value: o.value.map((m) => [m.header, [...m.payload]]) } : o);
        expect(flatten(inside)).toEqual(flatten(exact));
      }),
      RUNS,
    );
  });

  it('splits well-formed datagrams back into the messages that made them', () => {
    const message = fc.record({
      type: fc.integer({ min: 0, max: 0xffff }),
      flags: fc.integer({ min: 0, max: 0xffff }),
      sequence: fc.integer({ min: 0, max: 0xffffffff }),
      portId: fc.integer({ min: 0, max: 0xffffffff }),
      payload: fc.uint8Array({ maxLength: 100 }),
    });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 6 }), (messages) => {
        const parsed = [...splitNetlinkMessages(concat(messages.map((m) => netlinkMessage(m, m.payload))))];
        expect(parsed.map((m) => ({ ...m.header, payload: [...m.payload] }))).toEqual(
          messages.map((m) => ({
            length: 16 + m.payload.byteLength,
            type: m.type,
            flags: m.flags,
            sequence: m.sequence,
            portId: m.portId,
            payload: [...m.payload],
          })),
        );
      }),
      RUNS,
    );
  });
});

describe('splitAttributes', () => {
  const attributes = fc.oneof(
    fc.uint8Array({ maxLength: 120 }),
    lyingRecords(4),
    damaged(attributeList.map(concat)),
  );

  it('returns attributes or a ProtocolError, reads only its slice, and terminates', () => {
    fc.assert(
      fc.property(attributes, padding, padding, (bytes, before, after) => {
        const exact = typedOutcome(() => drain(splitAttributes(exactCopy(bytes)), bytes.byteLength / 4));
        const slice = embedded(bytes, before, after);
        const inside = typedOutcome(() => drain(splitAttributes(slice), bytes.byteLength / 4));
        if ('value' in inside) for (const a of inside.value) expect(within(a.payload, slice)).toBe(true);
        const flatten = (o: typeof exact) =>
          comparable('value' in o ? { value: o.value.map((a) => [a.type, [...a.payload]]) } : o);
        expect(flatten(inside)).toEqual(flatten(exact));
      }),
      RUNS,
    );
  });

  it('gives back each attribute of a well-formed list', () => {
    const list = fc.array(fc.tuple(fc.integer({ min: 0, max: 0x3fff }), fc.uint8Array({ maxLength: 60 })), {
      maxLength: 6,
    });
    fc.assert(
      fc.property(list, (pairs) => {
        const parsed = [...splitAttributes(concat(pairs.map(([t, b]) => rtattr(t, b))))];
        expect(parsed.map((a) => [a.type, [...a.payload]])).toEqual(pairs.map(([t, b]) => [t, [...b]]));
      }),
      RUNS,
    );
  });
});

/** What parseInetDiagMessage must make of a record, by the layout in inet_diag.h. */
function expectedFields(r: DiagRecord) {
  const family = r.family === 2 ? 4 : 6;
  const address = (b: Uint8Array) => (family === 4 ? formatIPv4(b.subarray(0, 4)) : formatIPv6(b));
  return {
    family,
    state: r.state,
    local: { address: address(r.local), port: r.localPort },
    remote: { address: address(r.remote), port: r.remotePort },
    interfaceIndex: r.interfaceIndex,
    // In decimal, exact over the whole u64 range (cookieText): a bigint of the two words as the reference.
    cookie: ((BigInt(r.cookie[1]) << 32n) | BigInt(r.cookie[0])).toString(),
    expires: r.expires,
    recvQ: r.recvQ,
    sendQ: r.sendQ,
    uid: r.uid,
    inode: r.inode,
  };
}

describe('parseInetDiagMessage', () => {
  it('reads every field of a well-formed inet_diag_msg', () => {
    fc.assert(
      fc.property(diagRecord, (record) => {
        const message = parseInetDiagMessage(exactCopy(inetDiagMessage(record)));
        const { tcpInfo, windowDiag, memInfo, ...fields } = message;
        expect(fields).toEqual({ ...expectedFields(record), timer: 0, retransmits: 0 });
        expect(tcpInfo).toBeNull();
        expect(windowDiag).toBeNull();
        expect(memInfo).toBeNull();
      }),
      RUNS,
    );
  });

  it('returns a message or a ProtocolError for damaged ones, reading only its slice', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 160 }),
      fc.tuple(diagRecord, lyingRecords(4)).map(([r, a]) => inetDiagMessage(r, [a])),
      damaged(fc.tuple(diagRecord, attributeList).map(([r, a]) => inetDiagMessage(r, a))),
    );
    fc.assert(
      fc.property(bytes, padding, padding, (b, before, after) => {
        const exact = typedOutcome(() => parseInetDiagMessage(exactCopy(b)));
        const inside = typedOutcome(() => parseInetDiagMessage(embedded(b, before, after)));
        expect(comparable(inside)).toEqual(comparable(exact));
      }),
      RUNS,
    );
  });
});

describe('parseTcpInfo', () => {
  it('returns what the kernel sent, only fields that fit, or a ProtocolError when too short', () => {
    fc.assert(
      fc.property(tcpInfoBytes, padding, padding, (b, before, after) => {
        const exact = typedOutcome(() => parseTcpInfo(exactCopy(b)));
        expect(comparable(typedOutcome(() => parseTcpInfo(embedded(b, before, after))))).toEqual(
          comparable(exact),
        );
        if (b.byteLength < 104) {
          expect('error' in exact && exact.error instanceof ProtocolError).toBe(true);
          return;
        }
        if (!('value' in exact)) throw new Error('a long enough tcp_info must parse');
        const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const at = (offset: number) =>
          offset + 4 <= b.byteLength ? view.getUint32(offset, hostIsLittleEndian) : undefined;
        expect(exact.value.state).toBe(b[0]);
        expect(exact.value.totalRetrans).toBe(at(100));
        expect(exact.value.sndWnd).toBe(at(228));
        expect(exact.value.rcvWnd).toBe(at(232));
        expect(exact.value.bytesAcked !== undefined).toBe(b.byteLength >= 128);
        for (const value of Object.values(exact.value)) {
          // A field made of sentinel bytes would mean a read past the slice.
          expect(value === 0xa5a5a5a5 && !b.includes(SENTINEL)).toBe(false);
        }
      }),
      RUNS,
    );
  });
});

describe('parseSocketMemoryInfo', () => {
  it('returns the counters or a ProtocolError, reading only its slice', () => {
    fc.assert(
      fc.property(memInfoBytes, padding, padding, (b, before, after) => {
        const exact = typedOutcome(() => parseSocketMemoryInfo(exactCopy(b)));
        expect(comparable(typedOutcome(() => parseSocketMemoryInfo(embedded(b, before, after))))).toEqual(
          comparable(exact),
        );
        expect('value' in exact).toBe(b.byteLength >= 32);
        if ('value' in exact) expect(exact.value.drops).toBe(b.byteLength >= 36 ? exact.value.drops : 0);
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------------------
// The dump loop, fed by a fake DatagramTransport.

const SOCK_DIAG_BY_FAMILY = 20;
const NLMSG_NOOP = 1;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const ENOBUFS = 105;

/** One netlink message of a reply, before it is stamped with the request's sequence number. */
type Piece =
  | { kind: 'socket'; record: DiagRecord; intr: boolean }
  | { kind: 'stale'; record: DiagRecord }
  | { kind: 'noop' }
  | { kind: 'ack' }
  | { kind: 'error'; errno: number }
  | { kind: 'done'; intr: boolean; errno: number };

/**
 * One receive(): a datagram of pieces (optionally damaged), raw bytes, or a thrown errno.
 * A datagram is never empty: the loop reads a 0-byte receive as the end of the stream.
 */
type Step =
  | { kind: 'datagram'; pieces: Piece[]; damage?: (b: Uint8Array) => Uint8Array }
  | { kind: 'raw'; bytes: Uint8Array }
  | { kind: 'throw'; errno: number };

function encodePiece(piece: Piece, sequence: number): Uint8Array {
  switch (piece.kind) {
    case 'socket':
      return netlinkMessage(
        { type: SOCK_DIAG_BY_FAMILY, flags: 2 | (piece.intr ? NLM_F_DUMP_INTR : 0), sequence },
        inetDiagMessage(piece.record),
      );
    case 'stale':
      return netlinkMessage(
        { type: SOCK_DIAG_BY_FAMILY, flags: 2, sequence: (sequence + 1000) >>> 0 },
        inetDiagMessage(piece.record),
      );
    case 'noop':
      return netlinkMessage({ type: NLMSG_NOOP, flags: 0, sequence }, new Uint8Array(0));
    case 'ack':
      return netlinkMessage({ type: NLMSG_ERROR, flags: 0, sequence }, nlmsgerr(0));
    case 'error':
      return netlinkMessage({ type: NLMSG_ERROR, flags: 0, sequence }, nlmsgerr(piece.errno));
    case 'done':
      return netlinkMessage(
        { type: NLMSG_DONE, flags: 2 | (piece.intr ? NLM_F_DUMP_INTR : 0), sequence },
        nlmsgerr(piece.errno).subarray(0, 4),
      );
  }
}

/** Counts what the loop did with it; receive() past the end of the script is a bug in the loop. */
class FakeTransport implements DatagramTransport {
  sequence = -1;
  receives = 0;
  closes = 0;
  private readonly shared = new Uint8Array(64 * 1024);

  constructor(
    private readonly steps: readonly Step[],
    private readonly reuseBuffer: boolean,
  ) {}

  send(request: Uint8Array): void {
    // nlmsghdr.nlmsg_seq, which every reply to this request must carry.
    this.sequence = new DataView(request.buffer, request.byteOffset).getUint32(8, hostIsLittleEndian);
  }

  receive(): Uint8Array {
    const step = this.steps[this.receives++];
    if (this.receives > this.steps.length + 1)
      throw new Error('receive() called again after the stream ended');
    let bytes: Uint8Array;
    if (step === undefined) bytes = new Uint8Array(0);
    else if (step.kind === 'throw') throw new SystemCallError('recv', step.errno);
    else if (step.kind === 'raw') bytes = step.bytes;
    else {
      const whole = concat(step.pieces.map((p) => encodePiece(p, this.sequence)));
      bytes = step.damage ? step.damage(whole) : whole;
    }
    if (!this.reuseBuffer) return exactCopy(bytes);
    // Like NetlinkSocket: one buffer, overwritten by each receive; what was handed out
    // before must not be referenced by anything the loop kept.
    this.shared.fill(SENTINEL);
    this.shared.set(bytes.subarray(0, this.shared.byteLength));
    return this.shared.subarray(0, bytes.byteLength);
  }

  close(): void {
    this.closes++;
  }
}

function runDump(attempts: readonly (readonly Step[])[], reuseBuffer = false) {
  const opened: FakeTransport[] = [];
  const openTransport = () => {
    const transport = new FakeTransport(attempts[opened.length] ?? [], reuseBuffer);
    opened.push(transport);
    return transport;
  };
  const request: DumpRequest = { family: 4, protocol: 'tcp' };
  const outcome = typedOutcome(() => dumpInetSockets(openTransport, request));
  return { outcome, opened };
}

/**
 * The reference behaviour, from DESIGN.md: read to NLMSG_DONE skipping stale replies;
 * NLMSG_DUMP_INTR anywhere means "interrupted"; an error ends the attempt; ENOBUFS and
 * interruptions start again on a fresh transport, at most MAX_DUMP_ATTEMPTS times.
 */
function model(attempts: readonly (readonly Step[])[]) {
  for (let attempt = 1; ; attempt++) {
    const steps = attempts[attempt - 1] ?? [];
    const inodes: number[] = [];
    let interrupted = false;
    let ended: { errno: number } | { protocol: true } | 'done' | null = null;
    for (const step of steps) {
      if (step.kind === 'throw') {
        ended = { errno: step.errno };
        break;
      }
      if (step.kind !== 'datagram') throw new Error('the model covers well-formed datagrams only');
      for (const piece of step.pieces) {
        if (piece.kind === 'stale' || piece.kind === 'noop' || piece.kind === 'ack') continue;
        if (piece.kind === 'socket') {
          if (piece.intr) interrupted = true;
          inodes.push(piece.record.inode);
        } else if (piece.kind === 'error') {
          ended = { errno: piece.errno };
        } else {
          if (piece.intr) interrupted = true;
          ended = piece.errno ? { errno: piece.errno } : 'done';
        }
        if (ended) break;
      }
      if (ended) break;
    }
    ended ??= { protocol: true };
    if (ended !== 'done') {
      if ('errno' in ended && ended.errno === ENOBUFS && attempt < MAX_DUMP_ATTEMPTS) continue;
      return { attempts: attempt, error: 'errno' in ended ? ended.errno : 'protocol' };
    }
    if (!interrupted || attempt >= MAX_DUMP_ATTEMPTS) return { attempts: attempt, inodes, interrupted };
  }
}

const socketRecord = diagRecord.map((r) => ({ ...r, state: 1 }));
const piece: fc.Arbitrary<Piece> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('socket' as const), record: socketRecord, intr: fc.boolean() }),
  },
  fc.record({ kind: fc.constant('stale' as const), record: socketRecord }),
  fc.constant({ kind: 'noop' as const }),
  fc.constant({ kind: 'ack' as const }),
  fc.record({ kind: fc.constant('error' as const), errno: fc.constantFrom(1, 12, 16, ENOBUFS) }),
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('done' as const),
      intr: fc.boolean(),
      errno: fc.constantFrom(0, 0, 0, ENOBUFS, 16),
    }),
  },
);
const wellFormedStep: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('datagram' as const),
      pieces: fc.array(piece, { minLength: 1, maxLength: 6 }),
    }),
  },
  fc.record({ kind: fc.constant('throw' as const), errno: fc.constantFrom(ENOBUFS, 4, 9, 1) }),
);
const wellFormedAttempts = fc.array(fc.array(wellFormedStep, { maxLength: 6 }), {
  maxLength: MAX_DUMP_ATTEMPTS + 2,
});

function checkTransports(opened: FakeTransport[]) {
  expect(opened.length).toBeGreaterThanOrEqual(1);
  expect(opened.length).toBeLessThanOrEqual(MAX_DUMP_ATTEMPTS);
  for (const t of opened) expect(t.closes).toBe(1);
}

describe('dumpInetSockets', () => {
  it('behaves as the reference on well-formed streams: retries bounded, every transport closed', () => {
    fc.assert(
      fc.property(wellFormedAttempts, (attempts) => {
        const { outcome, opened } = runDump(attempts);
        checkTransports(opened);
        const expected = model(attempts);
        expect(opened.length).toBe(expected.attempts);
        if ('error' in expected) {
          if (!('error' in outcome))
            throw new Error(`expected an error, got ${outcome.value.messages.length} sockets`);
          if (expected.error === 'protocol') expect(outcome.error).toBeInstanceOf(ProtocolError);
          else expect((outcome.error as SystemCallError).errno).toBe(expected.error);
        } else {
          if (!('value' in outcome)) throw outcome.error;
          expect(outcome.value.messages.map((m) => m.inode)).toEqual(expected.inodes);
          expect(outcome.value.interrupted).toBe(expected.interrupted);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('keeps nothing that points into a receive buffer it will reuse', () => {
    fc.assert(
      fc.property(wellFormedAttempts, (attempts) => {
        const fresh = runDump(attempts, false).outcome;
        const reused = runDump(attempts, true).outcome;
        const summary = (o: typeof fresh) =>
          'value' in o
            ? { value: o.value.messages.map((m: InetDiagMessage) => ({ ...m })), i: o.value.interrupted }
            : comparable(o);
        expect(summary(reused)).toEqual(summary(fresh));
      }),
      RUNS,
    );
  });

  it('returns or throws a typed error on damaged, random and oversized streams, and stops', () => {
    const damagedStep: fc.Arbitrary<Step> = fc.oneof(
      wellFormedStep,
      fc.record({
        kind: fc.constant('datagram' as const),
        pieces: fc.array(piece, { minLength: 1, maxLength: 4 }),
        damage: fc
          .record({ cut: fc.nat(400), flips: fc.array(fc.tuple(fc.nat(400), fc.nat(255)), { maxLength: 6 }) })
          .map(({ cut, flips }) => (b: Uint8Array) => {
            const out = b.slice(0, Math.min(cut, b.byteLength));
            for (const [at, v] of flips) if (at < out.byteLength) out[at] = v;
            return out;
          }),
      }),
      fc.record({ kind: fc.constant('raw' as const), bytes: fc.uint8Array({ maxLength: 200 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(fc.array(damagedStep, { maxLength: 6 }), { maxLength: MAX_DUMP_ATTEMPTS + 1 }),
        (attempts) => {
          const { opened } = runDump(attempts);
          checkTransports(opened);
          for (const [i, t] of opened.entries()) {
            expect(t.receives).toBeLessThanOrEqual((attempts[i]?.length ?? 0) + 1);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  const cleanDone = (intr: boolean): Step => ({
    kind: 'datagram',
    pieces: [{ kind: 'done', intr, errno: 0 }],
  });

  it(`starts an interrupted dump again, at most ${MAX_DUMP_ATTEMPTS} times, then says so`, () => {
    const always = Array.from({ length: 10 }, () => [cleanDone(true)]);
    const { outcome, opened } = runDump(always);
    expect(opened).toHaveLength(MAX_DUMP_ATTEMPTS);
    expect('value' in outcome && outcome.value.interrupted).toBe(true);

    const once = runDump([[cleanDone(true)], [cleanDone(false)]]);
    expect(once.opened).toHaveLength(2);
    expect('value' in once.outcome && once.outcome.value.interrupted).toBe(false);
  });

  it(`retries ENOBUFS on a fresh transport at most ${MAX_DUMP_ATTEMPTS} times, then reports it`, () => {
    const always = Array.from({ length: 10 }, (): Step[] => [{ kind: 'throw', errno: ENOBUFS }]);
    const { outcome, opened } = runDump(always);
    expect(opened).toHaveLength(MAX_DUMP_ATTEMPTS);
    expect('error' in outcome && outcome.error instanceof SystemCallError && outcome.error.code).toBe(
      'ENOBUFS',
    );

    const inStream = runDump([
      [{ kind: 'datagram', pieces: [{ kind: 'error', errno: ENOBUFS }] }],
      [cleanDone(false)],
    ]);
    expect(inStream.opened).toHaveLength(2);
    expect('value' in inStream.outcome).toBe(true);
  });

  it('does not retry other errors', () => {
    const { outcome, opened } = runDump([[{ kind: 'throw', errno: 4 }], [cleanDone(false)]]);
    expect(opened).toHaveLength(1);
    expect('error' in outcome && (outcome.error as SystemCallError).code).toBe('EINTR');
  });

  it('rejects a datagram whose messages overrun it instead of waiting for more', () => {
    const attributes = [rtattr(2, new Uint8Array(104))];
    const whole = netlinkMessage({ type: SOCK_DIAG_BY_FAMILY, flags: 2, sequence: 0 }, new Uint8Array(0));
    const lying = new Uint8Array(whole);
    new DataView(lying.buffer).setUint32(0, 4096, hostIsLittleEndian);
    const { outcome } = runDump([[{ kind: 'raw', bytes: concat([lying, ...attributes]) }]]);
    expect('error' in outcome && outcome.error).toBeInstanceOf(ProtocolError);
  });
});
