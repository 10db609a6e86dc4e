/**
 * Every filter, alone and combined, on real sockets of a child in a private network
 * namespace: the rows shown are exactly the sockets expected, in text and in JSON.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNetns, netnsUnavailableReason, SocketChild } from '../helpers/netns.js';
import { asTextKey, type JsonRow, jsonKey, jsonKeys, textKeys } from '../helpers/rows.js';

const skip = netnsUnavailableReason();

const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_BROADCAST = 6;
const SO_KEEPALIVE = 9;
const SO_LINGER = 13;
const SO_RCVBUF = 8;
const SO_SNDBUF = 7;

type Address = [string, number];
interface Described {
  local: Address;
  remote: Address | null;
}

function endpoint([address, port]: Address): string {
  return `${address}:${port === 0 ? '*' : port}`;
}

describe.skipIf(skip !== null)(`filters on a child's sockets${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  /** Socket id → its row key, built from what the child's own sockets report. */
  const key: Record<string, string> = {};
  let ports: Record<string, number> = {};
  let congestion = '';

  beforeAll(async () => {
    child = await SocketChild.start();
    const l4 = await child.run<Described>({
      op: 'listen',
      id: 'L4',
      address: '127.0.0.1',
      options: [[SOL_SOCKET, SO_REUSEADDR, 1]],
    });
    key.L4 = `tcp ${endpoint(l4.local)} 0.0.0.0:* LSTN`;
    const c = await child.run<{ client: Described; server: Described }>({
      op: 'connect',
      id: 'C',
      to: 'L4',
      accept_as: 'A',
      options: [[SOL_SOCKET, SO_KEEPALIVE, 1]],
    });
    key.C = `tcp ${endpoint(c.client.local)} ${endpoint(l4.local)} ESTB`;
    key.A = `tcp ${endpoint(l4.local)} ${endpoint(c.client.local)} ESTB`;
    const l6 = await child.run<Described>({ op: 'listen', id: 'L6', family: 6, address: '::1' });
    key.L6 = `tcp ${endpoint(l6.local)} :::* LSTN`;
    const c6 = await child.run<{ client: Described }>({
      op: 'connect',
      id: 'C6',
      to: 'L6',
      accept_as: 'A6',
      options: [[SOL_SOCKET, SO_LINGER, ['linger', 1, 0]]],
    });
    key.C6 = `tcp ${endpoint(c6.client.local)} ${endpoint(l6.local)} ESTB`;
    key.A6 = `tcp ${endpoint(l6.local)} ${endpoint(c6.client.local)} ESTB`;
    const u4 = await child.run<Described>({
      op: 'udp',
      id: 'U4',
      address: '127.0.0.1',
      options: [[SOL_SOCKET, SO_BROADCAST, 1]],
    });
    key.U4 = `udp ${endpoint(u4.local)} 0.0.0.0:* UNCONN`;
    const u6 = await child.run<Described>({
      op: 'udp',
      id: 'U6',
      family: 6,
      address: '::1',
      connect: ['::1', 9],
      options: [
        [SOL_SOCKET, SO_RCVBUF, 4096],
        [SOL_SOCKET, SO_SNDBUF, 8192],
      ],
    });
    key.U6 = `udp ${endpoint(u6.local)} ::1:9 ESTABLISHED`;
    const tw = await child.run<{ local: Address }>({ op: 'timewait', to: 'L4' });
    key.TW = `tcp ${endpoint(tw.local)} ${endpoint(l4.local)} TIMW`;
    ports = { L4: l4.local[1], L6: l6.local[1], U4: u4.local[1], C: c.client.local[1] };
    congestion = inNetns(child.pid, ['cat', '/proc/sys/net/ipv4/tcp_congestion_control']).trim();
  });
  afterAll(async () => {
    await child?.stop();
  });

  /** Runs knetstat with `args` in text and in JSON and checks both show exactly `ids`. */
  function expectRows(args: string[], ids: string[]): void {
    const expected = ids.map((id) => key[id] as string).sort();
    const json = child.knetstat(['--json', ...args]);
    expect(json.stderr).toBe('');
    expect(json.status).toBe(0);
    expect(jsonKeys(json.stdout)).toEqual(expected);
    const text = child.knetstat(args);
    expect(text.stderr).toBe('');
    expect(text.status).toBe(0);
    expect(textKeys(text.stdout)).toEqual(expected.map(asTextKey).sort());
  }

  it('shows every socket without a filter (the baseline the others narrow)', () => {
    expectRows([], ['L4', 'C', 'A', 'L6', 'C6', 'A6', 'U4', 'U6', 'TW']);
  });

  it('-l/--listening: TCP listeners and unconnected UDP sockets', () => {
    expectRows(['-l'], ['L4', 'L6', 'U4']);
    expectRows(['--listening'], ['L4', 'L6', 'U4']);
  });

  it('--state, one or repeated, any case, and connected', () => {
    expectRows(['--state', 'established'], ['C', 'A', 'C6', 'A6', 'U6']);
    expectRows(['--state', 'TIME_WAIT'], ['TW']);
    expectRows(['--state', 'listen', '--state', 'time_wait'], ['L4', 'L6', 'TW']);
    expectRows(['--state', 'unconn'], ['U4']);
    expectRows(['--state', 'connected'], ['C', 'A', 'C6', 'A6', 'U6']);
  });

  it('--port matches the local or the remote port', () => {
    expectRows(['--port', String(ports.L4)], ['L4', 'C', 'A', 'TW']);
    expectRows(['--port', String(ports.U4)], ['U4']);
    expectRows(
      ['--port', String(ports.L4), '--port', String(ports.L6)],
      ['L4', 'C', 'A', 'TW', 'L6', 'C6', 'A6'],
    );
  });

  it('--local: address, address:port, CIDR, IPv6 bare and in brackets, :port', () => {
    expectRows(['--local', `127.0.0.1:${ports.L4}`], ['L4', 'A']);
    expectRows(['--local', '127.0.0.0/8'], ['L4', 'C', 'A', 'U4', 'TW']);
    expectRows(['--local', '::1'], ['L6', 'C6', 'A6', 'U6']);
    expectRows(['--local', `[::1]:${ports.L6}`], ['L6', 'A6']);
    expectRows(['--local', `:${ports.L6}`], ['L6', 'A6']);
    expectRows(['--local', '10.0.0.0/8'], []);
  });

  it('--remote: address:port, CIDR, the * of an unconnected endpoint', () => {
    expectRows(['--remote', `127.0.0.1:${ports.L4}`], ['C', 'TW']);
    expectRows(['--remote', `[::1]:${ports.L6}`], ['C6']);
    expectRows(['--remote', '[::1]:9'], ['U6']);
    expectRows(['--remote', '0.0.0.0/0:*'], ['L4', 'U4']);
    expectRows(['--remote', '::/0'], ['L4', 'C', 'A', 'L6', 'C6', 'A6', 'U4', 'U6', 'TW']);
  });

  it('--pid and --command select the owner (TIME_WAIT has none)', () => {
    const owned = ['L4', 'C', 'A', 'L6', 'C6', 'A6', 'U4', 'U6'];
    expectRows(['--pid', String(child.pid)], owned);
    expectRows(['--pid', '1', '--pid', String(child.pid)], owned);
    expectRows(['--pid', '1'], []);
    expectRows(['--command', 'python3'], owned);
    expectRows(['--command', 'sshd'], []);
  });

  it('--option: NAME, =, !=, >, <, off and a name-valued option', () => {
    expectRows(['--option', 'SO_KEEPALIVE'], ['C']);
    expectRows(['--option', 'SO_KEEPALIVE=1'], ['C']);
    // The accepted socket inherits SO_REUSEADDR from its listener.
    expectRows(['--option', 'so_reuseaddr=1'], ['L4', 'A']);
    expectRows(['--option', 'SO_LINGER=0'], ['C6']);
    expectRows(['--option', 'SO_LINGER=off', '--state', 'established', 'tcp6'], ['A6']);
    expectRows(['--option', 'SO_BROADCAST!=0'], ['U4']);
    // SO_RCVBUF as the kernel reports it: twice the 4096 asked for.
    expectRows(['--option', 'SO_RCVBUF<10000'], ['U6']);
    expectRows(['--option', 'SO_RCVBUF=8192', '--option', 'SO_SNDBUF>16000'], ['U6']);
    expectRows(['--option', `TCP_CONGESTION=${congestion}`], ['L4', 'C', 'A', 'L6', 'C6', 'A6']);
    expectRows(['--option', `TCP_CONGESTION!=${congestion}`], []);
  });

  it('filters combine (AND) and keep working with positional tables', () => {
    expectRows(['--option', 'SO_KEEPALIVE=0', '--state', 'established'], ['A', 'C6', 'A6']);
    expectRows(['-l', '--local', '127.0.0.0/8'], ['L4', 'U4']);
    expectRows(['--port', String(ports.L4), '--state', 'established'], ['C', 'A']);
    expectRows(['--command', 'python3', '--remote', `127.0.0.1:${ports.L4}`], ['C']);
    expectRows(
      ['--pid', String(child.pid), '--state', 'established', '--option', 'SO_KEEPALIVE=0', 'tcp6'],
      ['C6', 'A6'],
    );
    expectRows(['--state', 'established', 'udp6'], ['U6']);
    expectRows(['-l', 'tcp', 'udp'], ['L4', 'U4']);
    expectRows(['--local', `127.0.0.1:${ports.C}`, '--option', 'SO_KEEPALIVE=0'], []);
  });

  it('an option filter reads the option it names even when the column does not show it', () => {
    const text = child.knetstat(['-o', 'TCP_NODELAY', '--option', 'SO_KEEPALIVE=1']);
    expect(text.status).toBe(0);
    expect(textKeys(text.stdout)).toEqual([key.C]);
    // The column still shows only what -o asked for.
    expect(text.stdout).toContain(' TCP_NODELAY=0');
    expect(text.stdout).not.toContain('SO_KEEPALIVE');
  });

  it('the JSON rows a filter keeps are whole: processes and every option', () => {
    const rows = JSON.parse(child.knetstat(['--json', '--option', 'SO_KEEPALIVE=1']).stdout) as JsonRow[];
    expect(rows.map(jsonKey)).toEqual([key.C]);
    const [row] = rows as [JsonRow];
    expect(row.processes.map((p) => p.pid)).toEqual([child.pid]);
    expect(row.options).toHaveProperty('TCP_CONGESTION', congestion);
  });
});

describe.skipIf(skip !== null)(`--diag on a stuck connection${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  beforeAll(async () => {
    child = await SocketChild.start();
  });
  afterAll(async () => {
    await child?.stop();
  });

  it('keeps exactly the rows whose Diag column is set', async () => {
    // A small receive buffer on the listener (inherited by the accepted side), which never
    // reads: the sender fills it, the receiver's window closes, and the sender sees it.
    await child.run({ op: 'listen', id: 'L', before_bind: [[SOL_SOCKET, SO_RCVBUF, 4096]] });
    const pair = await child.run<{ client: Described }>({ op: 'connect', id: 'D', to: 'L', accept_as: 'DA' });
    await child.run({ op: 'connect', id: 'Quiet', to: 'L', accept_as: 'QuietA' });
    await child.run({ op: 'fill', id: 'D' });
    const sender = `tcp ${endpoint(pair.client.local)} 127.0.0.1:${(await child.run<Described>({ op: 'info', id: 'L' })).local[1]} ESTB`;
    // The window closes as the kernel processes the data; wait for it, with no clock.
    let all: JsonRow[] = [];
    for (let attempt = 0; attempt < 50; attempt++) {
      all = JSON.parse(child.knetstat(['--json']).stdout) as JsonRow[];
      if (all.some((r) => jsonKey(r) === sender && r.diag !== '')) break;
    }
    const stuck = all.filter((r) => r.diag !== '' && r.diag !== null).map(jsonKey);
    expect(stuck).toContain(sender);
    const json = child.knetstat(['--json', '--diag']);
    expect(json.status).toBe(0);
    expect(jsonKeys(json.stdout)).toEqual([...stuck].sort());
    const text = child.knetstat(['--diag']);
    expect(textKeys(text.stdout)).toEqual([...stuck].sort());
    for (const line of text.stdout.split('\n').filter((l) => l.includes(' ESTB '))) {
      expect(line).toMatch(/ ESTB (>\||\|<|>\|<|>#) /);
    }
  });
});
