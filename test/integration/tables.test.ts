/**
 * Issue 2 on real sockets: knetstat's four tables against /proc/net of the same private
 * network namespace, the Diag column on a stalled connection, the /proc/net fallback,
 * and the command line's contract (exit codes, one-line errors, quiet end in `| head`).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonSocket as JsonRow } from '../../src/render/json.js';
import {
  type Address,
  CLI,
  type Described,
  netnsUnavailableReason,
  type Pair,
  ROOT,
  SocketChild,
} from '../helpers/netns.js';
import {
  endpointTextToKey,
  type OracleRow,
  parseKnetstatTable,
  parseProcNet,
  splitTables,
  type TableName,
  type TextRow,
} from '../helpers/proc-net-oracle.js';

const skip = netnsUnavailableReason();
const TABLE_NAMES: readonly TableName[] = ['tcp', 'tcp6', 'udp', 'udp6'];
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SOL_IPV6 = 41;
const IPV6_V6ONLY = 26;
const UNREAD_BYTES = 1234;

function protocolOf(table: TableName): 'tcp' | 'udp' {
  return table.startsWith('tcp') ? 'tcp' : 'udp';
}

/** (local, remote, state, queues) of knetstat text rows, in the oracle's terms. */
function textKeys(rows: readonly TextRow[]): string[] {
  return rows
    .map(
      (r) => `${endpointTextToKey(r.local)} ${endpointTextToKey(r.remote)} ${r.state} ${r.recvQ} ${r.sendQ}`,
    )
    .sort();
}

function oracleKeys(rows: readonly OracleRow[]): string[] {
  return rows.map((r) => `${r.local} ${r.remote} ${r.state} ${r.recvQ} ${r.sendQ}`).sort();
}

function jsonKeys(rows: readonly JsonRow[]): string[] {
  return rows
    .map(
      (r) =>
        `${endpointTextToKey(`${r.local.address}:${r.local.port}`)} ${endpointTextToKey(`${r.remote.address}:${r.remote.port}`)} ${r.state} ${r.recvQ} ${r.sendQ} ${r.uid} ${r.inode}`,
    )
    .sort();
}

function oracleJsonKeys(rows: readonly OracleRow[]): string[] {
  return rows
    .map((r) => `${r.local} ${r.remote} ${r.stateName} ${r.recvQ} ${r.sendQ} ${r.uid} ${r.inode}`)
    .sort();
}

function endpoint([address, port]: Address): string {
  return `${address}:${port === 0 ? '*' : port}`;
}

function rowOf(rows: readonly TextRow[], local: Address, remote: Address | null): TextRow | undefined {
  return rows.find((r) => r.local === endpoint(local) && r.remote === endpoint(remote ?? ['0.0.0.0', 0]));
}

describe.skipIf(skip !== null)(`the four tables on real sockets${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  const made: Record<string, Described> = {};
  const pairs: Record<string, Pair> = {};

  beforeAll(async () => {
    child = await SocketChild.start();
    made.L4 = await child.run<Described>({ op: 'listen', id: 'L4', family: 4, address: '127.0.0.1' });
    made.L6 = await child.run<Described>({ op: 'listen', id: 'L6', family: 6, address: '::1' });
    // Dual-stack: an IPv4 client shows up in tcp6 as ::ffff:127.0.0.1.
    made.LD = await child.run<Described>({
      op: 'listen',
      id: 'LD',
      family: 6,
      address: '::',
      before_bind: [[SOL_IPV6, IPV6_V6ONLY, 0]],
    });
    // A listener with connections nobody accepted: Recv-Q is the accept backlog.
    made.LB = await child.run<Described>({ op: 'listen', id: 'LB', family: 4, address: '127.0.0.1' });
    made.B1 = await child.run<Described>({ op: 'connect_only', id: 'B1', to: 'LB' });
    made.B2 = await child.run<Described>({ op: 'connect_only', id: 'B2', to: 'LB' });
    pairs.P4 = await child.run<Pair>({ op: 'connect', id: 'C4', to: 'L4', accept_as: 'A4' });
    pairs.P6 = await child.run<Pair>({ op: 'connect', id: 'C6', to: 'L6', accept_as: 'A6' });
    pairs.PM = await child.run<Pair>({
      op: 'connect',
      id: 'CM',
      to: 'LD',
      family: 4,
      address: '127.0.0.1',
      accept_as: 'AM',
    });
    await child.run({ op: 'send', id: 'C4', bytes: UNREAD_BYTES });
    await child.run({ op: 'send', id: 'C6', bytes: UNREAD_BYTES });
    await child.run({ op: 'timewait', to: 'L4' });
    await child.run({ op: 'timewait', to: 'L6' });
    made.U4 = await child.run<Described>({ op: 'udp', id: 'U4', family: 4, address: '127.0.0.1' });
    made.U4C = await child.run<Described>({
      op: 'udp',
      id: 'U4C',
      family: 4,
      address: '127.0.0.1',
      connect: made.U4.local,
    });
    made.U6 = await child.run<Described>({ op: 'udp', id: 'U6', family: 6, address: '::1' });
    made.U6C = await child.run<Described>({
      op: 'udp',
      id: 'U6C',
      family: 6,
      address: '::1',
      connect: made.U6.local,
    });
    made.UW = await child.run<Described>({ op: 'udp', id: 'UW', family: 4, address: '0.0.0.0' });
    // A datagram nobody reads: UDP's Recv-Q is receive memory in use.
    await child.run({ op: 'send', id: 'U4C', bytes: 100 });
    // Loopback delivers within send(); still, wait (bounded) until the kernel shows the
    // bytes queued before comparing, so that the comparison itself never races.
    for (let i = 0; i < 50; i++) {
      const tcp = parseProcNet('tcp', child.procNet('tcp'));
      if (tcp.some((r) => r.recvQ === UNREAD_BYTES)) break;
      await sleep(20);
    }
  });
  afterAll(async () => {
    await child?.stop();
  });

  it('built what the comparisons need: listeners, established pairs, TIME_WAIT, UDP both ways', () => {
    const tcp = parseProcNet('tcp', child.procNet('tcp'));
    const tcp6 = parseProcNet('tcp6', child.procNet('tcp6'));
    const udp = parseProcNet('udp', child.procNet('udp'));
    const udp6 = parseProcNet('udp6', child.procNet('udp6'));
    for (const table of [tcp, tcp6]) {
      expect(new Set(table.map((r) => r.state))).toEqual(new Set(['LSTN', 'ESTB', 'TIMW']));
    }
    for (const table of [udp, udp6]) {
      expect(new Set(table.map((r) => r.stateName))).toEqual(new Set(['UNCONN', 'ESTABLISHED']));
    }
  });

  for (const table of TABLE_NAMES) {
    it(`knetstat ${table}: the rows are /proc/net/${table}'s, state and queues included`, () => {
      const { stdout, stderr, status } = child.knetstat([table]);
      expect(stderr).toBe('');
      expect(status).toBe(0);
      const rows = parseKnetstatTable(stdout, protocolOf(table));
      const oracle = parseProcNet(table, child.procNet(table));
      expect(rows.length).toBeGreaterThan(0);
      expect(textKeys(rows)).toEqual(oracleKeys(oracle));
    });

    it(`knetstat --json ${table}: state, queues, uid and inode are /proc/net/${table}'s`, () => {
      const { stdout, status } = child.knetstat(['--json', table]);
      expect(status).toBe(0);
      const rows = JSON.parse(stdout) as JsonRow[];
      const oracle = parseProcNet(table, child.procNet(table));
      expect(jsonKeys(rows)).toEqual(oracleJsonKeys(oracle));
      for (const r of rows) {
        expect(r.protocol).toBe(protocolOf(table));
        expect(r.family).toBe(table.endsWith('6') ? 6 : 4);
      }
    });
  }

  it('all four tables with no argument, each under its own header, endpoints as the owner prints them', () => {
    const { stdout, status } = child.knetstat([]);
    expect(status).toBe(0);
    const tables = splitTables(stdout);
    expect(tables.map((t) => t.split('\n')[0])).toEqual([
      'Recv-Q Send-Q Local Address           Foreign Address         Stat Diag Options',
      'Recv-Q Send-Q Local Address           Foreign Address         Stat Diag Options',
      'Recv-Q Send-Q Local Address           Foreign Address         Options',
      'Recv-Q Send-Q Local Address           Foreign Address         Options',
    ]);
    const [tcp, tcp6, udp, udp6] = tables.map((t, i) => parseKnetstatTable(t, i < 2 ? 'tcp' : 'udp')) as [
      TextRow[],
      TextRow[],
      TextRow[],
      TextRow[],
    ];
    const p4 = pairs.P4 as Pair;
    const p6 = pairs.P6 as Pair;
    const pm = pairs.PM as Pair;
    // Python's getsockname (glibc inet_ntop) is an independent formatter of the same
    // addresses: ::1, and the IPv4-mapped ::ffff:127.0.0.1 of a dual-stack accept.
    expect(rowOf(tcp, p4.client.local, p4.client.remote)?.state).toBe('ESTB');
    expect(rowOf(tcp6, p6.server.local, p6.server.remote)?.state).toBe('ESTB');
    expect(pm.server.local[0]).toBe('::ffff:127.0.0.1');
    expect(rowOf(tcp6, pm.server.local, pm.server.remote)?.state).toBe('ESTB');
    expect(rowOf(tcp, pm.client.local, pm.client.remote)?.state).toBe('ESTB');
    expect(rowOf(udp, (made.U4C as Described).local, (made.U4C as Described).remote)).toBeDefined();
    expect(rowOf(udp6, (made.U6 as Described).local, ['::', 0])).toBeDefined();
    expect(rowOf(udp, (made.UW as Described).local, ['0.0.0.0', 0])?.local).toMatch(/^0\.0\.0\.0:\d+$/);
  });

  it('Recv-Q of an established socket with unread bytes is the byte count sent to it', () => {
    const { stdout } = child.knetstat(['tcp', 'tcp6']);
    const [tcp, tcp6] = splitTables(stdout).map((t) => parseKnetstatTable(t, 'tcp')) as [
      TextRow[],
      TextRow[],
    ];
    const p4 = pairs.P4 as Pair;
    const p6 = pairs.P6 as Pair;
    expect(rowOf(tcp, p4.server.local, p4.server.remote)?.recvQ).toBe(UNREAD_BYTES);
    expect(rowOf(tcp6, p6.server.local, p6.server.remote)?.recvQ).toBe(UNREAD_BYTES);
    // The sending side has had everything acknowledged and holds nothing.
    expect(rowOf(tcp, p4.client.local, p4.client.remote)?.sendQ).toBe(0);
  });

  it('LISTEN shows the accept backlog as Recv-Q and 0 as Send-Q (not the maximum backlog)', () => {
    const rows = parseKnetstatTable(child.knetstat(['tcp']).stdout, 'tcp');
    const backlogged = rowOf(rows, (made.LB as Described).local, ['0.0.0.0', 0]);
    expect(backlogged?.state).toBe('LSTN');
    expect(backlogged?.recvQ).toBe(2);
    expect(backlogged?.sendQ).toBe(0);
    for (const row of rows.filter((r) => r.state === 'LSTN')) expect(row.sendQ).toBe(0);
  });

  it('a connection waiting in the accept queue is listed, marked as having no owner, and not warned about', () => {
    const { stdout, stderr } = child.knetstat(['tcp']);
    const rows = parseKnetstatTable(stdout, 'tcp');
    const lb = made.LB as Described;
    const b1 = made.B1 as Described;
    const waiting = rowOf(rows, lb.local, b1.local);
    expect(waiting?.state).toBe('ESTB');
    expect(waiting?.options).toBe('[no owner]');
    // Its client end is an ordinary socket of the child.
    expect(rowOf(rows, b1.local, lb.local)?.options).toMatch(/^SO_REUSEADDR=0,/);
    // Nothing (no privilege) would make it readable: no summary line for it.
    expect(stderr).toBe('');
    const json = JSON.parse(child.knetstat(['--json', 'tcp']).stdout) as JsonRow[];
    const entry = json.find((r) => r.local.port === lb.local[1] && r.remote.port === b1.local[1]);
    expect(entry?.inode).toBe(0);
    expect(entry?.options).toBeNull();
    expect(entry?.processes).toEqual([]);
    expect(entry?.optionsError).toMatch(/^no process holds it/);
  });

  it('TIME_WAIT rows end after the state: no Diag, no Options', () => {
    const { stdout } = child.knetstat(['tcp', 'tcp6']);
    const rows = splitTables(stdout).flatMap((t) => parseKnetstatTable(t, 'tcp'));
    const timeWait = rows.filter((r) => r.state === 'TIMW');
    expect(timeWait.length).toBe(2);
    for (const row of timeWait) {
      expect(row.diag).toBeUndefined();
      expect(row.line.endsWith('TIMW ')).toBe(true);
    }
  });

  it('--source proc gives the same rows as netlink, with Diag shown as ? where tcp_info would be needed', () => {
    const netlink = child.knetstat([]);
    const proc = child.knetstat(['--source', 'proc']);
    expect(proc.status).toBe(0);
    expect(proc.stderr).toBe('');
    const netlinkTables = splitTables(netlink.stdout);
    const procTables = splitTables(proc.stdout);
    expect(procTables.length).toBe(4);
    for (let i = 0; i < 4; i++) {
      const protocol = i < 2 ? 'tcp' : 'udp';
      const procRows = parseKnetstatTable(procTables[i] as string, protocol);
      const netlinkRows = parseKnetstatTable(netlinkTables[i] as string, protocol);
      for (const row of procRows) if (row.state === 'ESTB') expect(row.diag).toBe('?');
      // The only difference allowed: the Diag field of ESTABLISHED rows. Rows are compared
      // as sets: the kernel walks its tables in a different order for each source.
      const withUnknownDiag = (row: TextRow) =>
        JSON.stringify({ ...row, line: '', diag: row.state === 'ESTB' ? '?' : row.diag });
      expect(procRows.map(withUnknownDiag).sort()).toEqual(netlinkRows.map(withUnknownDiag).sort());
    }
  });

  it('--json --source proc gives the same objects as --json, diag null where tcp_info would be needed', () => {
    const netlink = JSON.parse(child.knetstat(['--json']).stdout) as JsonRow[];
    const procResult = child.knetstat(['--json', '--source', 'proc']);
    expect(procResult.status).toBe(0);
    const proc = JSON.parse(procResult.stdout) as JsonRow[];
    const byKey = (rows: JsonRow[]) =>
      new Map(rows.map((r) => [`${r.protocol}${r.family} ${JSON.stringify([r.local, r.remote])}`, r]));
    const netlinkByKey = byKey(netlink);
    expect(proc.length).toBe(netlink.length);
    for (const [key, p] of byKey(proc)) {
      const n = netlinkByKey.get(key);
      expect(n, key).toBeDefined();
      const tcpInfoNeeded = p.protocol === 'tcp' && p.state === 'ESTABLISHED';
      expect(p.diag).toBe(tcpInfoNeeded ? null : '');
      expect(typeof n?.diag).toBe('string');
      expect({ ...p, diag: 'x' }).toEqual({ ...n, diag: 'x' });
    }
  });
});

describe.skipIf(skip !== null)(`Diag on a stalled connection${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  beforeAll(async () => {
    child = await SocketChild.start();
  });
  afterAll(async () => {
    await child?.stop();
  });

  it('a receiver that never reads shows |<, the sender that filled its window >|', async () => {
    // The smallest receive buffer, on the listener so that the accepted socket starts with it.
    await child.run({ op: 'listen', id: 'L', before_bind: [[SOL_SOCKET, SO_RCVBUF, 1]] });
    const { client, server } = await child.run<Pair>({ op: 'connect', id: 'C', to: 'L', accept_as: 'A' });
    let receiver: TextRow | undefined;
    let sender: TextRow | undefined;
    // The windows close once the receiver's buffer is full and the sender has heard so:
    // fill, look, and try again a bounded number of times.
    for (let attempt = 0; attempt < 20; attempt++) {
      await child.run({ op: 'fill', id: 'C' });
      const rows = parseKnetstatTable(child.knetstat(['tcp']).stdout, 'tcp');
      receiver = rowOf(rows, server.local, server.remote);
      sender = rowOf(rows, client.local, client.remote);
      if (receiver?.diag === '|<' && sender?.diag === '>|') break;
      await sleep(50);
    }
    expect(receiver?.diag).toBe('|<');
    expect(sender?.diag).toBe('>|');
    expect(receiver?.recvQ).toBeGreaterThan(0);
    expect(sender?.sendQ).toBeGreaterThan(0);
    const json = JSON.parse(child.knetstat(['--json', 'tcp']).stdout) as JsonRow[];
    expect(json.find((r) => r.inode === server.inode)?.diag).toBe('|<');
    expect(json.find((r) => r.inode === client.inode)?.diag).toBe('>|');
    // Without tcp_info the same rows say they cannot tell.
    const proc = parseKnetstatTable(child.knetstat(['--source', 'proc', 'tcp']).stdout, 'tcp');
    expect(rowOf(proc, server.local, server.remote)?.diag).toBe('?');
    expect(rowOf(proc, client.local, client.remote)?.diag).toBe('?');
  });
});

function runCli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

describe('the command line', () => {
  it.each([
    [['--bogus'], '--bogus'],
    [['-Z'], '-Z'],
    [['tcp7'], 'tcp7'],
    [['tcp', 'sockets'], 'sockets'],
    [['--source', 'ebpf'], 'ebpf'],
  ])('%j: exit 2, one line on stderr naming %s, nothing on stdout', (args, named) => {
    const { stdout, stderr, status } = runCli(args);
    expect(status).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.endsWith('\n')).toBe(true);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain(named);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('--help prints the usage with examples on stdout and exits 0', () => {
    const { stdout, stderr, status } = runCli(['--help']);
    expect(status).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^Usage: knetstat /);
    expect(stdout).toContain('Questions it answers:');
    expect(runCli(['-h']).stdout).toBe(stdout);
  });

  it('--version prints the package version and exits 0', () => {
    const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string };
    const { stdout, stderr, status } = runCli(['--version']);
    expect(status).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toBe(`knetstat ${pkg.version}\n`);
  });
});

describe.skipIf(skip !== null)(`output piped into head${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  beforeAll(async () => {
    child = await SocketChild.start();
    // Enough rows that the output outgrows the pipe (64 KiB) many times over, so that
    // knetstat is still writing when head has gone.
    await child.run({ op: 'listen_many', prefix: 'M', count: 2000 });
  });
  afterAll(async () => {
    await child?.stop();
  });

  it('knetstat tcp | head -1 ends quietly: exit 0, nothing on stderr', () => {
    const full = child.knetstat(['tcp']);
    expect(full.status).toBe(0);
    expect(full.stdout.length).toBeGreaterThan(3 * 65536);
    const piped = spawnSync(
      'nsenter',
      [
        '-t',
        String(child.pid),
        '-n',
        'bash',
        '-c',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: bash's ${...}, not a template
        '"$0" "$1" tcp | head -1; echo "knetstat exit status: ${PIPESTATUS[0]}"',
        process.execPath,
        CLI,
      ],
      { encoding: 'utf8' },
    );
    expect(piped.stderr).toBe('');
    expect(piped.stdout).toBe(
      'Recv-Q Send-Q Local Address           Foreign Address         Stat Diag Options\nknetstat exit status: 0\n',
    );
  });
});
