/**
 * `-p/--processes`: the PID/Program column before Options, every owner of a shared
 * socket, `-` where none, and a process name that holds an escape sequence shown
 * escaped, never raw.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsUnavailableReason, SocketChild } from '../helpers/netns.js';
import type { JsonRow } from '../helpers/rows.js';

const skip = netnsUnavailableReason();

type Address = [string, number];

function rowOf(stdout: string, local: Address, state: string): string {
  const rows = stdout
    .split('\n')
    .filter((l) => l.includes(` ${local[0]}:${local[1]} `) && l.includes(` ${state} `));
  expect(rows).toHaveLength(1);
  return rows[0] as string;
}

describe.skipIf(skip !== null)(`-p/--processes${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  beforeAll(async () => {
    child = await SocketChild.start();
  });
  afterAll(async () => {
    await child?.stop();
  });

  it("shows the child's pid and command in a column before Options, and - for TIME_WAIT", async () => {
    const listener = await child.run<{ local: Address }>({ op: 'listen', id: 'L', options: [[1, 9, 1]] });
    const tw = await child.run<{ local: Address }>({ op: 'timewait', to: 'L' });
    const { stdout, stderr, status } = child.knetstat(['-p', 'tcp']);
    expect(stderr).toBe('');
    expect(status).toBe(0);
    const [header] = stdout.split('\n') as [string];
    expect(header).toMatch(/ Stat Diag PID\/Program +Options$/);
    const row = rowOf(stdout, listener.local, 'LSTN');
    // Same column as the header's, then the Options, still last.
    const column = header.indexOf('PID/Program');
    expect(row.slice(column)).toMatch(new RegExp(`^${child.pid}/python3 +SO_REUSEADDR=0,.*SO_KEEPALIVE=1`));
    expect(row.indexOf('SO_REUSEADDR')).toBe(header.indexOf('Options'));
    expect(rowOf(stdout, tw.local, 'TIMW').slice(column)).toBe('-');
    // Without -p, knetstat's format: no column at all.
    const plain = child.knetstat(['tcp']).stdout;
    expect(plain).not.toContain('PID/Program');
    expect(plain).not.toContain(`${child.pid}/python3`);
  });

  it('shows both processes of a socket shared after fork, in text and JSON', async () => {
    const shared = await child.run<{ local: Address; fd: number }>({ op: 'udp', id: 'Shared' });
    const forked = await child.run<{ pid: number }>({ op: 'fork', name: 'knetstat-peer' });
    try {
      const { stdout, status } = child.knetstat(['-p', 'udp']);
      expect(status).toBe(0);
      const row = rowOf(stdout, shared.local, '0.0.0.0:*');
      const owners = row
        .match(/ (\S+) +SO_REUSEADDR/)?.[1]
        ?.split(',')
        .sort();
      expect(owners).toEqual([`${child.pid}/python3`, `${forked.pid}/knetstat-peer`].sort());
      const rows = JSON.parse(child.knetstat(['--json', 'udp']).stdout) as JsonRow[];
      const jsonRow = rows.find((r) => r.local.port === shared.local[1]);
      expect(jsonRow?.processes.map((p) => `${p.pid}/${p.command}/${p.fd}`).sort()).toEqual(
        [`${child.pid}/python3/${shared.fd}`, `${forked.pid}/knetstat-peer/${shared.fd}`].sort(),
      );
      // --pid and --command find the socket through either owner.
      const byPeer = child.knetstat(['--json', '--command', 'knetstat-peer', 'udp']);
      expect((JSON.parse(byPeer.stdout) as JsonRow[]).map((r) => r.local.port)).toEqual([shared.local[1]]);
      const byPid = child.knetstat(['--json', '--pid', String(forked.pid), 'udp']);
      expect((JSON.parse(byPid.stdout) as JsonRow[]).map((r) => r.local.port)).toEqual([shared.local[1]]);
    } finally {
      await child.run({ op: 'unfork', pid: forked.pid });
    }
    const after = child.knetstat(['-p', 'udp']).stdout;
    expect(rowOf(after, shared.local, '0.0.0.0:*')).not.toContain(`${forked.pid}/`);
  });
});

describe.skipIf(skip !== null)(
  `a process name with an escape sequence${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let child: SocketChild;
    beforeAll(async () => {
      child = await SocketChild.start();
    });
    afterAll(async () => {
      await child?.stop();
    });

    it('is shown escaped in the text and as a JSON escape, never raw', async () => {
      const listener = await child.run<{ local: Address }>({ op: 'listen', id: 'L' });
      // ESC [ 3 1 m (red), a newline, a backslash and a comma: a name may be anything.
      const name = '\x1b[31mev\nil\\,x';
      await child.run({ op: 'rename', bytes: [...Buffer.from(name)] });
      const { stdout, status } = child.knetstat(['-p', 'tcp']);
      expect(status).toBe(0);
      expect(stdout).not.toContain('\x1b');
      const row = rowOf(stdout, listener.local, 'LSTN');
      expect(row).toContain(`${child.pid}/\\x1b[31mev\\x0ail\\\\\\x2cx `);
      // One row per socket: the newline in the name did not split it.
      expect(stdout.split('\n').filter((l) => l.includes('ev')).length).toBe(1);
      const json = child.knetstat(['--json', 'tcp']).stdout;
      expect(json).not.toContain('\x1b');
      const rows = JSON.parse(json) as JsonRow[];
      expect(rows.find((r) => r.local.port === listener.local[1])?.processes[0]?.command).toBe(name);
      // --command takes the real name.
      const found = child.knetstat(['--json', '--command', name, 'tcp']);
      expect((JSON.parse(found.stdout) as JsonRow[]).map((r) => r.local.port)).toEqual([listener.local[1]]);
    });
  },
);
