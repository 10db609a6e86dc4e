/**
 * Harmless to the inspected, each against a real child process: a pending SO_ERROR
 * survives; file status flags (O_NONBLOCK, O_APPEND) of blocking and non-blocking sockets
 * are unchanged; an owner closing a lingering socket while knetstat holds its duplicate
 * neither hangs knetstat nor disturbs the connection; the collecting process keeps no fd
 * and leaves none behind; and nothing is written anywhere (strace).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPTION_CATALOGUE } from '../../src/options/catalogue.js';
import type { JsonSocket as JsonRow } from '../../src/render/json.js';
import { runKnetstatAsync } from '../helpers/churn.js';
import { CLI, netnsUnavailableReason, ROOT, SocketChild } from '../helpers/netns.js';

const skip = netnsUnavailableReason();
const straceMissing = spawnSync('strace', ['-V']).status !== 0;

const SOL_SOCKET = 1;
const SO_ERROR = 4;
const SO_LINGER = 13;
const ECONNREFUSED = 111;
const O_APPEND = 0o2000;
const O_NONBLOCK = 0o4000;
/** The discard port: nothing listens on it in a fresh namespace, so a send draws ICMP port unreachable. */
const CLOSED_PORT = 9;

interface Info {
  fd: number;
  inode: number;
  flags: string;
  local: [string, number];
}

function rowsOf(stdout: string): JsonRow[] {
  return JSON.parse(stdout) as JsonRow[];
}

function fdLinks(pid: number | 'self'): string[] {
  const dir = `/proc/${pid}/fd`;
  return readdirSync(dir)
    .map((fd) => {
      try {
        return `${fd} -> ${readlinkSync(`${dir}/${fd}`)}`;
      } catch {
        return `${fd} -> ?`;
      }
    })
    .sort();
}

describe.skipIf(skip !== null)(`harmless to the inspected${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;

  beforeAll(async () => {
    child = await SocketChild.start();
    await child.run({ op: 'listen', id: 'L' });
  });

  afterAll(async () => {
    await child?.stop();
  });

  it('leaves a pending SO_ERROR for its owner to read', async () => {
    const getError = async (id: string) =>
      (await child.run<{ value: number }>({ op: 'getsockopt', id, level: SOL_SOCKET, name: SO_ERROR })).value;
    const refusedSocket = async (id: string) => {
      const info = await child.run<Info>({ op: 'udp', id, connect: ['127.0.0.1', CLOSED_PORT] });
      await child.run({ op: 'send', id, bytes: 1 });
      await new Promise((resolve) => setTimeout(resolve, 100)); // let the ICMP error land
      return info;
    };
    // The control: reading SO_ERROR clears it, so an inspector that read it would be caught.
    await refusedSocket('E0');
    expect(await getError('E0')).toBe(ECONNREFUSED);
    expect(await getError('E0')).toBe(0);

    const pending = await refusedSocket('E');
    const run = child.knetstat(['--json']);
    expect(run.status).toBe(0);
    // knetstat did duplicate it and read its options ...
    expect(rowsOf(run.stdout).find((r) => r.inode === pending.inode)?.options).not.toBeNull();
    // ... and the error is still there for the owner.
    expect(await getError('E')).toBe(ECONNREFUSED);
  });

  it('leaves the file status flags of blocking and non-blocking sockets as they were', async () => {
    await child.run({ op: 'connect', id: 'B', to: 'L', accept_as: 'BS' });
    await child.run({ op: 'connect', id: 'N', to: 'L', accept_as: 'NS' });
    await child.run({ op: 'setfl', id: 'N', flags: O_NONBLOCK | O_APPEND });
    await child.run({ op: 'setfl', id: 'NS', flags: O_NONBLOCK });
    const ids = ['B', 'BS', 'N', 'NS'];
    // One command at a time: the child answers in order on one stream.
    const infos = async () => {
      const out: Info[] = [];
      for (const id of ids) out.push(await child.run<Info>({ op: 'info', id }));
      return out;
    };
    const before = await infos();
    const flag = (info: Info | undefined, bit: number) =>
      (Number.parseInt(info?.flags ?? '0', 8) & bit) !== 0;
    // Both kinds are really present.
    expect(before.map((i) => flag(i, O_NONBLOCK))).toEqual([false, false, true, true]);
    expect(flag(before[2], O_APPEND)).toBe(true);

    for (const args of [['--json'], ['-o', 'all'], ['--json']]) {
      const run = child.knetstat(args);
      expect(run.status).toBe(0);
      if (args[0] === '--json') {
        const rows = rowsOf(run.stdout);
        for (const info of before) expect(rows.find((r) => r.inode === info.inode)?.options).not.toBeNull();
      }
    }
    expect(await infos()).toEqual(before);
  });

  it('keeps no fd after a collection and leaves none in the inspected process', () => {
    // collectSockets in a process of its own inside the namespace; a warm-up collection
    // first, so that whatever Node opens lazily once is not counted.
    const script = `
      import { readdirSync, readlinkSync } from 'node:fs';
      const { collectSockets } = await import(${JSON.stringify(`${ROOT}dist/index.js`)});
      const fds = () => readdirSync('/proc/self/fd').map((fd) => {
        try { return fd + ' -> ' + readlinkSync('/proc/self/fd/' + fd); } catch { return fd + ' -> ?'; }
      }).sort();
      collectSockets();
      const before = fds();
      let read = 0;
      for (let i = 0; i < 3; i++) read += collectSockets().sockets.filter((s) => s.options).length;
      collectSockets({ options: new Set(['SO_LINGER']) });
      collectSockets({ source: 'proc' });
      console.log(JSON.stringify({ before, after: fds(), read }));
    `;
    const childBefore = fdLinks(child.pid);
    const result = spawnSync(
      'nsenter',
      ['-t', String(child.pid), '-n', process.execPath, '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    expect(result.stderr).toBe('');
    const { before, after, read } = JSON.parse(result.stdout) as {
      before: string[];
      after: string[];
      read: number;
    };
    expect(read).toBeGreaterThan(0);
    // The same fds (stdio, Node's own), none of them a pidfd.
    expect(after).toEqual(before);
    expect(after.filter((l) => l.includes('pidfd'))).toEqual([]);
    expect(fdLinks(child.pid)).toEqual(childBefore);
  });

  describe.skipIf(straceMissing)('under strace', () => {
    let directory: string;
    beforeAll(() => {
      directory = mkdtempSync(join(tmpdir(), 'knetstat-strace-'));
    });
    afterAll(() => {
      rmSync(directory, { recursive: true, force: true });
    });

    const CALLS = [
      'open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir',
      'link,linkat,symlink,symlinkat,truncate,ftruncate,chmod,fchmod,fchmodat,chown,fchown,fchownat,lchown',
      'utimensat,mknod,mknodat,setxattr,fsetxattr,lsetxattr,removexattr,fremovexattr,lremovexattr',
      'write,pwrite64,writev,pwritev,pwritev2,sendfile,splice,copy_file_range',
      'sendto,sendmsg,sendmmsg,setsockopt,getsockopt,shutdown,ioctl,fcntl,dup2,dup3,connect,bind',
    ].join(',');

    /** Lines of an strace -f -yy log (unfinished calls keep their arguments on the first line). */
    function trace(args: string[]): string[] {
      const log = join(directory, `trace-${args.join('_').replace(/\W/g, '')}.txt`);
      const run = spawnSync(
        'nsenter',
        [
          '-t',
          String(child.pid),
          '-n',
          'strace',
          '-f',
          '-yy',
          '-qq',
          '-s',
          '0',
          '-o',
          log,
          '-e',
          `trace=${CALLS}`,
          process.execPath,
          CLI,
          ...args,
        ],
        { encoding: 'utf8' },
      );
      expect(run.status).toBe(0);
      return readFileSync(log, 'utf8').split('\n').filter(Boolean);
    }

    const allowedOptions = new Set(OPTION_CATALOGUE.map((o) => o.name));
    // strace's names for the catalogue's entries where they differ from the C name we use.
    for (const alias of ['SO_RCVTIMEO_NEW', 'SO_SNDTIMEO_NEW', 'SO_TIMESTAMP_OLD', 'SO_TIMESTAMPNS_OLD']) {
      allowedOptions.add(alias);
    }
    allowedOptions.add('SO_TIMESTAMPING_OLD');
    // The identity check: the cookie the sock_diag dump already assigned and reported.
    // (Where io_uring is allowed, SOL_SOCKET reads travel in io_uring_enter and do not
    // show here; reader.test.ts holds the ring to the same list.)
    allowedOptions.add('SO_COOKIE');
    const INET = /<(TCP|UDP|TCPv6|UDPv6):/;

    for (const args of [['--json'], ['-p', '-o', 'all']]) {
      it(`knetstat ${args.join(' ')}: opens nothing for writing, writes only stdout/stderr, touches inspected sockets only with catalogue getsockopt calls`, () => {
        const lines = trace(args);
        const problems: string[] = [];
        let inspected = 0;
        for (const line of lines) {
          const call = /^\d+ +(\w+)\(/.exec(line)?.[1];
          if (!call) continue; // "<... resumed>" and exit lines
          if (call === 'open' || call === 'openat' || call === 'openat2' || call === 'creat') {
            if (call === 'creat' || /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/.test(line))
              problems.push(line);
          } else if (/^(write|pwrite64|writev|pwritev2?|sendfile|splice|copy_file_range)$/.test(call)) {
            // stdout, stderr, and Node's own wake-up eventfd and signal pipe.
            const fd = /\((\d+)/.exec(line)?.[1];
            const internal = /\(\d+<(pipe:\[\d+\]|anon_inode:\[eventfd\])>,/.test(line);
            if (fd !== '1' && fd !== '2' && !internal) problems.push(line);
          } else if (call === 'sendto' || call === 'sendmsg' || call === 'sendmmsg' || call === 'bind') {
            if (!/\(\d+<NETLINK:/.test(line)) problems.push(line);
          } else if (call === 'getsockopt') {
            if (!INET.test(line)) continue;
            inspected++;
            const name = /, SOL_\w+, (\w+),/.exec(line)?.[1] ?? '?';
            if (!allowedOptions.has(name)) problems.push(line);
          } else if (call === 'fcntl' || call === 'ioctl') {
            if (INET.test(line)) problems.push(line);
          } else if (call === 'setsockopt') {
            if (!/\(\d+<NETLINK:/.test(line)) problems.push(line);
          } else {
            problems.push(line); // every other call in the list changes something
          }
        }
        expect(problems).toEqual([]);
        // The trace did see the inspection: getsockopt on the child's sockets.
        expect(inspected).toBeGreaterThan(0);
      });
    }
  });
});

describe.skipIf(skip !== null || straceMissing)(
  `an owner closing a lingering socket while knetstat holds its duplicate${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let child: SocketChild;
    beforeAll(async () => {
      child = await SocketChild.start();
      await child.run({ op: 'listen', id: 'L' });
    });
    afterAll(async () => {
      await child?.stop();
    });

    /**
     * The pid strace started knetstat as: the child of the nsenter-then-strace process
     * that runs node (strace forks short-lived helpers of its own first).
     */
    async function knetstatPid(tracer: number): Promise<number> {
      for (;;) {
        let children: string[] = [];
        try {
          children = readFileSync(`/proc/${tracer}/task/${tracer}/children`, 'utf8').trim().split(' ');
        } catch {
          // not started yet
        }
        for (const pid of children) {
          try {
            if (pid && readlinkSync(`/proc/${pid}/exe`) === process.execPath) return Number(pid);
          } catch {
            // a helper that already exited
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }

    /** Waits until `pid` holds a descriptor of the socket; false if it exited first. */
    async function whenHeld(pid: number, inode: number): Promise<boolean> {
      const link = `socket:[${inode}]`;
      for (;;) {
        let links: string[];
        try {
          links = fdLinks(pid);
        } catch {
          return false;
        }
        if (links.some((l) => l.endsWith(link))) return true;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }

    for (const peer of ['reading', 'reading only after knetstat exits'] as const) {
      it(`knetstat exits, the owner's close returns, the peer gets every byte and a FIN (peer ${peer})`, async () => {
        const id = peer === 'reading' ? 'A' : 'B';
        const pair = await child.run<{ client: Info; server: Info }>({
          op: 'connect',
          id,
          to: 'L',
          accept_as: `${id}S`,
          options: [[SOL_SOCKET, SO_LINGER, ['linger', 1, 5]]],
        });
        // Unsent data: the peer does not read yet, so the send buffer stays full.
        const { sent } = await child.run<{ sent: number }>({ op: 'fill', id });
        expect(sent).toBeGreaterThan(0);

        // Every getsockopt and io_uring_enter (which carries the SOL_SOCKET reads and the
        // close where io_uring is allowed) waits 1 s, which keeps each duplicate open long
        // enough for the owner to close its own fd meanwhile: knetstat's close is then the
        // last one, the one that lingers.
        const tracer = spawn(
          'nsenter',
          [
            '-t',
            String(child.pid),
            '-n',
            'strace',
            '-f',
            '-qq',
            '-o',
            '/dev/null',
            '-e',
            'trace=getsockopt,io_uring_enter',
            '-e',
            'inject=getsockopt,io_uring_enter:delay_enter=1000000',
            process.execPath,
            CLI,
            '-o',
            'SO_LINGER',
            'tcp',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000, killSignal: 'SIGKILL' },
        );
        let stdout = '';
        tracer.stdout.setEncoding('utf8').on('data', (c: string) => {
          stdout += c;
        });
        const exited = new Promise<{ status: number | null; signal: string | null }>((resolve) =>
          tracer.once('close', (status, signal) => resolve({ status, signal })),
        );
        const inspector = await knetstatPid(tracer.pid as number);
        expect(await whenHeld(inspector, pair.client.inode)).toBe(true);

        if (peer === 'reading') await child.run({ op: 'drain_start', id: `${id}S` });
        // The owner closes while knetstat holds the duplicate: close must simply return.
        expect(await child.run({ op: 'close', id })).toEqual({ closed: id });

        const result = await exited;
        expect(result).toEqual({ status: 0, signal: null });
        expect(stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:${pair.client.local[1]} .*SO_LINGER=5$`, 'm'));

        if (peer !== 'reading') await child.run({ op: 'drain_start', id: `${id}S` });
        expect(await child.run({ op: 'drain_result', id: `${id}S` })).toEqual({ ended: 'eof', bytes: sent });
      });
    }

    it('a later collection of the same namespace still exits 0', async () => {
      const run = await runKnetstatAsync(child.pid, ['--json']);
      expect(run.status).toBe(0);
    });
  },
);
