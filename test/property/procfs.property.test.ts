/**
 * The /proc/net/{tcp,tcp6,udp,udp6} parser against the kernel's own line format and
 * against random and damaged text: it returns the entries the kernel wrote, or throws a
 * ProtocolError, never anything else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatIPv4, formatIPv6 } from '../../src/address.js';
import type { Family } from '../../src/model.js';
import { hostIsLittleEndian } from '../../src/netlink/byte-reader.js';
import { parseProcNetTable } from '../../src/procfs/net.js';
import { ProtocolError } from '../../src/sys/errors.js';
import { typedOutcome } from './bytes.js';

const HEADER =
  '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';

const hex = (value: number, digits: number) => value.toString(16).toUpperCase().padStart(digits, '0');

/** The address as the kernel prints it: each 32-bit word, read in host order, as %08X. */
function procAddress(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  for (let i = 0; i < bytes.byteLength; i += 4) out += hex(view.getUint32(i, hostIsLittleEndian), 8);
  return out;
}

interface Entry {
  local: Uint8Array;
  localPort: number;
  remote: Uint8Array;
  remotePort: number;
  state: number;
  txQueue: number;
  rxQueue: number;
  uid: number;
  inode: number;
}

function entry(family: Family): fc.Arbitrary<Entry> {
  const size = family === 4 ? 4 : 16;
  return fc.record({
    local: fc.uint8Array({ minLength: size, maxLength: size }),
    localPort: fc.integer({ min: 0, max: 0xffff }),
    remote: fc.uint8Array({ minLength: size, maxLength: size }),
    remotePort: fc.integer({ min: 0, max: 0xffff }),
    state: fc.integer({ min: 1, max: 12 }),
    txQueue: fc.integer({ min: 0, max: 0xffffffff }),
    rxQueue: fc.integer({ min: 0, max: 0xffffffff }),
    uid: fc.integer({ min: 0, max: 0xffffffff }),
    inode: fc.nat(),
  });
}

/** One line as net/ipv4/tcp_ipv4.c (get_tcp4_sock) and net/ipv6/tcp_ipv6.c lay it out. */
function procLine(index: number, e: Entry): string {
  return [
    `${String(index).padStart(4)}:`,
    `${procAddress(e.local)}:${hex(e.localPort, 4)}`,
    `${procAddress(e.remote)}:${hex(e.remotePort, 4)}`,
    hex(e.state, 2),
    `${hex(e.txQueue, 8)}:${hex(e.rxQueue, 8)}`,
    '00:00000000',
    '00000000',
    String(e.uid).padStart(5),
    '       0',
    String(e.inode),
    '1 0000000000000000 20 4 30 10 -1',
  ].join(' ');
}

function table(entries: readonly Entry[]): string {
  return `${[HEADER, ...entries.map((e, i) => procLine(i, e))].join('\n')}\n`;
}

const family = fc.constantFrom<Family>(4, 6);

describe('parseProcNetTable', () => {
  it('reads back every entry of a table in the kernel’s format', () => {
    fc.assert(
      fc.property(
        family.chain((f) => fc.tuple(fc.constant(f), fc.array(entry(f), { maxLength: 8 }))),
        ([f, entries]) => {
          const format = (b: Uint8Array) => (f === 4 ? formatIPv4(b) : formatIPv6(b));
          expect(parseProcNetTable(table(entries), f)).toEqual(
            entries.map((e) => ({
              family: f,
              state: e.state,
              local: { address: format(e.local), port: e.localPort },
              remote: { address: format(e.remote), port: e.remotePort },
              sendQ: e.txQueue,
              recvQ: e.rxQueue,
              uid: e.uid,
              inode: e.inode,
            })),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('returns entries or a ProtocolError for random text', () => {
    const noise = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ unit: fc.constantFrom(...'0123456789ABCDEFabcdefxg: \n\t-'.split('')), maxLength: 300 }),
    );
    fc.assert(
      fc.property(noise, family, (text, f) => {
        typedOutcome(() => parseProcNetTable(text, f));
      }),
      { numRuns: 500 },
    );
  });

  it('returns entries or a ProtocolError for damaged tables, and rejects what is not a number', () => {
    const damage = fc.record({
      cut: fc.nat(2000),
      edits: fc.array(
        fc.tuple(
          fc.nat(2000),
          fc.constantFrom('', ' ', ':', '\n', 'G', '-1', 'FFFFFFFFFFFFFFFFFFFF', '\u00e9'),
        ),
        { maxLength: 6 },
      ),
    });
    fc.assert(
      fc.property(
        family.chain((f) => fc.tuple(fc.constant(f), fc.array(entry(f), { minLength: 1, maxLength: 4 }))),
        damage,
        ([f, entries], { cut, edits }) => {
          let text = table(entries).slice(0, cut);
          for (const [at, insert] of edits) text = text.slice(0, at) + insert + text.slice(at + 1);
          const outcome = typedOutcome(() => parseProcNetTable(text, f));
          if ('error' in outcome) expect(outcome.error).toBeInstanceOf(ProtocolError);
          else {
            for (const e of outcome.value) {
              expect(Number.isInteger(e.state) && e.state >= 0 && e.state <= 0xff).toBe(true);
              expect(Number.isInteger(e.local.port) && e.local.port <= 0xffff).toBe(true);
              expect(Number.isInteger(e.inode) && e.inode >= 0).toBe(true);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
