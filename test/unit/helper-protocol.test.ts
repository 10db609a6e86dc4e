/**
 * The helper process's frames over real pipes: whole messages, messages that arrive in
 * pieces, and the ways a frame can be broken (cut short, a length nobody sends, bytes
 * that do not decode); option values through their columns; the weights that cut work.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, mkdtempSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cutByWeight, socketsInUse } from '../../src/helper/parent.js';
import {
  allocateValueColumns,
  BrokenFrameError,
  BUILD_ID,
  DeadlineError,
  encodeFrame,
  expectType,
  fingerprintOf,
  HelperFailedError,
  loadValues,
  MAX_FRAME_SIZE,
  PROTOCOL_FINGERPRINT,
  readMessage,
  type ScanReply,
  storeValues,
  writeMessage,
} from '../../src/helper/protocol.js';
import type { OptionValue } from '../../src/model.js';
import { optionsNeeded } from '../../src/options/display.js';
import { allocateJobs, plainCallsPerSocket, sliceJobs } from '../../src/options/jobs.js';
import * as libc from '../../src/sys/libc.js';

const open: number[] = [];

function pipe(): [number, number] {
  const fds = libc.pipe();
  open.push(...fds);
  return fds;
}

function closeOne(fd: number): void {
  closeSync(fd);
  open.splice(open.indexOf(fd), 1);
}

afterEach(() => {
  for (const fd of open.splice(0)) closeSync(fd);
});

const scanReply: ScanReply = {
  type: 'scanned',
  pid: Int32Array.of(10, 10, 42),
  fd: Int32Array.of(3, 7, 4),
  inode: Float64Array.of(1001, 1002, 2 ** 40),
  commandPid: Int32Array.of(10, 42),
  commands: ['nginx', 'sshd: \u00e9'],
  unreadableProcesses: 2,
};

describe('frames', () => {
  it('carries a message whole, typed arrays included, and then reports the end', () => {
    const [read, write] = pipe();
    writeMessage(write, scanReply);
    writeMessage(write, { type: 'error', message: 'second' });
    closeOne(write);
    expect(readMessage(read)).toEqual(scanReply);
    expect(readMessage(read)).toEqual({ type: 'error', message: 'second' });
    expect(readMessage(read)).toBeNull();
  });

  it('reassembles a frame that another process writes in pieces', () => {
    const [read, write] = pipe();
    const frame = encodeFrame(scanReply);
    // Header split in two, then the body in two, with pauses between the writes.
    const script = `
      const fs = require('node:fs');
      const frame = Buffer.from(process.argv[1], 'hex');
      const cuts = [2, 4, frame.length >> 1, frame.length];
      let at = 0;
      for (const cut of cuts) {
        fs.writeSync(3, frame, at, cut - at);
        at = cut;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30);
      }`;
    const writer = spawnSync(process.execPath, ['-e', script, frame.toString('hex')], {
      stdio: ['ignore', 'inherit', 'inherit', write],
    });
    expect(writer.status).toBe(0);
    closeOne(write);
    expect(readMessage(read)).toEqual(scanReply);
  });

  it('refuses a frame cut short in its header or its body', () => {
    const frame = encodeFrame(scanReply);
    for (const length of [1, 3, 4, 10, frame.length - 1]) {
      const [read, write] = pipe();
      writeSync(write, frame, 0, length);
      closeOne(write);
      expect(() => readMessage(read)).toThrow(BrokenFrameError);
    }
  });

  it('refuses a length past MAX_FRAME_SIZE without trying to read it', () => {
    const [read, write] = pipe();
    const header = Buffer.alloc(4);
    header.writeUInt32LE(MAX_FRAME_SIZE + 1, 0);
    writeSync(write, header);
    expect(() => readMessage(read)).toThrow(/not believable/);
  });

  it('refuses bytes that do not decode', () => {
    const [read, write] = pipe();
    // The start of an object whose first key claims 9 bytes and has 1.
    const body = Buffer.from([0xff, 0x0f, 0x6f, 0x22, 0x09, 0x61]);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(body.length, 0);
    writeSync(write, Buffer.concat([header, body]));
    closeOne(write);
    expect(() => readMessage(read)).toThrow(BrokenFrameError);
  });
});

describe('frames with a deadline (the parent side: non-blocking ends)', () => {
  it('reads a message that is there, and one that arrives in pieces while it waits', async () => {
    const [read, write] = pipe();
    libc.setNonBlocking(read);
    writeMessage(write, scanReply);
    expect(readMessage(read, { deadline: performance.now() + 10_000, progressMs: 10_000 })).toEqual(
      scanReply,
    );
    // The writer runs on while this process waits in poll: three bytes, a pause, the rest.
    const frame = encodeFrame(scanReply);
    const script = `
      const fs = require('node:fs');
      const frame = Buffer.from(process.argv[1], 'hex');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      fs.writeSync(3, frame, 0, 3);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
      fs.writeSync(3, frame, 3);`;
    const writer = spawn(process.execPath, ['-e', script, frame.toString('hex')], {
      stdio: ['ignore', 'inherit', 'inherit', write],
    });
    const exited = once(writer, 'exit');
    expect(readMessage(read, { deadline: performance.now() + 30_000, progressMs: 30_000 })).toEqual(
      scanReply,
    );
    expect((await exited)[0]).toBe(0);
  });

  it('takes what is already there even when the deadline has passed (say, after Ctrl-Z)', () => {
    const [read, write] = pipe();
    libc.setNonBlocking(read);
    writeMessage(write, scanReply);
    expect(readMessage(read, { deadline: performance.now() - 1000, progressMs: 0 })).toEqual(scanReply);
  });

  it('waits on past the first deadline while the message keeps coming', async () => {
    const [read, write] = pipe();
    libc.setNonBlocking(read);
    // A first byte at once, then the rest in five pieces 600 ms apart: 3 s in all, past
    // the 2 s deadline for the first byte, never 10 s without one.
    const frame = encodeFrame(scanReply);
    const script = `
      const fs = require('node:fs');
      const frame = Buffer.from(process.argv[1], 'hex');
      fs.writeSync(3, frame, 0, 1);
      const step = Math.ceil((frame.length - 1) / 5);
      for (let at = 1; at < frame.length; at += step) {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
        fs.writeSync(3, frame, at, Math.min(step, frame.length - at));
      }`;
    const writer = spawn(process.execPath, ['-e', script, frame.toString('hex')], {
      stdio: ['ignore', 'inherit', 'inherit', write],
    });
    const exited = once(writer, 'exit');
    expect(readMessage(read, { deadline: performance.now() + 2000, progressMs: 10_000 })).toEqual(scanReply);
    expect((await exited)[0]).toBe(0);
  });

  it('gives up on a reply that does not come, or stops half-way', () => {
    const [read, write] = pipe();
    libc.setNonBlocking(read);
    expect(() => readMessage(read, { deadline: performance.now() + 50, progressMs: 50 })).toThrow(
      DeadlineError,
    );
    writeSync(write, encodeFrame(scanReply), 0, 6);
    expect(() => readMessage(read, { deadline: performance.now() + 50, progressMs: 50 })).toThrow(
      DeadlineError,
    );
  });

  it('still reports the end of the pipe as the end, not as a timeout', () => {
    const [read, write] = pipe();
    libc.setNonBlocking(read);
    closeOne(write);
    expect(readMessage(read, { deadline: performance.now() + 10_000, progressMs: 10_000 })).toBeNull();
  });

  it('gives up on a request nobody takes once the pipe is full', () => {
    const [, write] = pipe();
    libc.setNonBlocking(write);
    // More than a default pipe holds (64 KiB), and nobody reading.
    const big = { ...scanReply, inode: new Float64Array(100_000) };
    expect(() => writeMessage(write, big, { deadline: performance.now() + 50, progressMs: 50 })).toThrow(
      DeadlineError,
    );
  });

  it('grows a pipe on request, or says why not', () => {
    const [, write] = pipe();
    const size = libc.setPipeSize(write, 1 << 20);
    // Root may always; others up to /proc/sys/fs/pipe-max-size (1 MiB by default).
    if (size > 0) expect(size).toBeGreaterThanOrEqual(1 << 20);
    else expect(-size).toBe(1); // EPERM
  });
});

describe('the fingerprint requests carry', () => {
  it("is the build's: dist/build-id.json, read at load, with the catalogue and the outcomes", () => {
    // npm test builds first, so the id is there.
    expect(BUILD_ID).toMatch(/^[0-9a-f]{16}$/);
    expect(PROTOCOL_FINGERPRINT).toBe(fingerprintOf(BUILD_ID));
    expect(fingerprintOf('0000000000000000')).not.toBe(PROTOCOL_FINGERPRINT);
    expect(fingerprintOf(BUILD_ID)).toBe(PROTOCOL_FINGERPRINT);
  });
});

describe('expectType', () => {
  it('passes the expected type and turns a helper error into HelperFailedError', () => {
    expect(expectType({ type: 'scanned' }, 'scanned')).toEqual({ type: 'scanned' });
    expect(() => expectType({ type: 'error', message: 'EMFILE' }, 'scanned')).toThrow(HelperFailedError);
    expect(() => expectType({ type: 'values' }, 'scanned')).toThrow(BrokenFrameError);
    expect(() => expectType(7, 'scanned')).toThrow(BrokenFrameError);
    expect(() => expectType(null, 'scanned')).toThrow(BrokenFrameError);
  });
});

describe('value columns', () => {
  it('give back numbers, null, strings and absent values per row', () => {
    const columns = allocateValueColumns(3, 4);
    const rows: Array<Array<OptionValue | undefined>> = [
      [1, null, 'cubic', undefined],
      [-1, 2 ** 53, 0.5, ''],
      [undefined, undefined],
    ];
    rows.forEach((values, row) => {
      storeValues(columns, row, values);
    });
    const into: Array<OptionValue | undefined> = [];
    loadValues(columns, 0, 4, into);
    expect(into).toEqual([1, null, 'cubic', undefined]);
    loadValues(columns, 1, 4, into);
    expect(into).toEqual([-1, 2 ** 53, 0.5, '']);
    loadValues(columns, 2, 2, into);
    expect(into).toEqual([undefined, undefined]);
  });

  it('refuse more values than a row holds', () => {
    const columns = allocateValueColumns(1, 2);
    expect(() => storeValues(columns, 0, [1, 2, 3])).toThrow(RangeError);
    expect(() => loadValues(columns, 0, 3, [])).toThrow(RangeError);
  });
});

describe('cutting work', () => {
  it('cuts a list where the share of its weight ends', () => {
    expect(cutByWeight([1, 1, 1, 1], 0.5)).toBe(2);
    expect(cutByWeight([1, 1, 1, 1], 0)).toBe(0);
    expect(cutByWeight([1, 1, 1, 1], 1)).toBe(4);
    expect(cutByWeight([100, 1, 1, 1], 0.2)).toBe(0);
    expect(cutByWeight([100, 1, 1, 1], 0.6)).toBe(1);
    expect(cutByWeight([], 0.5)).toBe(0);
  });

  it('slices job rows with their owners, owner indexes from 0', () => {
    const jobs = allocateJobs(3, 5);
    const owners = [[11], [21, 22], [31, 32]];
    let o = 0;
    owners.forEach((pids, row) => {
      jobs.key[row] = row + 4;
      jobs.inode[row] = 100 + row;
      jobs.cookie[row] = BigInt(1000 + row);
      jobs.hasCookie[row] = 1;
      jobs.known[row * 2] = row;
      for (const pid of pids) {
        jobs.ownerPid[o] = pid;
        jobs.ownerFd[o] = pid + 1;
        o++;
      }
      jobs.ownerStart[row + 1] = o;
    });
    jobs.count = 3;
    const slice = sliceJobs(jobs, 1, 3);
    expect(slice.count).toBe(2);
    expect([...slice.key]).toEqual([5, 6]);
    expect([...slice.inode]).toEqual([101, 102]);
    expect([...slice.cookie]).toEqual([1001n, 1002n]);
    expect([...slice.known]).toEqual([1, 0, 2, 0]);
    expect([...slice.ownerStart]).toEqual([0, 2, 4]);
    expect([...slice.ownerPid]).toEqual([21, 22, 31, 32]);
    expect([...slice.ownerFd]).toEqual([22, 23, 32, 33]);
  });
});

describe('how much work a helper would share', () => {
  it('counts the calls per socket outside the io_uring batch', () => {
    // pidfd_getfd and the batch, then TCP_KEEPIDLE, TCP_KEEPCNT, TCP_KEEPINTVL,
    // TCP_USER_TIMEOUT, TCP_NODELAY and TCP_DEFER_ACCEPT for the text's options.
    expect(plainCallsPerSocket(optionsNeeded({ kind: 'knetstat' }))).toBe(8);
    expect(plainCallsPerSocket(new Set(['SO_REUSEADDR', 'SO_KEEPALIVE']))).toBe(2);
    // TCP_CONGESTION and IP_TOS come with the dump.
    expect(plainCallsPerSocket(new Set(['TCP_CONGESTION', 'IP_TOS', 'TCP_MAXSEG']))).toBe(3);
    expect(plainCallsPerSocket(undefined)).toBeGreaterThan(20);
  });

  it('counts the TCP and UDP sockets in use from sockstat and sockstat6', () => {
    const root = mkdtempSync(join(tmpdir(), 'knetstat-sockstat-'));
    mkdirSync(join(root, 'net'));
    writeFileSync(
      join(root, 'net', 'sockstat'),
      'sockets: used 99999\nTCP: inuse 26992 orphan 0 tw 5 alloc 35989 mem 365\nUDP: inuse 3 mem 0\nUDPLITE: inuse 7\nRAW: inuse 1\nFRAG: inuse 0 memory 0\n',
    );
    expect(socketsInUse(root)).toBe(26995);
    writeFileSync(
      join(root, 'net', 'sockstat6'),
      'TCP6: inuse 8996\nUDP6: inuse 2\nUDPLITE6: inuse 0\nRAW6: inuse 0\nFRAG6: inuse 0 memory 0\n',
    );
    expect(socketsInUse(root)).toBe(35993);
    expect(socketsInUse(join(root, 'missing'))).toBe(0);
  });
});
