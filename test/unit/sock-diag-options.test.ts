/**
 * Option values taken from the sock_diag dump instead of getsockopt: the attributes are
 * parsed where the kernel puts them, only when asked for; the reader uses them only where
 * the catalogue says the dump carries the same value, and calls getsockopt otherwise.
 */
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { SockDiagOptionFacts, SocketRecord } from '../../src/model.js';
import {
  INET_DIAG_CONG,
  INET_DIAG_MARK,
  INET_DIAG_SKMEMINFO,
  INET_DIAG_SKV6ONLY,
  INET_DIAG_SOCKOPT,
  INET_DIAG_SOCKOPT_BITS,
  INET_DIAG_TCLASS,
  INET_DIAG_TOS,
  parseInetDiagMessage,
} from '../../src/netlink/inet-diag.js';
import { FORBIDDEN_OPTIONS, OPTION_CATALOGUE, optionsFor } from '../../src/options/catalogue.js';
import { type FdAccess, OptionReader, valueFromSockDiag } from '../../src/options/reader.js';
import { socketRecord } from '../helpers/records.js';

const littleEndian = endianness() === 'LE';

function rtattr(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array((4 + payload.byteLength + 3) & ~3);
  const view = new DataView(out.buffer);
  view.setUint16(0, 4 + payload.byteLength, true);
  view.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

function message(family: 2 | 10, interfaceIndex: number, attributes: Uint8Array[]): Uint8Array {
  const body = new Uint8Array(72 + attributes.reduce((n, a) => n + a.byteLength, 0));
  body[0] = family;
  body[1] = 10; // LISTEN
  new DataView(body.buffer).setUint32(40, interfaceIndex, true);
  let at = 72;
  for (const a of attributes) {
    body.set(a, at);
    at += a.byteLength;
  }
  return body;
}

describe.skipIf(!littleEndian)('INET_DIAG option attributes (little-endian layouts)', () => {
  const u32 = (value: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, value, true);
    return b;
  };
  const attributes = [
    rtattr(INET_DIAG_TOS, Uint8Array.of(0x10)),
    rtattr(INET_DIAG_TCLASS, Uint8Array.of(0x28)),
    rtattr(INET_DIAG_SKV6ONLY, Uint8Array.of(1)),
    rtattr(INET_DIAG_MARK, u32(0xdeadbeef)),
    rtattr(INET_DIAG_CONG, new TextEncoder().encode('reno\0')),
    // recverr, freebind, transparent | bind_address_no_port
    rtattr(INET_DIAG_SOCKOPT, Uint8Array.of(0b0010_0101, 0b0000_0001)),
  ];

  it('are collected into optionFacts when asked for', () => {
    const parsed = parseInetDiagMessage(message(10, 3, attributes), { optionFacts: true });
    expect(parsed.optionFacts).toEqual({
      boundInterface: 3,
      tos: 0x10,
      tclass: 0x28,
      v6only: 1,
      mark: 0xdeadbeef,
      congestion: 'reno',
      inetFlags: (1 << 0) | (1 << 2) | (1 << 5) | (1 << 8),
    });
  });

  it('leave the parse as it was when not asked for', () => {
    const parsed = parseInetDiagMessage(message(10, 3, attributes));
    expect(parsed.optionFacts).toBeUndefined();
    expect(Object.keys(parsed)).not.toContain('inetFlags');
  });

  it('number the SOCKOPT bits in the order of struct inet_diag_sockopt', () => {
    const bits = INET_DIAG_SOCKOPT_BITS;
    expect([bits.recverr, bits.isIcsk, bits.freebind, bits.hdrincl, bits.mcLoop]).toEqual([0, 1, 2, 3, 4]);
    expect([bits.transparent, bits.mcAll, bits.nodefrag, bits.bindAddressNoPort]).toEqual([5, 6, 7, 8]);
  });

  it('that are too short are left out rather than guessed', () => {
    const parsed = parseInetDiagMessage(
      message(2, 0, [
        rtattr(INET_DIAG_MARK, Uint8Array.of(1, 2)),
        rtattr(INET_DIAG_SOCKOPT, Uint8Array.of(1)),
      ]),
      { optionFacts: true },
    );
    expect(parsed.optionFacts).toEqual({ boundInterface: 0 });
  });

  it('share one facts object between sockets whose facts are all the same, and only those', () => {
    const meminfo = (rcvbuf: number, sndbuf: number) => {
      const b = new Uint8Array(36);
      const view = new DataView(b.buffer);
      view.setUint32(4, rcvbuf, true);
      view.setUint32(12, sndbuf, true);
      return rtattr(INET_DIAG_SKMEMINFO, b);
    };
    const parse = (interfaceIndex: number, extra: Uint8Array[]) =>
      parseInetDiagMessage(message(10, interfaceIndex, [...attributes, meminfo(1000, 2000), ...extra]), {
        optionFacts: true,
      }).optionFacts;
    const base = parse(3, []);
    expect(parse(3, [])).toBe(base);
    expect(base).toMatchObject({ rcvbuf: 1000, sndbuf: 2000 });
    // Any one value different: an object of its own, with that value. (A later
    // attribute of the same type replaces the earlier one.)
    const variants = [
      parse(4, []),
      parse(3, [rtattr(INET_DIAG_TOS, Uint8Array.of(0x11))]),
      parse(3, [rtattr(INET_DIAG_TCLASS, Uint8Array.of(0x29))]),
      parse(3, [rtattr(INET_DIAG_SKV6ONLY, Uint8Array.of(0))]),
      parse(3, [rtattr(INET_DIAG_MARK, u32(7))]),
      parse(3, [rtattr(INET_DIAG_CONG, new TextEncoder().encode('bbr\0'))]),
      parse(3, [rtattr(INET_DIAG_SOCKOPT, Uint8Array.of(0, 0))]),
      parse(3, [meminfo(1001, 2000)]),
      parse(3, [meminfo(1000, 2001)]),
    ];
    for (const [i, facts] of variants.entries()) {
      expect(facts, `variant ${i}`).not.toBe(base);
      expect(facts, `variant ${i}`).not.toEqual(base);
    }
    // Not only the previous socket's: after the variants, the base facts and each
    // variant's are met again as the same objects.
    expect(parse(3, [])).toBe(base);
    expect(parse(3, [rtattr(INET_DIAG_MARK, u32(7))])).toBe(variants[4]);
    expect(parse(4, [])).toBe(variants[0]);
    // Shared, so frozen: one socket's cannot be changed through another's.
    expect(Object.isFrozen(base)).toBe(true);
    // The fields compared are all the fields there are.
    expect(Object.keys(base ?? {}).sort()).toEqual(
      [
        'boundInterface',
        'congestion',
        'inetFlags',
        'mark',
        'rcvbuf',
        'sndbuf',
        'tclass',
        'tos',
        'v6only',
      ].sort(),
    );
  });

  it('reuse one string for a congestion name seen before, and tell different names apart', () => {
    const names = ['cubic', 'bbr', 'cubic', 'reno'].map(
      (name) =>
        parseInetDiagMessage(message(2, 0, [rtattr(INET_DIAG_CONG, new TextEncoder().encode(`${name}\0`))]), {
          optionFacts: true,
        }).optionFacts?.congestion,
    );
    expect(names).toEqual(['cubic', 'bbr', 'cubic', 'reno']);
  });
});

/** A record with these dump facts, and (`memInfo`) sk_meminfo, whose buffer sizes the facts then carry. */
function record(facts: SockDiagOptionFacts | undefined, memInfo = true): SocketRecord {
  return socketRecord({
    local: { address: '127.0.0.1', port: 1 },
    remote: { address: '127.0.0.1', port: 2 },
    inode: 77,
    memInfo: memInfo
      ? {
          rmemAlloc: 0,
          rcvbuf: 131072,
          wmemAlloc: 0,
          sndbuf: 16384,
          fwdAlloc: 0,
          wmemQueued: 0,
          optmem: 0,
          backlog: 0,
          drops: 0,
        }
      : null,
    // The parser puts sk_meminfo's buffer sizes into the facts too.
    optionFacts: facts && memInfo ? { ...facts, rcvbuf: 131072, sndbuf: 16384 } : facts,
    processes: [{ pid: 10, fd: 4, command: 'x' }],
    options: null,
  });
}

describe('valueFromSockDiag', () => {
  const facts: SockDiagOptionFacts = {
    boundInterface: 0,
    inetFlags: 1 << INET_DIAG_SOCKOPT_BITS.transparent,
    tos: 16,
    congestion: 'cubic',
  };

  it('takes each value from where the catalogue says the dump carries it', () => {
    const socket = record(facts);
    expect(valueFromSockDiag({ fact: 'rcvbuf' }, socket)).toBe(131072);
    expect(valueFromSockDiag({ fact: 'sndbuf' }, socket)).toBe(16384);
    expect(valueFromSockDiag({ fact: 'tos' }, socket)).toBe(16);
    expect(valueFromSockDiag({ fact: 'congestion' }, socket)).toBe('cubic');
    expect(valueFromSockDiag({ fact: 'inetFlags', bit: INET_DIAG_SOCKOPT_BITS.transparent }, socket)).toBe(1);
    expect(valueFromSockDiag({ fact: 'inetFlags', bit: INET_DIAG_SOCKOPT_BITS.freebind }, socket)).toBe(0);
    expect(valueFromSockDiag({ fact: 'boundInterface' }, socket)).toBe('');
  });

  it('has no value where the dump did not carry one', () => {
    const socket = record({ boundInterface: 2 }, false);
    for (const fact of ['rcvbuf', 'sndbuf', 'tos', 'tclass', 'v6only', 'mark', 'congestion'] as const) {
      expect(valueFromSockDiag({ fact }, socket), fact).toBeUndefined();
    }
    expect(valueFromSockDiag({ fact: 'inetFlags', bit: 0 }, socket)).toBeUndefined();
    // Bound to a device: the name needs getsockopt.
    expect(valueFromSockDiag({ fact: 'boundInterface' }, socket)).toBeUndefined();
    expect(valueFromSockDiag({ fact: 'rcvbuf' }, record(undefined, false))).toBeUndefined();
  });
});

/** An FdAccess whose every getsockopt answers 16 bytes starting with the int 7, and is recorded. */
function recordingAccess(inode = 77) {
  const calls: string[] = [];
  const names = new Map(OPTION_CATALOGUE.map((o) => [`${o.level}/${o.optname}`, o.name]));
  const access: FdAccess = {
    pidfdOpen: () => 100,
    pidfdGetfd: () => 200,
    inodeOf: () => inode,
    getsockopt: (_fd, level, name, value, length) => {
      calls.push(names.get(`${level}/${name}`) ?? `${level}/${name}`);
      value.fill(0, 0, 16);
      new DataView(value.buffer, value.byteOffset).setInt32(0, 7, littleEndian);
      length[0] = 16;
      return 16;
    },
    close: () => {},
  };
  return { access, calls };
}

describe('OptionReader with values from the dump', () => {
  const specs = optionsFor('tcp', 4, false);
  const fromDump = specs.filter((s) => s.sockDiag);

  it('skips getsockopt exactly for the options the dump carried', () => {
    const { access, calls } = recordingAccess();
    const socket = record({ boundInterface: 0, inetFlags: 0, tos: 0, mark: 5, congestion: 'cubic' });
    expect(new OptionReader({ access }).read(socket)).toBe(true);
    const skipped = fromDump.map((s) => s.name);
    expect(skipped).toEqual(expect.arrayContaining(['SO_RCVBUF', 'SO_SNDBUF', 'TCP_CONGESTION', 'IP_TOS']));
    for (const name of skipped) expect(calls, name).not.toContain(name);
    expect(calls).toEqual(specs.filter((s) => !s.sockDiag).map((s) => s.name));
    expect(socket.options?.SO_RCVBUF).toBe(131072);
    expect(socket.options?.SO_MARK).toBe(5);
    expect(socket.options?.TCP_CONGESTION).toBe('cubic');
    expect(socket.options?.SO_BINDTODEVICE).toBe('');
    expect(socket.options?.TCP_NODELAY).toBe(7);
  });

  it('reads every option with getsockopt when the dump carried none (the /proc/net source)', () => {
    const { access, calls } = recordingAccess();
    const socket = record(undefined, false);
    new OptionReader({ access }).read(socket);
    expect(calls).toEqual(specs.map((s) => s.name));
  });

  it('keeps the catalogue order in the options object either way', () => {
    const { access } = recordingAccess();
    const withFacts = record({ boundInterface: 0, inetFlags: 0, tos: 0, congestion: 'cubic' });
    const without = record(undefined, false);
    const reader = new OptionReader({ access });
    reader.read(withFacts);
    reader.read(without);
    const order = specs.map((s) => s.name);
    expect(Object.keys(withFacts.options ?? {})).toEqual(order);
    expect(Object.keys(without.options ?? {})).toEqual(order);
  });

  it('reports nothing from the dump for a socket whose fd now holds another file', () => {
    const { access, calls } = recordingAccess(12345);
    const socket = record({ boundInterface: 0, tos: 1 });
    new OptionReader({ access }).read(socket);
    expect(socket.options).toBeNull();
    expect(socket.optionsError).toMatch(/now holds another file/);
    expect(calls).toEqual([]);
  });

  it('only stands in for catalogue options, none of them forbidden', () => {
    const forbidden = new Set(FORBIDDEN_OPTIONS.map(([name]) => name));
    for (const spec of OPTION_CATALOGUE.filter((s) => s.sockDiag))
      expect(forbidden.has(spec.name)).toBe(false);
  });
});
