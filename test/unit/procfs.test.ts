/**
 * The /proc/net fallback parser, on tables captured in the same namespace and at the same
 * moment as the sock_diag fixtures: checked against what the capture created, and against
 * the netlink parse of the same sockets.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TableName } from '../../src/model.js';
import { parseInetDiagMessage } from '../../src/netlink/inet-diag.js';
import { splitNetlinkMessages } from '../../src/netlink/message.js';
import { parseProcNetTable, parseSockstatInUse, procNetPath, tcpSocketsInUse } from '../../src/procfs/net.js';
import { ProtocolError } from '../../src/sys/errors.js';
import {
  CAPTURED_STATE_NUMBERS,
  capturedDatagrams,
  capturedProcText,
  capturedSockets,
  captureUnusableReason,
  endpointKey,
} from '../fixtures/load.js';

const TABLES: readonly TableName[] = ['tcp', 'tcp6', 'udp', 'udp6'];
const familyOf = (table: TableName) => (table.endsWith('6') ? 6 : 4) as 4 | 6;
const HEADER =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';

describe.skipIf(captureUnusableReason !== null)(
  `captured /proc/net tables${captureUnusableReason ? ` (skipped: ${captureUnusableReason})` : ''}`,
  () => {
    it.each(TABLES)('%s: parses to exactly the sockets the capture created', (table) => {
      const entries = parseProcNetTable(capturedProcText(table), familyOf(table));
      const expected = capturedSockets(table);
      expect(entries).toHaveLength(expected.length);
      const byEndpoints = new Map(entries.map((e) => [endpointKey(e.local, e.remote), e]));
      for (const socket of expected) {
        const entry = byEndpoints.get(endpointKey(socket.local, socket.remote));
        const what = `${socket.id} (${socket.state})`;
        expect(entry, `${what} is in the table`).toBeDefined();
        if (!entry) continue;
        expect(entry.family, what).toBe(familyOf(table));
        expect(entry.state, what).toBe(CAPTURED_STATE_NUMBERS[socket.state]);
        expect(entry.inode, what).toBe(socket.inode);
        expect(entry.uid, what).toBe(socket.uid);
        // /proc/net shows a listener's Send-Q as 0, as knetstat does.
        expect(entry.sendQ, what).toBe(socket.sendQ);
        if (socket.recvQ !== undefined) expect(entry.recvQ, what).toBe(socket.recvQ);
        else expect(entry.recvQ, what).toBeGreaterThanOrEqual(socket.recvQAtLeast ?? 1);
      }
    });

    it.each(TABLES)('%s: yields the same sockets as the netlink dump of the same moment', (table) => {
      const key = (s: {
        local: { address: string; port: number };
        remote: { address: string; port: number };
        state: number;
        recvQ: number;
        sendQ: number;
        inode: number;
      }) => `${endpointKey(s.local, s.remote)} st=${s.state} q=${s.recvQ}/${s.sendQ} inode=${s.inode}`;
      const fromProc = parseProcNetTable(capturedProcText(table), familyOf(table)).map(key).sort();
      const fromNetlink = capturedDatagrams(table)
        .flatMap((d) => [...splitNetlinkMessages(d)])
        .filter((m) => m.header.type === 20)
        .map(({ payload }) => parseInetDiagMessage(payload))
        // sock_diag reports a listener's backlog where /proc/net has 0.
        .map((m) => ({ ...m, sendQ: m.state === 10 && table.startsWith('tcp') ? 0 : m.sendQ }))
        .map(key)
        .sort();
      expect(fromProc.length).toBeGreaterThan(0);
      expect(fromProc).toEqual(fromNetlink);
    });
  },
);

describe.skipIf(endianness() !== 'LE')('hand-written lines', () => {
  it('reads the fields of a tcp line (tx_queue before rx_queue; addresses in host order)', () => {
    const text = `${HEADER}   0: 0100007F:0016 0200000A:C350 01 0000000A:000000FF 00:00000000 00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1\n`;
    expect(parseProcNetTable(text, 4)).toEqual([
      {
        family: 4,
        state: 1,
        local: { address: '127.0.0.1', port: 22 },
        remote: { address: '10.0.0.2', port: 50000 },
        sendQ: 10,
        recvQ: 255,
        uid: 1000,
        inode: 4242,
      },
    ]);
  });

  it('reads IPv6 addresses, IPv4-mapped ones included', () => {
    const text =
      `${HEADER}` +
      '   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 1 1\n' +
      '   1: 0000000000000000FFFF00000100007F:0050 B80D0120000000000000000001000000:1F90 06 00000000:00000000 03:00001000 00000000     0        0 0 3\n';
    const [listener, timeWait] = parseProcNetTable(text, 6);
    expect(listener?.local).toEqual({ address: '::1', port: 80 });
    expect(listener?.remote).toEqual({ address: '::', port: 0 });
    expect(listener?.recvQ).toBe(3);
    expect(timeWait?.local).toEqual({ address: '::ffff:127.0.0.1', port: 80 });
    expect(timeWait?.remote).toEqual({ address: '2001:db8::1', port: 8080 });
    expect(timeWait?.state).toBe(6);
    expect(timeWait?.inode).toBe(0);
  });

  it('skips the header and blank lines; a missing final newline is fine', () => {
    expect(parseProcNetTable(HEADER, 4)).toEqual([]);
    expect(parseProcNetTable('', 4)).toEqual([]);
    const line =
      '   0: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 77 2';
    expect(parseProcNetTable(`${HEADER}\n${line}\n\n`, 4)).toHaveLength(1);
    expect(parseProcNetTable(`${HEADER}${line}`, 4)).toHaveLength(1);
  });

  describe('malformed lines are a ProtocolError', () => {
    const good =
      '   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242';
    it('the well-formed line they are bent from parses', () => {
      expect(parseProcNetTable(`${HEADER}${good}\n`, 4)).toHaveLength(1);
    });
    it.each([
      ['a lone word', 'garbage'],
      ['no fields after sl', '   0:'],
      ['a missing inode', good.replace(/ 4242$/, '')],
      ['a short address', good.replace('0100007F:0016', '100007F:0016')],
      ['a long address', good.replace('0100007F:0016', '00100007F:0016')],
      ['an IPv6 address in an IPv4 table', good.replace('0100007F', '00000000000000000000000001000000')],
      ['a non-hex address', good.replace('0100007F', '0100007G')],
      ['no colon in an endpoint', good.replace('0100007F:0016', '0100007F0016')],
      ['an empty port', good.replace('0100007F:0016', '0100007F:')],
      ['a five-digit port', good.replace('0100007F:0016', '0100007F:00016')],
      ['a non-hex port', good.replace('0100007F:0016', '0100007F:00x6')],
      ['a three-digit state', good.replace(' 0A ', ' 00A ')],
      ['a non-hex state', good.replace(' 0A ', ' ZZ ')],
      ['queues without a colon', good.replace('00000000:00000000 00:', '0000000000000000 00:')],
      ['an empty rx_queue', good.replace('00000000:00000000 00:', '00000000: 00:')],
      ['a nine-digit tx_queue', good.replace('00000000:00000000 00:', '000000000:00000000 00:')],
      ['a non-decimal uid', good.replace('     0        0 4242', '    -1        0 4242')],
      ['a hex inode', good.replace(/4242$/, '0x42')],
    ])('%s', (_what, line) => {
      expect(() => parseProcNetTable(`${HEADER}${line}\n`, 4)).toThrow(ProtocolError);
    });
    it('an IPv4 address in an IPv6 table', () => {
      expect(() => parseProcNetTable(`${HEADER}${good}\n`, 6)).toThrow(ProtocolError);
    });
  });
});

describe('procNetPath', () => {
  it('names the four tables', () => {
    expect(procNetPath('tcp', 4)).toBe('/proc/net/tcp');
    expect(procNetPath('tcp', 6)).toBe('/proc/net/tcp6');
    expect(procNetPath('udp', 4, '/host/proc')).toBe('/host/proc/net/udp');
    expect(procNetPath('udp', 6)).toBe('/proc/net/udp6');
  });
});

describe('the sockstat estimate of TCP sockets', () => {
  const sockstat = [
    'sockets: used 35988',
    'TCP: inuse 26992 orphan 0 tw 3 alloc 35989 mem 0',
    'UDP: inuse 2 mem 0',
    '',
  ].join('\n');

  it('reads the inuse count of the line with its label, and 0 where there is none', () => {
    expect(parseSockstatInUse(sockstat, 'TCP')).toBe(26992);
    expect(parseSockstatInUse(sockstat, 'UDP')).toBe(2);
    expect(parseSockstatInUse(sockstat, 'TCP6')).toBe(0);
    expect(parseSockstatInUse('TCP6: inuse 7', 'TCP6')).toBe(7);
    expect(parseSockstatInUse('TCP: orphan 0', 'TCP')).toBe(0);
  });

  it('adds IPv4 and IPv6 from a /proc, and is 0 without one', () => {
    const root = mkdtempSync(join(tmpdir(), 'knetstat-sockstat-'));
    mkdirSync(join(root, 'net'));
    writeFileSync(join(root, 'net/sockstat'), sockstat);
    writeFileSync(join(root, 'net/sockstat6'), 'TCP6: inuse 8\nUDP6: inuse 1\n');
    expect(tcpSocketsInUse(root)).toBe(27000);
    rmSync(join(root, 'net/sockstat6'));
    expect(tcpSocketsInUse(root)).toBe(26992);
    expect(tcpSocketsInUse(join(root, 'none'))).toBe(0);
    rmSync(root, { recursive: true });
  });
});
