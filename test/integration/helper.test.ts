/**
 * The helper process: collecting with it gives what collecting without it gives — the
 * same sockets, owners and options — and a helper that cannot start, says nothing
 * sensible, or fails half-way only costs time: this process does its share and says so.
 */

import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HelperProcess } from '../../src/helper/parent.js';
import { PROTOCOL_FINGERPRINT, readMessage, writeMessage } from '../../src/helper/protocol.js';
import * as libc from '../../src/sys/libc.js';
import { netnsUnavailableReason, ROOT, SocketChild } from '../helpers/netns.js';
import { essentials } from '../helpers/records.js';

const skip = netnsUnavailableReason();

const SOL_SOCKET = 1;
const SOL_TCP = 6;

const FAKE = `${ROOT}test/helpers/fake-helper.mjs`;

/** Whether process `pid` is gone: reaped, or a zombie its parent has yet to reap. */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

describe.skipIf(skip !== null)(`the helper process${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let first: SocketChild;
  let second: SocketChild;
  let alone: ReturnType<typeof essentials>;

  beforeAll(async () => {
    first = await SocketChild.start();
    // A second owner in the same namespace: sockets of two processes, whose rows fall on
    // both sides of the split between this process and the helper.
    second = await SocketChild.start({ netnsOf: first.pid });
    await first.run({
      op: 'listen',
      id: 'L',
      options: [
        [SOL_SOCKET, 2, 1], // SO_REUSEADDR
        [SOL_TCP, 9, 5], // TCP_DEFER_ACCEPT
      ],
    });
    await first.run({
      op: 'connect',
      id: 'C',
      to: 'L',
      accept_as: 'A',
      options: [
        [SOL_SOCKET, 9, 1], // SO_KEEPALIVE
        [SOL_TCP, 4, 77], // TCP_KEEPIDLE
      ],
      accept_options: [[SOL_TCP, 1, 1]], // TCP_NODELAY
    });
    await first.run({ op: 'listen_many', count: 40, prefix: 'm' });
    await second.run({ op: 'listen', id: 'L6', family: 6, address: '::1', options: [[SOL_SOCKET, 15, 1]] });
    await second.run({ op: 'udp', id: 'U', options: [[SOL_SOCKET, 6, 1]] }); // SO_BROADCAST
    await second.run({ op: 'listen_many', count: 40, prefix: 'n' });
    const collection = first.collect({ parallel: 'off' });
    expect(collection.helper).toBe('none');
    alone = essentials(collection);
  });

  afterAll(async () => {
    await second?.stop();
    await first?.stop();
  });

  it('finds the same sockets, owners and options as one process does', () => {
    const collection = first.collect({ parallel: 'on' });
    expect(collection.helper).toBe('used');
    expect(collection.warnings.filter((w) => w.includes('helper'))).toEqual([]);
    expect(essentials(collection)).toEqual(alone);
    // Both processes' sockets are there, read.
    const pids = new Set(collection.sockets.flatMap((s) => s.processes.map((p) => p.pid)));
    expect(pids).toEqual(new Set([first.pid, second.pid]));
    expect(collection.sockets.filter((s) => s.state === 'LISTEN').every((s) => s.options !== null)).toBe(
      true,
    );
  });

  it('reads only the options asked for there too', () => {
    const only = ['SO_REUSEADDR', 'TCP_KEEPIDLE'];
    const parallel = first.collect({ parallel: 'on', options: only });
    const single = first.collect({ parallel: 'off', options: only });
    expect(parallel.helper).toBe('used');
    expect(essentials(parallel)).toEqual(essentials(single));
    for (const s of parallel.sockets)
      if (s.options) expect(Object.keys(s.options).every((name) => only.includes(name))).toBe(true);
  });

  const failures: Array<[string, string[], RegExp]> = [
    [
      'cannot start',
      ['/nonexistent/knetstat-helper'],
      /helper process failed \(could not start \/nonexistent/,
    ],
    ['exits at once', [process.execPath, '-e', 'process.exit(3)'], /helper ended without answering/],
    [
      'answers bytes that do not decode',
      [process.execPath, '-e', "require('fs').writeSync(4, Buffer.from([3,0,0,0,0xff,0x0f,0x6f]))"],
      /did not decode/,
    ],
    ['ends before reading its rows', [process.execPath, FAKE, 'exit'], /ended without answering/],
    ['says it could not read its rows', [process.execPath, FAKE, 'error'], /EMFILE/],
    ['answers half a frame', [process.execPath, FAKE, 'short'], /ended inside a frame/],
    ['answers an outcome nobody knows', [process.execPath, FAKE, 'status'], /unknown outcome 99/],
    ['names an owner it was not asked about', [process.execPath, FAKE, 'stranger'], /not asked about/],
    ['answers pids that are not numbers', [process.execPath, FAKE, 'strings'], /a bad pid or fd list/],
    [
      'answers fewer values than a row has options',
      [process.execPath, FAKE, 'narrow'],
      /1 values for a row of/,
    ],
  ];
  it.each(failures)('when it %s, this process does its share and says so', (_what, command, why) => {
    const collection = first.collect({ parallel: 'on', helperCommand: command });
    expect(collection.helper).toBe('failed');
    const warnings = collection.warnings.filter((w) => w.includes('helper process failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(why);
    expect(essentials(collection)).toEqual(alone);
  });

  const stalls: Array<[string, string, string, RegExp]> = [
    [
      'never reads its requests',
      'deaf',
      'none',
      /did not answer for its processes in [0-9.]+ s, and was stopped/,
    ],
    ['stops itself (SIGSTOP) at the scan', 'stop', 'scan', /did not answer for its processes in [0-9.]+ s/],
    [
      'never answers for its rows',
      'silent',
      'read',
      /did not answer for its rows in [0-9.]+ s, and was stopped/,
    ],
  ];
  it.each(stalls)(
    'when it %s, this process stops waiting, kills it and does its share',
    async (_what, mode, stalledAt, why) => {
      const directory = mkdtempSync(join(tmpdir(), 'knetstat-helper-'));
      try {
        const pidFile = join(directory, 'pid');
        const collection = first.collect({
          parallel: 'on',
          helperCommand: [process.execPath, FAKE, mode, pidFile],
          helperPatienceMs: 1500,
        });
        expect(collection.helper).toBe('failed');
        const warnings = collection.warnings.filter((w) => w.includes('helper process failed'));
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(why);
        expect(essentials(collection)).toEqual(alone);
        // It stalled where this case means it to, rather than being too slow to start.
        expect(readFileSync(`${pidFile}.stalled`, 'utf8')).toBe(stalledAt);
        // It was killed: no stopped or sleeping helper is left behind.
        const pid = Number(readFileSync(pidFile, 'utf8'));
        await expect.poll(() => gone(pid), { timeout: 10_000 }).toBe(true);
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    },
  );
});

describe('the helper process and its parent', () => {
  it('refuses requests from another build of knetstat', () => {
    const [requestRead, requestWrite] = libc.pipe();
    const [replyRead, replyWrite] = libc.pipe();
    try {
      // The request waits in the pipe; the helper answers it, then ends with an error.
      writeMessage(requestWrite, {
        type: 'scan',
        fingerprint: '0123456789abcdef',
        procRoot: '/proc',
        pids: Int32Array.of(process.pid),
        wanted: Uint32Array.of(),
      });
      closeSync(requestWrite);
      const child = spawnSync(process.execPath, [`${ROOT}dist/helper/child.js`], {
        stdio: ['ignore', 'ignore', 'ignore', requestRead, replyWrite],
        timeout: 30_000,
      });
      expect(child.status).toBe(1);
      closeSync(replyWrite);
      const reply = readMessage(replyRead) as { type: string; message: string };
      expect(reply.type).toBe('error');
      expect(reply.message).toMatch(
        /another build than knetstat \(protocol 0123456789abcdef, helper [0-9a-f]{16}\)/,
      );
      expect(reply.message).toContain(PROTOCOL_FINGERPRINT);
    } finally {
      for (const fd of [requestRead, replyRead]) closeSync(fd);
    }
  });

  it('gives up on a helper that does not take a request larger than the pipe, and kills it', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'knetstat-helper-'));
    const pidFile = join(directory, 'pid');
    const helper = HelperProcess.start([process.execPath, FAKE, 'deaf', pidFile], 300);
    try {
      // Running, and deaf from now on.
      await expect.poll(() => existsSync(`${pidFile}.stalled`), { timeout: 30_000 }).toBe(true);
      const pid = Number(readFileSync(pidFile, 'utf8'));
      // 4 bytes an inode: more than the 1 MiB the request pipe holds.
      const wanted = Array.from({ length: 400_000 }, (_, i) => i + 1);
      expect(() => helper.requestScan('/proc', [process.pid], wanted)).toThrow(
        /did not take its request for its processes in [0-9.]+ s, and was stopped/,
      );
      await expect.poll(() => gone(pid), { timeout: 10_000 }).toBe(true);
    } finally {
      helper.close();
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('refuses inode numbers that a 32-bit column would cut', () => {
    const helper = HelperProcess.start([process.execPath, FAKE, 'exit'], 300);
    try {
      expect(() => helper.requestScan('/proc', [process.pid], [2 ** 32 + 5])).toThrow(/not 32 bits/);
    } finally {
      helper.close();
    }
  });

  it('keeps working through the SIGINT, SIGTERM and SIGHUP a terminal sends the whole group', () => {
    const sockets: number[] = [];
    // Patient: this is about signals, not about how fast Node starts on a loaded host.
    const helper = HelperProcess.start(undefined, 60_000);
    try {
      // A socket of this process, for the helper to find.
      const socket = libc.socket(libc.AF_UNIX, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC, 0);
      sockets.push(socket);
      const inode = libc.fstatInode(socket);
      // A first answer shows it is serving, its handlers in place.
      helper.requestScan('/proc', [process.pid], [inode]);
      const first = helper.receiveScan([process.pid]);
      expect([...first.inode]).toEqual([inode]);
      expect([...first.pid]).toEqual([process.pid]);
      expect([...first.fd]).toEqual([socket]);
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
        process.kill(helper.pid as number, signal);
      helper.requestScan('/proc', [process.pid], [inode]);
      expect([...helper.receiveScan([process.pid]).inode]).toEqual([inode]);
    } finally {
      helper.close();
      for (const fd of sockets) libc.close(fd);
    }
  });
});
