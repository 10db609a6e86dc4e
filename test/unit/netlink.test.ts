/**
 * The sock_diag codec and dump loop: captured kernel replies checked against what the
 * capture created (test/fixtures/sock-diag/capture.json), replayed through the dump loop
 * in different datagram groupings, and bent every way a reply can be bent (truncated,
 * lying lengths, errors, interrupted dumps, ENOBUFS): the result is a parse or a typed
 * error, never a crash and never a read past the end.
 */

import { endianness, constants as os } from 'node:os';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TableName, TcpInfo } from '../../src/model.js';
import {
  cookieText,
  formatInetDiagRequest,
  INET_DIAG_INFO,
  INET_DIAG_SKMEMINFO,
  type InetDiagMessage,
  parseInetDiagMessage,
  parseSocketMemoryInfo,
  parseTcpInfo,
  splitAttributes,
} from '../../src/netlink/inet-diag.js';
import { NLM_F_DUMP_INTR, NLM_F_MULTI, NLMSG_DONE, splitNetlinkMessages } from '../../src/netlink/message.js';
import { type DatagramTransport, dumpInetSockets, MAX_DUMP_ATTEMPTS } from '../../src/netlink/sock-diag.js';
import { diagOfWindows } from '../../src/states.js';
import { ProtocolError, SystemCallError } from '../../src/sys/errors.js';
import {
  CAPTURED_STATE_NUMBERS,
  capture,
  capturedDatagrams,
  capturedSockets,
  captureUnusableReason,
  endpointKey,
  fixtureBytes,
} from '../fixtures/load.js';

const TABLES: readonly TableName[] = ['tcp', 'tcp6', 'udp', 'udp6'];
const SOCK_DIAG_BY_FAMILY = 20;
const NLMSG_ERROR = 2;
const NLMSG_NOOP = 1;

// Hand-built messages below are written little-endian, as the kernel writes them on
// every host this project runs on (x86-64, arm64).
const notLittleEndian = endianness() === 'LE' ? null : 'hand-written layouts are little-endian';

// ---- building and replaying datagrams ----

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function pad4(bytes: Uint8Array): Uint8Array {
  const padded = new Uint8Array((bytes.byteLength + 3) & ~3);
  padded.set(bytes);
  return padded;
}

/** struct nlmsghdr + payload, padded to 4; `length` overrides nlmsg_len to lie. */
function nlmsg(
  type: number,
  payload: Uint8Array,
  options: { flags?: number; sequence?: number; length?: number } = {},
): Uint8Array {
  const out = new Uint8Array(16 + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, options.length ?? out.byteLength, true);
  view.setUint16(4, type, true);
  view.setUint16(6, options.flags ?? NLM_F_MULTI, true);
  view.setUint32(8, options.sequence ?? 0, true);
  view.setUint32(12, 0, true);
  out.set(payload, 16);
  return pad4(out);
}

function int32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setInt32(0, value, true);
  return out;
}

/** NLMSG_ERROR's payload: -errno and the header of the request it answers. */
function errorPayload(errno: number): Uint8Array {
  return concat(int32(-errno), new Uint8Array(16));
}

function rtattr(type: number, payload: Uint8Array, length = 4 + payload.byteLength): Uint8Array {
  const out = new Uint8Array(4 + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint16(0, length, true);
  view.setUint16(2, type, true);
  out.set(payload, 4);
  return pad4(out);
}

const done = (flags = NLM_F_MULTI) => nlmsg(NLMSG_DONE, int32(0), { flags });

/** A copy of `datagram` with every well-formed message's nlmsg_seq set to `sequence`. */
function withSequence(datagram: Uint8Array, sequence: number): Uint8Array {
  const copy = Uint8Array.from(datagram);
  const view = new DataView(copy.buffer);
  let at = 0;
  while (copy.byteLength - at >= 16) {
    const length = view.getUint32(at, true);
    if (length < 16 || length > copy.byteLength - at) break;
    view.setUint32(at + 8, sequence, true);
    at += (length + 3) & ~3;
  }
  return copy;
}

/** Like withSequence, and ORs `flags` into every message's nlmsg_flags. */
function withFlags(datagram: Uint8Array, flags: number): Uint8Array {
  const copy = Uint8Array.from(datagram);
  const view = new DataView(copy.buffer);
  let at = 0;
  while (copy.byteLength - at >= 16) {
    const length = view.getUint32(at, true);
    if (length < 16 || length > copy.byteLength - at) break;
    view.setUint16(at + 6, view.getUint16(at + 6, true) | flags, true);
    at += (length + 3) & ~3;
  }
  return copy;
}

type Scripted = Uint8Array | ((sequence: number) => Uint8Array) | Error;

/**
 * Plays back datagrams as the kernel would send them for the request it was sent:
 * bytes get the request's sequence number, a function builds a datagram from it, an
 * Error is thrown from receive() (as recv(2) throws ENOBUFS).
 */
class ReplayTransport implements DatagramTransport {
  readonly requests: Uint8Array[] = [];
  closed = false;
  private next = 0;
  constructor(private readonly script: readonly Scripted[]) {}

  send(request: Uint8Array): void {
    this.requests.push(Uint8Array.from(request));
  }

  /** The nlmsg_seq of the request this transport was sent. */
  get sequence(): number {
    const request = this.requests[0];
    if (!request) throw new Error('replay: no request was sent');
    return new DataView(request.buffer).getUint32(8, true);
  }

  receive(): Uint8Array {
    const sequence = this.sequence;
    const step = this.script[this.next++];
    if (step === undefined) throw new Error('replay: the dump loop read past the end of the reply');
    if (step instanceof Error) throw step;
    return typeof step === 'function' ? step(sequence) : withSequence(step, sequence);
  }

  close(): void {
    this.closed = true;
  }
}

function replay(script: readonly Scripted[]) {
  const opened: ReplayTransport[] = [];
  return {
    opened,
    open: () => {
      const transport = new ReplayTransport(script);
      opened.push(transport);
      return transport;
    },
  };
}

function requestOf(table: TableName) {
  return {
    family: (table.endsWith('6') ? 6 : 4) as 4 | 6,
    protocol: (table.startsWith('tcp') ? 'tcp' : 'udp') as 'tcp' | 'udp',
  };
}

/** Every message of the captured datagrams, as raw bytes (header, payload, padding). */
function capturedMessageBytes(table: TableName): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const datagram of capturedDatagrams(table)) {
    let at = 0;
    for (const { header } of splitNetlinkMessages(datagram)) {
      const end = Math.min(datagram.byteLength, at + ((header.length + 3) & ~3));
      out.push(datagram.subarray(at, end));
      at = end;
    }
  }
  return out;
}

function parseCaptured(table: TableName): InetDiagMessage[] {
  const messages: InetDiagMessage[] = [];
  for (const datagram of capturedDatagrams(table)) {
    for (const { header, payload } of splitNetlinkMessages(datagram)) {
      if (header.type === SOCK_DIAG_BY_FAMILY) messages.push(parseInetDiagMessage(payload));
    }
  }
  return messages;
}

/** The captured message of one socket (by its sidecar id), header included. */
function capturedMessageOf(id: string): { table: TableName; bytes: Uint8Array; payload: Uint8Array } {
  const socket = capture.sockets.find((s) => s.id === id);
  if (!socket) throw new Error(`no captured socket ${id}`);
  for (const bytes of capturedMessageBytes(socket.table)) {
    const [message] = [...splitNetlinkMessages(bytes)];
    if (message?.header.type !== SOCK_DIAG_BY_FAMILY) continue;
    const parsed = parseInetDiagMessage(message.payload);
    if (endpointKey(parsed.local, parsed.remote) === endpointKey(socket.local, socket.remote)) {
      return {
        table: socket.table,
        bytes: bytes.subarray(0, message.header.length),
        payload: message.payload,
      };
    }
  }
  throw new Error(`socket ${id} is not in the capture`);
}

function expectTyped(error: unknown): void {
  if (!(error instanceof ProtocolError) && !(error instanceof SystemCallError)) throw error;
}

/** The outcome of a call: its value, or the class and message of what it threw. */
function outcome<T>(call: () => T): { value: T } | { error: string } {
  try {
    return { value: call() };
  } catch (error) {
    expectTyped(error);
    return { error: `${(error as Error).name}: ${(error as Error).message}` };
  }
}

/** Checks parsed messages against the sidecar: the sockets the capture created, no more. */
function expectMatchesCapture(table: TableName, messages: InetDiagMessage[]): void {
  const expected = capturedSockets(table);
  expect(messages).toHaveLength(expected.length);
  const byEndpoints = new Map(messages.map((m) => [endpointKey(m.local, m.remote), m]));
  expect(byEndpoints.size).toBe(messages.length);
  for (const socket of expected) {
    const m = byEndpoints.get(endpointKey(socket.local, socket.remote));
    expect(m, `${socket.id} is in the dump`).toBeDefined();
    if (!m) continue;
    const what = `${socket.id} (${socket.state})`;
    expect(m.family, what).toBe(table.endsWith('6') ? 6 : 4);
    expect(m.state, what).toBe(CAPTURED_STATE_NUMBERS[socket.state]);
    expect(m.inode, what).toBe(socket.inode);
    expect(m.uid, what).toBe(socket.uid);
    if (socket.recvQ !== undefined) expect(m.recvQ, what).toBe(socket.recvQ);
    else expect(m.recvQ, what).toBeGreaterThanOrEqual(socket.recvQAtLeast ?? 1);
    expect(m.sendQ, what).toBe(socket.listenBacklog ?? socket.sendQ);
    expect(m.tcpInfo !== null, `${what} has tcp_info`).toBe(socket.tcpInfo);
    expect(m.memInfo !== null, `${what} has sk_meminfo`).toBe(socket.memInfo);
    if (m.tcpInfo) {
      expect(m.tcpInfo.state, what).toBe(CAPTURED_STATE_NUMBERS[socket.state]);
      if (socket.bytesSent !== undefined) expect(m.tcpInfo.bytesSent, what).toBe(socket.bytesSent);
      if (socket.bytesReceived !== undefined)
        expect(m.tcpInfo.bytesReceived, what).toBe(socket.bytesReceived);
      if (socket.state === 'LISTEN') {
        // A listener's tcp_info reports its accept queue and backlog in these two fields.
        expect(m.tcpInfo.unacked, what).toBe(socket.recvQ);
        expect(m.tcpInfo.sacked, what).toBe(socket.listenBacklog);
      } else {
        // Segments in flight: only the SYN of a connection still in SYN_SENT.
        expect(m.tcpInfo.unacked, what).toBe(socket.state === 'SYN_SENT' ? 1 : 0);
      }
    }
    if (m.memInfo) {
      expect(m.memInfo.rcvbuf, what).toBeGreaterThan(0);
      expect(m.memInfo.sndbuf, what).toBeGreaterThan(0);
      // The receive queue's memory holds at least the unread bytes (a listener's Recv-Q
      // counts connections, not bytes).
      if (socket.state !== 'LISTEN')
        expect(m.memInfo.rmemAlloc, what).toBeGreaterThanOrEqual(socket.recvQ ?? socket.recvQAtLeast ?? 0);
    }
  }
}

// ---- the captured replies ----

describe.skipIf(captureUnusableReason !== null)(
  `captured sock_diag replies${captureUnusableReason ? ` (skipped: ${captureUnusableReason})` : ''}`,
  () => {
    it('cover what the tests need: several datagrams, every kind of socket', () => {
      expect(capturedDatagrams('tcp').length).toBeGreaterThan(2);
      expect(capturedDatagrams('tcp6').length).toBeGreaterThan(2);
      const kinds = new Set(capture.sockets.map((s) => `${s.table} ${s.state}`));
      for (const kind of [
        'tcp LISTEN',
        'tcp ESTABLISHED',
        'tcp TIME_WAIT',
        'tcp SYN_SENT',
        'tcp FIN_WAIT2',
        'tcp CLOSE_WAIT',
        'tcp6 LISTEN',
        'tcp6 ESTABLISHED',
        'tcp6 TIME_WAIT',
        'udp UNCONN',
        'udp ESTABLISHED',
        'udp6 UNCONN',
        'udp6 ESTABLISHED',
      ])
        expect(kinds).toContain(kind);
    });

    it.each(TABLES)('%s: every datagram is a multi-part reply of one dump ending in NLMSG_DONE', (table) => {
      const headers = capturedDatagrams(table).flatMap((d) =>
        [...splitNetlinkMessages(d)].map((m) => m.header),
      );
      const last = headers.at(-1);
      expect(last?.type).toBe(NLMSG_DONE);
      expect(headers.filter((h) => h.type === NLMSG_DONE)).toHaveLength(1);
      for (const header of headers) {
        expect(header.flags & NLM_F_MULTI).toBe(NLM_F_MULTI);
        expect(header.flags & NLM_F_DUMP_INTR).toBe(0);
        expect(header.sequence).toBe(headers[0]?.sequence);
      }
    });

    it.each(TABLES)('%s: parses to exactly the sockets the capture created', (table) => {
      expectMatchesCapture(table, parseCaptured(table));
    });

    it('shows IPv4-mapped addresses of an IPv4 client of a dual-stack listener', () => {
      const server = capture.sockets.find((s) => s.id === 'D6-server');
      expect(server?.local.address).toBe('::ffff:127.0.0.1');
      const parsed = parseCaptured('tcp6').find((m) => m.inode === server?.inode);
      expect(parsed?.local).toEqual(server?.local);
      expect(parsed?.remote).toEqual(server?.remote);
    });

    it('has TIME_WAIT entries with inode 0 and neither tcp_info nor sk_meminfo', () => {
      for (const table of ['tcp', 'tcp6'] as const) {
        const timeWait = parseCaptured(table).filter((m) => m.state === 6);
        expect(timeWait.length).toBeGreaterThan(0);
        for (const m of timeWait) {
          expect(m.inode).toBe(0);
          expect(m.tcpInfo).toBeNull();
          expect(m.memInfo).toBeNull();
          expect([m.recvQ, m.sendQ]).toEqual([0, 0]);
        }
      }
    });

    it("reads tcp_info's window fields exactly when the kernel's tcp_info reaches them", () => {
      const { payload } = capturedMessageOf('E4a');
      const info = [...splitAttributes(payload.subarray(72))].find((a) => a.type === INET_DIAG_INFO);
      const length = info?.payload.byteLength ?? 0;
      const parsed = parseInetDiagMessage(payload).tcpInfo;
      expect(parsed?.sndWnd !== undefined).toBe(length >= 232);
      expect(parsed?.rcvWnd !== undefined).toBe(length >= 236);
    });

    it.each(TABLES)(
      '%s: without details, the same messages but the two objects, the same Diag and buffers',
      (table) => {
        const request = { ...requestOf(table), optionFacts: true };
        const full = dumpInetSockets(replay(capturedDatagrams(table)).open, request).messages;
        const lean = dumpInetSockets(replay(capturedDatagrams(table)).open, {
          ...request,
          details: false,
        }).messages;
        expect(lean).toEqual(full.map((m) => ({ ...m, tcpInfo: null, memInfo: null })));
        // The facts' buffer sizes are sk_meminfo's, where the reply carried it (a TIME_WAIT
        // entry does not); and some did.
        expect(full.some((m) => m.memInfo !== null)).toBe(true);
        for (const m of full)
          expect([m.optionFacts?.rcvbuf, m.optionFacts?.sndbuf]).toEqual([
            m.memInfo?.rcvbuf,
            m.memInfo?.sndbuf,
          ]);
        for (const m of full) {
          const info = m.tcpInfo;
          expect(m.windowDiag).toBe(
            info ? diagOfWindows(info.rcvWnd, info.sndWnd, info.unacked, info.lastAckRecv) : null,
          );
        }
        // Some sockets of the capture carry tcp_info: the comparison above is not vacuous.
        expect(table.startsWith('tcp') ? full.some((m) => m.windowDiag !== null) : true).toBe(true);
      },
    );

    it.each(TABLES)('%s: the dump loop over the captured datagrams yields the same sockets', (table) => {
      const { open, opened } = replay(capturedDatagrams(table));
      const result = dumpInetSockets(open, requestOf(table));
      expect(result.interrupted).toBe(false);
      expect(result.messages).toEqual(parseCaptured(table));
      expectMatchesCapture(table, result.messages);
      expect(opened).toHaveLength(1);
      expect(opened[0]?.closed).toBe(true);
      expect(opened[0]?.requests).toHaveLength(1);
    });

    describe.each(TABLES)('%s regrouped into other datagrams', (table) => {
      const messages = capturedMessageBytes(table);
      const expected = parseCaptured(table);
      const run = (datagrams: Uint8Array[]) => dumpInetSockets(replay(datagrams).open, requestOf(table));

      it('one message per receive()', () => {
        expect(run(messages).messages).toEqual(expected);
      });

      it('the whole reply in one receive()', () => {
        expect(run([concat(...messages)]).messages).toEqual(expected);
      });

      it('with NOOPs and replies to another request in between', () => {
        const stale = (sequence: number) =>
          nlmsg(SOCK_DIAG_BY_FAMILY, new Uint8Array(4), { sequence: sequence + 1000 });
        const script: Scripted[] = [];
        for (const m of messages) {
          script.push(m);
          script.push(nlmsg(NLMSG_NOOP, new Uint8Array(0)));
          script.push(stale);
        }
        expect(dumpInetSockets(replay(script).open, requestOf(table)).messages).toEqual(expected);
      });

      it('any grouping of whole messages', () => {
        fc.assert(
          fc.property(
            fc.array(fc.boolean(), { minLength: messages.length, maxLength: messages.length }),
            (cuts) => {
              const datagrams: Uint8Array[] = [];
              let group: Uint8Array[] = [];
              messages.forEach((m, i) => {
                group.push(m);
                if (cuts[i] || i === messages.length - 1) {
                  datagrams.push(concat(...group));
                  group = [];
                }
              });
              expect(run(datagrams).messages).toEqual(expected);
            },
          ),
          { seed: 2, numRuns: 40 },
        );
      });

      it('a message cut across two receive() calls is refused, not misread', () => {
        // The kernel never splits a message; a reader that waited for the rest would
        // misparse whatever came next.
        const whole = concat(...messages);
        for (const cut of [1, 15, 16, 17, 100, (messages[0]?.byteLength ?? 8) - 4]) {
          expect(() => run([whole.subarray(0, cut), whole.subarray(cut)])).toThrow(ProtocolError);
        }
      });
    });

    describe('truncated messages', () => {
      const { bytes, payload } = capturedMessageOf('E4a-server');
      const full = parseInetDiagMessage(payload);

      it('a datagram cut at every length is refused (or empty), never read past its end', () => {
        expect(bytes.byteLength).toBeGreaterThan(300);
        for (let length = 0; length < bytes.byteLength; length++) {
          // A view into the whole message: the bytes past the cut are right there in the
          // same ArrayBuffer, so a reader that overran its view would find them.
          const cut = bytes.subarray(0, length);
          if (length === 0) expect([...splitNetlinkMessages(cut)]).toEqual([]);
          else expect(() => [...splitNetlinkMessages(cut)], `length ${length}`).toThrow(ProtocolError);
          expect(() => dumpInetSockets(replay([cut, done()]).open, requestOf('tcp'))).toThrow(ProtocolError);
        }
      });

      it('a payload cut at every length parses to a prefix of the attributes or a ProtocolError', () => {
        const boundaries = new Set<number>();
        let at = 72;
        for (const attribute of splitAttributes(payload.subarray(72))) {
          at += (4 + attribute.payload.byteLength + 3) & ~3;
          boundaries.add(Math.min(at, payload.byteLength));
        }
        for (let length = 0; length <= payload.byteLength; length++) {
          const view = payload.subarray(0, length);
          const result = outcome(() => parseInetDiagMessage(view));
          // The same bytes alone in their own buffer: a parse that peeked past the view
          // would differ.
          expect(
            outcome(() => parseInetDiagMessage(Uint8Array.from(view))),
            `length ${length}`,
          ).toEqual(result);
          if (length < 72) {
            expect(result, `length ${length}`).toHaveProperty('error');
            continue;
          }
          if ('value' in result) {
            const { tcpInfo, windowDiag, memInfo, ...rest } = result.value;
            const {
              tcpInfo: fullTcpInfo,
              windowDiag: fullWindowDiag,
              memInfo: fullMemInfo,
              ...fullRest
            } = full;
            expect(rest).toEqual(fullRest);
            if (tcpInfo !== null) expect(tcpInfo).toEqual(fullTcpInfo);
            if (windowDiag !== null) expect(windowDiag).toEqual(fullWindowDiag);
            if (memInfo !== null) expect(memInfo).toEqual(fullMemInfo);
          }
          // Every attribute boundary is a valid end; the tcp_info attribute is whole only at the end.
          if (length === 72 || boundaries.has(length))
            expect(result, `length ${length}`).toHaveProperty('value');
        }
        expect(outcome(() => parseInetDiagMessage(payload))).toEqual({ value: full });
      });
    });

    it('mutated captured datagrams parse or fail with a typed error, never anything else', () => {
      const datagrams = TABLES.flatMap((t) => capturedDatagrams(t));
      fc.assert(
        fc.property(
          fc.nat(datagrams.length - 1),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
          fc.option(fc.nat()),
          (which, edits, truncateAt) => {
            const mutate = (bytes: Uint8Array) => {
              let mutated = Uint8Array.from(bytes);
              for (const [at, value] of edits) mutated[at % mutated.byteLength] = value;
              if (truncateAt !== null) mutated = mutated.subarray(0, truncateAt % (mutated.byteLength + 1));
              return mutated;
            };
            const original = datagrams[which] as Uint8Array;
            try {
              for (const { header, payload } of splitNetlinkMessages(mutate(original))) {
                if (header.type === SOCK_DIAG_BY_FAMILY) parseInetDiagMessage(payload);
              }
            } catch (error) {
              expectTyped(error);
            }
            try {
              // Sequence numbers first, so that the dump loop reads the messages, then the
              // edits (which may hit a sequence number too).
              const step = (sequence: number) => mutate(withSequence(original, sequence));
              dumpInetSockets(replay([step, done()]).open, requestOf('tcp'));
            } catch (error) {
              expectTyped(error);
            }
          },
        ),
        { seed: 7, numRuns: 1500 },
      );
    });

    it("passes on the kernel's own refusal (NLMSG_DONE carrying -ENOENT) as a SystemCallError", () => {
      const { open } = replay([fixtureBytes(capture.unserved.file)]);
      const attempt = () => dumpInetSockets(open, requestOf('tcp'));
      expect(attempt).toThrow(SystemCallError);
      expect(attempt).toThrow(expect.objectContaining({ code: capture.unserved.code }));
    });
  },
);

// ---- hand-built replies ----

/** One minimal, well-formed SOCK_DIAG_BY_FAMILY message: a TCP ESTABLISHED IPv4 socket. */
function diagMessage(attributes: Uint8Array[] = [], flags = NLM_F_MULTI): Uint8Array {
  const body = new Uint8Array(72);
  const view = new DataView(body.buffer);
  body[0] = 2; // AF_INET
  body[1] = 1; // ESTABLISHED
  view.setUint16(4, 8080, false);
  view.setUint16(6, 40000, false);
  body.set([127, 0, 0, 1], 8);
  body.set([127, 0, 0, 2], 24);
  view.setUint32(56, 5, true); // rqueue
  view.setUint32(60, 6, true); // wqueue
  view.setUint32(64, 1000, true); // uid
  view.setUint32(68, 4242, true); // inode
  return nlmsg(SOCK_DIAG_BY_FAMILY, concat(body, ...attributes), { flags });
}

describe.skipIf(notLittleEndian !== null)(
  `hand-built replies${notLittleEndian ? ` (skipped: ${notLittleEndian})` : ''}`,
  () => {
    const dump = (script: Scripted[]) => dumpInetSockets(replay(script).open, { family: 4, protocol: 'tcp' });

    it('inet_diag_msg fields land where include/uapi/linux/inet_diag.h puts them', () => {
      const body = new Uint8Array(72);
      const view = new DataView(body.buffer);
      body.set([10, 10, 2, 3]); // AF_INET6, TCP_LISTEN, timer, retrans
      view.setUint16(4, 0x1234, false);
      view.setUint16(6, 0x5678, false);
      body.set([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 8);
      body.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1], 24);
      view.setUint32(40, 7, true); // idiag_if
      view.setUint32(44, 0xdeadbeef, true); // cookie[0]
      view.setUint32(48, 0x01020304, true); // cookie[1]
      view.setUint32(52, 11, true); // expires
      view.setUint32(56, 12, true); // rqueue
      view.setUint32(60, 13, true); // wqueue
      view.setUint32(64, 14, true); // uid
      view.setUint32(68, 15, true); // inode
      expect(parseInetDiagMessage(body)).toEqual({
        family: 6,
        state: 10,
        timer: 2,
        retransmits: 3,
        local: { address: '2001:db8::1', port: 0x1234 },
        remote: { address: '::ffff:192.0.2.1', port: 0x5678 },
        interfaceIndex: 7,
        cookie: 0x01020304deadbeefn.toString(),
        expires: 11,
        recvQ: 12,
        sendQ: 13,
        uid: 14,
        inode: 15,
        tcpInfo: null,
        windowDiag: null,
        memInfo: null,
      });
    });

    it('cookies in decimal, exact on both sides of 2^53', () => {
      const cases: Array<[bigint, string]> = [
        [1n, '1'],
        [0xffffffffn, '4294967295'],
        [0x100000000n, '4294967296'],
        [2n ** 53n - 1n, '9007199254740991'],
        [2n ** 53n, '9007199254740992'],
        [2n ** 53n + 1n, '9007199254740993'],
        [2n ** 64n - 1n, '18446744073709551615'],
      ];
      for (const [cookie, text] of cases)
        expect(cookieText(Number(cookie & 0xffffffffn), Number(cookie >> 32n))).toBe(text);
    });

    it('an IPv4 socket reads only the first four bytes of each address', () => {
      const body = new Uint8Array(72);
      body.set([2, 1]);
      body.set([10, 1, 2, 3, 9, 9, 9, 9], 8);
      body.set([10, 4, 5, 6, 9, 9, 9, 9], 24);
      const parsed = parseInetDiagMessage(body);
      expect(parsed.local.address).toBe('10.1.2.3');
      expect(parsed.remote.address).toBe('10.4.5.6');
    });

    it('tells apart addresses that are made of the same words or bytes, one after another', () => {
      // Formatted addresses are reused by their bits: these pairs have the same 32-bit
      // words in another order, or the same first word in another family.
      const message = (family: number, address: number[]) => {
        const body = new Uint8Array(72);
        body.set([family, 1]);
        body.set(address, 8);
        body.set(address, 24);
        return body;
      };
      const v6a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
      const v6b = [0, 0, 0, 1, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0];
      const v6c = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
      const cases: [number, number[], string][] = [
        [10, v6a, '2001:db8:0:1::'],
        [10, v6b, '0:1:2001:db8::'],
        [10, v6a, '2001:db8:0:1::'],
        [2, [10, 0, 0, 1], '10.0.0.1'],
        [10, v6c, 'a00:1::'],
        [2, [10, 0, 0, 1], '10.0.0.1'],
        [10, v6c, 'a00:1::'],
      ];
      for (const [family, address, expected] of cases) {
        const parsed = parseInetDiagMessage(message(family, address));
        expect([parsed.local.address, parsed.remote.address]).toEqual([expected, expected]);
      }
    });

    it('an unknown address family is a ProtocolError', () => {
      for (const family of [0, 1, 3, 9, 11, 255]) {
        const body = new Uint8Array(72);
        body[0] = family;
        expect(() => parseInetDiagMessage(body)).toThrow(ProtocolError);
      }
    });

    describe('garbage lengths', () => {
      it('nlmsg_len shorter than a header is refused at that message, before anything is yielded', () => {
        for (const length of [0, 1, 4, 15]) {
          // A well-formed DONE after the lying one: a reader that stepped over the lie by
          // its length would land on a plausible header and carry on.
          const datagram = concat(nlmsg(NLMSG_DONE, int32(0), { length }), done());
          expect(() => splitNetlinkMessages(datagram).next(), `nlmsg_len ${length}`).toThrow(ProtocolError);
          expect(() => dump([datagram])).toThrow(ProtocolError);
        }
      });

      it('nlmsg_len past the datagram is refused', () => {
        const message = diagMessage();
        for (const length of [message.byteLength + 1, message.byteLength + 4, 0x7fffffff, 0xffffffff]) {
          const datagram = concat(nlmsg(SOCK_DIAG_BY_FAMILY, new Uint8Array(72), { length }));
          expect(() => [...splitNetlinkMessages(datagram)], `nlmsg_len ${length}`).toThrow(ProtocolError);
          expect(() => dump([datagram, done()])).toThrow(ProtocolError);
        }
      });

      it('stray bytes after the last message are refused', () => {
        for (const stray of [1, 4, 15]) {
          const datagram = concat(diagMessage(), new Uint8Array(stray).fill(0xff));
          expect(() => [...splitNetlinkMessages(datagram)], `${stray} stray`).toThrow(ProtocolError);
        }
      });

      it('a last message whose length is not a multiple of 4 ends its datagram without padding', () => {
        // nlmsg_len counts no padding; the alignment only places the next message.
        const unpadded = (m: Uint8Array, length: number) => {
          const copy = m.slice(0, length);
          new DataView(copy.buffer).setUint32(0, length, true);
          return copy;
        };
        // A 5-byte attribute (INET_DIAG_TOS) makes the message 93 bytes long.
        const socket = unpadded(diagMessage([rtattr(5, Uint8Array.of(0x10))]), 16 + 72 + 5);
        const { messages } = dump([concat(diagMessage(), socket), done()]);
        expect(messages.map((m) => m.inode)).toEqual([4242, 4242]);
      });

      it('a SOCK_DIAG_BY_FAMILY message too short for inet_diag_msg is refused', () => {
        for (const size of [0, 1, 71]) {
          expect(() => dump([nlmsg(SOCK_DIAG_BY_FAMILY, new Uint8Array(size)), done()])).toThrow(
            ProtocolError,
          );
        }
      });

      it('rtattr lengths below 4 or past the end are refused, not looped on', () => {
        for (const length of [0, 1, 3, 13, 0xffff]) {
          const attribute = rtattr(INET_DIAG_SKMEMINFO, new Uint8Array(8), length);
          expect(() => [...splitAttributes(attribute)], `rta_len ${length}`).toThrow(ProtocolError);
          expect(() => dump([diagMessage([attribute]), done()]), `rta_len ${length}`).toThrow(ProtocolError);
        }
      });

      it('an attribute too short for its struct is refused', () => {
        expect(() => dump([diagMessage([rtattr(INET_DIAG_SKMEMINFO, new Uint8Array(28))]), done()])).toThrow(
          ProtocolError,
        );
        expect(() => dump([diagMessage([rtattr(INET_DIAG_INFO, new Uint8Array(100))]), done()])).toThrow(
          ProtocolError,
        );
      });

      it('unknown attributes are skipped, NLA flag bits ignored, a short tail tolerated', () => {
        const meminfo = new Uint8Array(36);
        new DataView(meminfo.buffer).setUint32(4, 4096, true);
        const parsed = dump([
          diagMessage([
            rtattr(99, new Uint8Array(3)),
            rtattr(INET_DIAG_SKMEMINFO | 0x8000, meminfo),
            new Uint8Array(3), // fewer bytes than an rtattr header: nothing to walk
          ]),
          done(),
        ]).messages;
        expect(parsed[0]?.memInfo?.rcvbuf).toBe(4096);
        expect(parsed[0]?.tcpInfo).toBeNull();
      });
    });

    describe('sk_meminfo', () => {
      it('reads the nine SK_MEMINFO_* counters in order, drops only where sent (Linux 4.7)', () => {
        const bytes = new Uint8Array(36);
        const view = new DataView(bytes.buffer);
        for (let i = 0; i < 9; i++) view.setUint32(i * 4, 100 + i, true);
        expect(parseSocketMemoryInfo(bytes)).toEqual({
          rmemAlloc: 100,
          rcvbuf: 101,
          wmemAlloc: 102,
          sndbuf: 103,
          fwdAlloc: 104,
          wmemQueued: 105,
          optmem: 106,
          backlog: 107,
          drops: 108,
        });
        expect(parseSocketMemoryInfo(bytes.subarray(0, 32)).drops).toBe(0);
        for (let length = 0; length < 32; length++) {
          expect(() => parseSocketMemoryInfo(bytes.subarray(0, length))).toThrow(ProtocolError);
        }
      });
    });

    describe('errors from the kernel', () => {
      it('NLMSG_ERROR with -EPERM is a SystemCallError with code EPERM', () => {
        const attempt = () => dump([nlmsg(NLMSG_ERROR, errorPayload(os.errno.EPERM), { flags: 0 })]);
        expect(attempt).toThrow(SystemCallError);
        expect(attempt).toThrow(expect.objectContaining({ code: 'EPERM', errno: os.errno.EPERM }));
        expect(attempt).toThrow(/sock_diag\(tcp\).*EPERM/);
      });

      it('NLMSG_ERROR after some sockets still fails the whole dump', () => {
        const attempt = () =>
          dump([diagMessage(), concat(diagMessage(), nlmsg(NLMSG_ERROR, errorPayload(os.errno.ENOMEM)))]);
        expect(attempt).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
      });

      it('an NLMSG_ERROR of 0 is an acknowledgement and is skipped', () => {
        const result = dump([nlmsg(NLMSG_ERROR, errorPayload(0)), diagMessage(), done()]);
        expect(result.messages).toHaveLength(1);
      });

      it('an NLMSG_ERROR too short for its errno is a ProtocolError', () => {
        for (const size of [0, 3]) {
          expect(() => dump([nlmsg(NLMSG_ERROR, new Uint8Array(size))])).toThrow(ProtocolError);
        }
      });

      it('NLMSG_DONE carrying an error fails the dump; an empty or zero one ends it', () => {
        expect(() => dump([diagMessage(), nlmsg(NLMSG_DONE, int32(-os.errno.EPERM))])).toThrow(
          expect.objectContaining({ code: 'EPERM' }),
        );
        expect(dump([diagMessage(), nlmsg(NLMSG_DONE, new Uint8Array(0))]).messages).toHaveLength(1);
        expect(dump([diagMessage(), done()]).messages).toHaveLength(1);
      });

      it('an unexpected message type is a ProtocolError', () => {
        expect(() => dump([nlmsg(16, new Uint8Array(8)), done()])).toThrow(ProtocolError);
      });

      it('an empty datagram before NLMSG_DONE is a ProtocolError', () => {
        expect(() => dump([diagMessage(), new Uint8Array(0)])).toThrow(ProtocolError);
      });
    });

    describe('interrupted dumps (NLM_F_DUMP_INTR)', () => {
      const clean = [diagMessage(), done()];
      const interrupted = [withFlags(diagMessage(), NLM_F_DUMP_INTR), withFlags(done(), NLM_F_DUMP_INTR)];

      it('are started again on a fresh transport', () => {
        const scripts = [interrupted, clean];
        const opened: ReplayTransport[] = [];
        const result = dumpInetSockets(
          () => {
            const transport = new ReplayTransport(scripts[opened.length] ?? clean);
            opened.push(transport);
            return transport;
          },
          { family: 4, protocol: 'tcp' },
        );
        expect(result).toMatchObject({ interrupted: false });
        expect(result.messages).toHaveLength(1);
        expect(opened).toHaveLength(2);
        expect(opened.every((t) => t.closed && t.requests.length === 1)).toBe(true);
      });

      it('a flag on the NLMSG_DONE alone counts', () => {
        const { open, opened } = replay([diagMessage(), withFlags(done(), NLM_F_DUMP_INTR)]);
        expect(dumpInetSockets(open, { family: 4, protocol: 'tcp' }).interrupted).toBe(true);
        expect(opened).toHaveLength(MAX_DUMP_ATTEMPTS);
      });

      it(`keep the last result and say so after ${MAX_DUMP_ATTEMPTS} attempts`, () => {
        const { open, opened } = replay(interrupted);
        const result = dumpInetSockets(open, { family: 4, protocol: 'tcp' });
        expect(result.interrupted).toBe(true);
        expect(result.messages).toHaveLength(1);
        expect(opened).toHaveLength(MAX_DUMP_ATTEMPTS);
        expect(opened.every((t) => t.closed)).toBe(true);
      });
    });

    describe('ENOBUFS', () => {
      const enobufs = () => new SystemCallError('recv', os.errno.ENOBUFS);

      it('restarts the dump on a fresh transport', () => {
        const scripts: Scripted[][] = [
          [diagMessage(), enobufs()],
          [diagMessage(), diagMessage(), done()],
        ];
        const opened: ReplayTransport[] = [];
        const result = dumpInetSockets(
          () => {
            const transport = new ReplayTransport(scripts[opened.length] ?? []);
            opened.push(transport);
            return transport;
          },
          { family: 4, protocol: 'tcp' },
        );
        // Only the second attempt's sockets: the first attempt's partial list is dropped.
        expect(result.messages).toHaveLength(2);
        expect(result.interrupted).toBe(false);
        expect(opened).toHaveLength(2);
        expect(opened.every((t) => t.closed)).toBe(true);
      });

      it(`gives up with the error after ${MAX_DUMP_ATTEMPTS} attempts`, () => {
        const { open, opened } = replay([enobufs()]);
        expect(() => dumpInetSockets(open, { family: 4, protocol: 'tcp' })).toThrow(
          expect.objectContaining({ code: 'ENOBUFS' }),
        );
        expect(opened).toHaveLength(MAX_DUMP_ATTEMPTS);
        expect(opened.every((t) => t.closed)).toBe(true);
      });

      it('other receive errors are not retried', () => {
        const { open, opened } = replay([new SystemCallError('recv', os.errno.EPERM)]);
        expect(() => dumpInetSockets(open, { family: 4, protocol: 'tcp' })).toThrow(
          expect.objectContaining({ code: 'EPERM' }),
        );
        expect(opened).toHaveLength(1);
        expect(opened[0]?.closed).toBe(true);
      });
    });

    describe('tcp_info of every length', () => {
      // Offsets and sizes of struct tcp_info, from include/uapi/linux/tcp.h (written out
      // here by hand, independently of src/netlink/inet-diag.ts).
      const LAYOUT: Array<[keyof TcpInfo, number, 1 | 4 | 8]> = [
        ['state', 0, 1],
        ['caState', 1, 1],
        ['retransmits', 2, 1],
        ['probes', 3, 1],
        ['backoff', 4, 1],
        ['options', 5, 1],
        ['rto', 8, 4],
        ['ato', 12, 4],
        ['sndMss', 16, 4],
        ['rcvMss', 20, 4],
        ['unacked', 24, 4],
        ['sacked', 28, 4],
        ['lost', 32, 4],
        ['retrans', 36, 4],
        // 40: tcpi_fackets
        ['lastDataSent', 44, 4],
        ['lastAckSent', 48, 4],
        ['lastDataRecv', 52, 4],
        ['lastAckRecv', 56, 4],
        ['pmtu', 60, 4],
        ['rcvSsthresh', 64, 4],
        ['rtt', 68, 4],
        ['rttvar', 72, 4],
        ['sndSsthresh', 76, 4],
        ['sndCwnd', 80, 4],
        ['advmss', 84, 4],
        ['reordering', 88, 4],
        ['rcvRtt', 92, 4],
        ['rcvSpace', 96, 4],
        ['totalRetrans', 100, 4],
        // 104: pacing_rate, 112: max_pacing_rate
        ['bytesAcked', 120, 8],
        ['bytesReceived', 128, 8],
        // 136: segs_out, 140: segs_in
        ['notsentBytes', 144, 4],
        ['minRtt', 148, 4],
        // 152 .. 199: data_segs_in/out, delivery_rate, busy/rwnd/sndbuf_limited, delivered(_ce)
        ['bytesSent', 200, 8],
        ['bytesRetrans', 208, 8],
        // 216: dsack_dups, 220: reord_seen, 224: rcv_ooopack
        ['sndWnd', 228, 4], // Linux 5.4
        ['rcvWnd', 232, 4], // Linux 6.2
      ];
      const FULL = 280;
      /** Each field holds a value derived from its offset, wide enough to catch a narrow read. */
      const marker = (offset: number, size: number) =>
        size === 1 ? 100 + offset : size === 4 ? 0x01000000 + offset : 2 ** 40 + offset;
      const bytes = new Uint8Array(FULL).fill(0xee);
      const view = new DataView(bytes.buffer);
      for (const [, offset, size] of LAYOUT) {
        if (size === 1) view.setUint8(offset, marker(offset, size));
        else if (size === 4) view.setUint32(offset, marker(offset, size), true);
        else view.setBigUint64(offset, BigInt(marker(offset, size)), true);
      }

      it('shorter than 104 bytes is a ProtocolError', () => {
        for (let length = 0; length < 104; length++) {
          expect(() => parseTcpInfo(bytes.subarray(0, length))).toThrow(ProtocolError);
        }
      });

      it('each field is read from its offset, and only when the bytes reach past its end', () => {
        for (let length = 104; length <= FULL; length++) {
          const expected: Partial<Record<keyof TcpInfo, number>> = {};
          for (const [name, offset, size] of LAYOUT) {
            if (offset + size <= length) expected[name] = marker(offset, size);
          }
          expect(parseTcpInfo(bytes.subarray(0, length)), `length ${length}`).toEqual(expected);
        }
      });

      it.each([
        [104, 'a 2.6-era kernel: neither window', false, false],
        [232, 'Linux 5.4 to 6.1: tcpi_snd_wnd only', true, false],
        [240, 'Linux 6.2+: both windows', true, true],
        [FULL, 'this capture’s kernel', true, true],
      ])('%i bytes (%s) through a whole message', (length, _what, hasSndWnd, hasRcvWnd) => {
        const message = diagMessage([rtattr(INET_DIAG_INFO, bytes.subarray(0, length))]);
        const [parsed] = dump([message, done()]).messages;
        expect(parsed?.tcpInfo?.totalRetrans).toBe(marker(100, 4));
        expect(parsed?.tcpInfo?.sndWnd !== undefined).toBe(hasSndWnd);
        expect(parsed?.tcpInfo?.rcvWnd !== undefined).toBe(hasRcvWnd);
      });
    });

    describe('requests', () => {
      it('formatInetDiagRequest lays out struct inet_diag_req_v2 as inet_diag.h does', () => {
        // sdiag_family, sdiag_protocol, idiag_ext, pad, idiag_states (u32), then
        // inet_diag_sockid: sport, dport (be16), src[4], dst[4] (be32), if (u32), cookie[2].
        const expected = new Uint8Array(56);
        expected.set([10, 17, 0x42, 0, 0x48, 0x10, 0, 0]);
        expect(
          formatInetDiagRequest({ family: 10, protocol: 17, extensions: 0x42, states: (1 << 12) | 0x48 }),
        ).toEqual(expected);
        const all = new Uint8Array(56);
        all.set([2, 6, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        expect(formatInetDiagRequest({ family: 2, protocol: 6, extensions: 0, states: 0xffffffff })).toEqual(
          all,
        );
      });

      it.each([
        [4, 'tcp', 2, 6],
        [6, 'tcp', 10, 6],
        [4, 'udp', 2, 17],
        [6, 'udp', 10, 17],
      ] as const)(
        'a dump of IPv%i %s sends one SOCK_DIAG_BY_FAMILY dump request for every state',
        (family, protocol, af, ipproto) => {
          const { open, opened } = replay([done()]);
          dumpInetSockets(open, { family, protocol });
          const request = opened[0]?.requests[0] as Uint8Array;
          const sequence = new DataView(request.buffer).getUint32(8, true);
          const expected = new Uint8Array(72);
          const header = new DataView(expected.buffer);
          header.setUint32(0, 72, true); // nlmsg_len
          header.setUint16(4, 20, true); // SOCK_DIAG_BY_FAMILY
          header.setUint16(6, 0x301, true); // NLM_F_REQUEST | NLM_F_ROOT | NLM_F_MATCH
          header.setUint32(8, sequence, true);
          header.setUint32(12, 0, true); // nlmsg_pid: the kernel
          // INET_DIAG_INFO (2) and INET_DIAG_SKMEMINFO (7) are bits 1 and 6 of idiag_ext.
          expected.set([af, ipproto, 0x42, 0, 0xff, 0xff, 0xff, 0xff], 16);
          expect(request).toEqual(expected);
        },
      );

      it('each dump uses a new sequence number', () => {
        const first = replay([done()]);
        const second = replay([done()]);
        dumpInetSockets(first.open, { family: 4, protocol: 'tcp' });
        dumpInetSockets(second.open, { family: 4, protocol: 'tcp' });
        const sequenceOf = (r: typeof first) => r.opened[0]?.sequence;
        expect(sequenceOf(second)).not.toBe(sequenceOf(first));
      });
    });
  },
);
