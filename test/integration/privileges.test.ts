/**
 * Least privilege. knetstat needs two capabilities for the full output, and no others:
 *   CAP_DAC_READ_SEARCH  to list another user's /proc/PID/fd (a mode 0500 directory that
 *                        the kernel checks like any other; the ptrace check only guards
 *                        the links inside, and the path walk needs the directory first),
 *   CAP_SYS_PTRACE       to read those links and to pidfd_getfd the sockets.
 * sock_diag itself needs nothing (INET_DIAG_MARK and INET_DIAG_CLASS_ID would need
 * CAP_NET_ADMIN, and knetstat does not ask for them; SO_MARK comes from getsockopt).
 * Each test runs knetstat as uid 65534 in the test's network namespace (nsenter first,
 * as root, then setpriv drops to the user) and compares with a run as root.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonSocket as JsonRow } from '../../src/render/json.js';
import { CLI, netnsUnavailableReason, ROOT, SocketChild } from '../helpers/netns.js';

const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
/** A PATH that finds a python3 any user may run (not, say, root's pyenv shims). */
const SYSTEM_PATH = ['env', 'PATH=/usr/local/bin:/usr/bin:/bin'];
const withCaps = (caps: string[]) => {
  const list = caps.map((c) => `+${c}`).join(',');
  return [...NOBODY, `--inh-caps=${list}`, `--ambient-caps=${list}`];
};
const FULL = ['sys_ptrace', 'dac_read_search'];

/** Why uid 65534 cannot run knetstat and the fixture from this checkout, or null. */
function nobodyUnavailableReason(): string | null {
  const cli = spawnSync(NOBODY[0] as string, [...NOBODY.slice(1), process.execPath, CLI, '--version']);
  if (cli.status !== 0) {
    return `uid 65534 cannot run ${CLI} (is every directory above ${ROOT} traversable?): ${cli.stderr.toString().trim()}`;
  }
  const fixture = spawnSync(NOBODY[0] as string, [
    ...NOBODY.slice(1),
    ...SYSTEM_PATH,
    'python3',
    '-c',
    `open(${JSON.stringify(`${ROOT}test/helpers/socket_child.py`)}).read()`,
  ]);
  if (fixture.status !== 0) {
    return `uid 65534 cannot run python3 on test/helpers/socket_child.py: ${fixture.stderr.toString().trim()}`;
  }
  return null;
}

const skip = netnsUnavailableReason() ?? nobodyUnavailableReason();

const SOL_SOCKET = 1;
const SOL_TCP = 6;
const SO_KEEPALIVE = 9;
const SO_MARK = 36;
const SO_RCVBUF = 8;
const TCP_USER_TIMEOUT = 18;
const TCP_NODELAY = 1;

const HINT = /^knetstat: options unknown for \d+ sockets?: .*run as root or grant CAP_SYS_PTRACE/;

describe.skipIf(skip !== null)(`least privilege${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let owner: SocketChild; // root
  let nobody: SocketChild; // uid 65534, same namespace
  let rootRows: JsonRow[];
  const rootInodes = new Set<number>();
  const nobodyInodes = new Set<number>();

  const run = (wrap: string[]) => {
    const result = owner.knetstat(['--json'], { wrap });
    return { ...result, rows: result.status === 0 ? (JSON.parse(result.stdout) as JsonRow[]) : [] };
  };

  beforeAll(async () => {
    owner = await SocketChild.start();
    const listener = await owner.run<{ inode: number }>({
      op: 'listen',
      id: 'L',
      before_bind: [[SOL_SOCKET, SO_RCVBUF, 65536]],
      options: [
        [SOL_SOCKET, SO_KEEPALIVE, 1],
        [SOL_SOCKET, SO_MARK, 42],
        [SOL_TCP, TCP_USER_TIMEOUT, 1234],
      ],
    });
    rootInodes.add(listener.inode);
    const pair = await owner.run<{ client: { inode: number }; server: { inode: number } }>({
      op: 'connect',
      id: 'C',
      to: 'L',
      accept_as: 'A',
      options: [[SOL_TCP, TCP_NODELAY, 1]],
    });
    rootInodes.add(pair.client.inode).add(pair.server.inode);
    rootInodes.add(
      (await owner.run<{ inode: number }>({ op: 'udp', id: 'U', options: [[SOL_SOCKET, SO_MARK, 7]] })).inode,
    );

    nobody = await SocketChild.start({
      sharedNetns: true,
      wrap: ['nsenter', '-t', String(owner.pid), '-n', ...NOBODY, ...SYSTEM_PATH],
    });
    nobodyInodes.add(
      (
        await nobody.run<{ inode: number }>({
          op: 'listen',
          id: 'NL',
          options: [
            [SOL_SOCKET, SO_KEEPALIVE, 1],
            [SOL_TCP, TCP_USER_TIMEOUT, 4321],
          ],
        })
      ).inode,
    );
    nobodyInodes.add((await nobody.run<{ inode: number }>({ op: 'udp', id: 'NU' })).inode);

    const asRoot = run([]);
    expect(asRoot.status).toBe(0);
    expect(asRoot.stderr).toBe('');
    rootRows = asRoot.rows;
  });

  afterAll(async () => {
    await nobody?.stop();
    await owner?.stop();
  });

  it('the fixture is what the tests assume: root and uid 65534 own sockets, root reads all', () => {
    expect(execFileSync('stat', ['-c', '%u', `/proc/${nobody.pid}`], { encoding: 'utf8' }).trim()).toBe(
      '65534',
    );
    for (const inode of [...rootInodes, ...nobodyInodes]) {
      expect(rootRows.find((r) => r.inode === inode)?.options).not.toBeNull();
    }
    const listener = rootRows.find((r) => rootInodes.has(r.inode) && r.state === 'LISTEN');
    expect(listener?.options).toMatchObject({ SO_KEEPALIVE: 1, SO_MARK: 42, TCP_USER_TIMEOUT: 1234 });
  });

  it('uid 65534 with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (ambient) gets exactly what root gets', () => {
    const capable = run(withCaps(FULL));
    expect(capable.status).toBe(0);
    expect(capable.stderr).toBe('');
    expect(capable.rows).toEqual(rootRows);
    // SO_MARK is a getsockopt read: no CAP_NET_ADMIN involved.
    expect(capable.rows.find((r) => r.inode === [...rootInodes][0])?.options?.SO_MARK).toBe(42);
  });

  describe('the same two capabilities as file capabilities on a copy of node', () => {
    let directory: string;
    let node: string;
    let setcapFailure: string | null = null;
    beforeAll(() => {
      directory = mkdtempSync(join(tmpdir(), 'knetstat-setcap-'));
      chmodSync(directory, 0o755);
      node = join(directory, 'node');
      copyFileSync(process.execPath, node);
      chmodSync(node, 0o755);
      const setcap = spawnSync('setcap', ['cap_sys_ptrace,cap_dac_read_search+ep', node], {
        encoding: 'utf8',
      });
      if (setcap.status !== 0) setcapFailure = `setcap failed: ${setcap.stderr ?? setcap.error}`;
    });
    afterAll(() => {
      rmSync(directory, { recursive: true, force: true });
    });

    it('gets exactly what root gets', (context) => {
      if (setcapFailure) context.skip(setcapFailure);
      const result = spawnSync('nsenter', ['-t', String(owner.pid), '-n', ...NOBODY, node, CLI, '--json'], {
        encoding: 'utf8',
      });
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual(rootRows);
    });
  });

  for (const caps of [['sys_ptrace'], ['dac_read_search'], []]) {
    const label = caps.length ? `only CAP_${caps[0]?.toUpperCase()}` : 'no capability';
    it(`with ${label}: the same socket list, options of its own user's sockets, the rest unknown and why, one hint`, () => {
      const limited = run(caps.length ? withCaps(caps) : NOBODY);
      expect(limited.status).toBe(0);
      const identity = (r: JsonRow) => [r.protocol, r.state, r.local, r.remote, r.inode];
      expect(limited.rows.map(identity)).toEqual(rootRows.map(identity));
      for (const row of limited.rows) {
        const asRoot = rootRows.find((r) => r.inode === row.inode);
        if (nobodyInodes.has(row.inode)) {
          expect(row.processes).toEqual(asRoot?.processes);
          expect(row.options).toEqual(asRoot?.options);
        } else if (rootInodes.has(row.inode)) {
          expect(row.options).toBeNull();
          expect(row.optionsError).toMatch(/./);
        }
      }
      const lines = limited.stderr.split('\n').filter(Boolean);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^knetstat: options unknown for \d+ sockets?: /);
      // The hint names both capabilities wherever one of them is missing.
      expect(lines[0]).toMatch(HINT);
      expect(lines[0]).toContain('CAP_DAC_READ_SEARCH');
    });
  }

  it('the text output as a plain user shows the marker for the sockets it may not read', () => {
    const limited = owner.knetstat(['tcp'], { wrap: NOBODY });
    expect(limited.status).toBe(0);
    const rows = limited.stdout.split('\n').slice(1).filter(Boolean);
    expect(rows.some((r) => r.endsWith('[no owner]'))).toBe(true);
    expect(rows.some((r) => r.includes('SO_KEEPALIVE=1'))).toBe(true); // its own listener
  });
});
