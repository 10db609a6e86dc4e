/**
 * The helper thread (dist/, as it only runs from built JavaScript) against the real
 * kernel: on sockets of this process with known options, the rows it reads come back
 * exactly as the main thread reads them, and nothing is left open.
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReadMode } from '../../src/options/helper-thread.js';
import { allocateJobs, type ReadJobs, SpecLists, specKey } from '../../src/options/jobs.js';
import type * as RowReaderModule from '../../src/options/row-reader.js';
import * as libc from '../../src/sys/libc.js';
import { ROOT } from '../helpers/netns.js';
import { intValue, SOCK_STREAM, SOL_TCP } from '../helpers/sockopt.js';

type HelperModule = typeof import('../../src/options/helper-thread.js');
type FdAccessModule = typeof import('../../src/options/fd-access.js');

const SOCKETS = 600;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('the helper thread', () => {
  let helperModule: HelperModule;
  let rows: typeof RowReaderModule;
  let access: FdAccessModule;
  const fds: number[] = [];
  let pidfd: number;
  let jobs: ReadJobs;
  const specs = new SpecLists(undefined);

  beforeAll(async () => {
    helperModule = (await import(`${ROOT}dist/options/helper-thread.js`)) as HelperModule;
    rows = (await import(`${ROOT}dist/options/row-reader.js`)) as typeof RowReaderModule;
    access = (await import(`${ROOT}dist/options/fd-access.js`)) as FdAccessModule;
    for (let i = 0; i < SOCKETS; i++) {
      const fd = libc.socket(libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
      fds.push(fd);
      if (i % 2) libc.setsockopt(fd, SOL_TCP, 1, intValue(1)); // TCP_NODELAY
      if (i % 3 === 0) libc.setsockopt(fd, libc.SOL_SOCKET, 9, intValue(1)); // SO_KEEPALIVE
      libc.setsockopt(fd, SOL_TCP, 4, intValue(100 + i)); // TCP_KEEPIDLE, different on each
    }
    pidfd = libc.pidfdOpen(process.pid);
    jobs = allocateJobs(SOCKETS, SOCKETS);
    for (const fd of fds) {
      const row = jobs.count++;
      jobs.key[row] = specKey('tcp', 4, false);
      jobs.inode[row] = libc.fstatSocketInode(fd);
      jobs.ownerPid[row] = process.pid;
      jobs.ownerPidfd[row] = pidfd;
      jobs.ownerFd[row] = fd;
      jobs.ownerStart[row + 1] = row + 1;
      jobs.valueStart[row + 1] = (jobs.valueStart[row] as number) + specs.get(jobs.key[row] as number).length;
    }
  });

  afterAll(() => {
    for (const fd of fds) libc.close(fd);
    if (pidfd !== undefined) libc.close(pidfd);
  });

  for (const ioUring of [true, false]) {
    it(`reads its share exactly as the main thread does (${ioUring ? 'io_uring' : 'plain system calls'})`, () => {
      const helper = helperModule.ReadHelper.shared();
      expect(helper, 'a helper runs from dist/ on a machine with two CPUs').not.toBeNull();
      if (!helper) return;
      expect(helper.waitUntilReady(10_000)).toBe(true);
      const fdsBefore = openFds();
      const mode: ReadMode = { only: null, ioUring };
      const main = new rows.RowReader(ioUring ? access.libcFdAccess : access.directFdAccess, specs);
      const byMain = new Map<number, unknown[]>();
      const byHelper = new Map<number, unknown[]>();
      let first = true;
      const leftOver = helper.share(
        jobs,
        mode,
        (start, end) => {
          // Give the helper time to claim chunks: on its own, a fast main thread may take all.
          if (first) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
          first = false;
          for (let row = start; row < end; row++) {
            expect(main.readRow(jobs, row), main.message).toBe(0);
            byMain.set(row, [...main.values]);
          }
        },
        (chunk) => {
          let next = 0;
          for (let row = chunk.start; row < chunk.end; row++) {
            expect(chunk.status[row - chunk.start], chunk.messages[row - chunk.start]).toBe(0);
            const length = (jobs.valueStart[row + 1] as number) - (jobs.valueStart[row] as number);
            byHelper.set(row, chunk.values.slice(next, next + length));
            next += length;
          }
        },
      );
      main.close();
      expect(leftOver).toEqual([]);
      expect(byHelper.size).toBeGreaterThan(0);
      expect(byMain.size + byHelper.size).toBe(SOCKETS);
      // The helper's rows read again here: the same values (SO_INCOMING_CPU aside, which may move).
      const check = new rows.RowReader(access.directFdAccess, specs);
      const names = specs.get(specKey('tcp', 4, false)).map((s) => s.name);
      const incomingCpu = names.indexOf('SO_INCOMING_CPU');
      for (const [row, values] of byHelper) {
        expect(check.readRow(jobs, row)).toBe(0);
        const expected: unknown[] = [...check.values];
        expected[incomingCpu] = values[incomingCpu];
        expect(values, `row ${row}`).toEqual(expected);
        expect(values[names.indexOf('TCP_KEEPIDLE')]).toBe(100 + row);
        expect(values[names.indexOf('TCP_NODELAY')]).toBe(row % 2);
        expect(values[names.indexOf('SO_KEEPALIVE')]).toBe(row % 3 === 0 ? 1 : 0);
      }
      check.close();
      // Every duplicate closed, by both threads (the rings of both are closed too).
      expect(openFds()).toBe(fdsBefore);
    });
  }
});
