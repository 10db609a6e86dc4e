import { closeSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as libc from '../../src/sys/libc.js';

describe('fstatSocketInode', () => {
  it("gives a socket's inode, as /proc/self/fd names it", () => {
    const fd = libc.socket(libc.AF_UNIX, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC, 0);
    try {
      const link = readlinkSync(`/proc/self/fd/${fd}`);
      expect(link).toBe(`socket:[${libc.fstatSocketInode(fd)}]`);
    } finally {
      libc.close(fd);
    }
  });

  it('gives 0 for a file that is not a socket, whatever its inode number', () => {
    const fd = openSync('/proc/self/status', 'r');
    try {
      expect(libc.fstatInode(fd)).toBeGreaterThan(0);
      expect(libc.fstatSocketInode(fd)).toBe(0);
    } finally {
      closeSync(fd);
    }
  });
});

describe('withSignalsBlocked', () => {
  /** This thread's blocked signals, as /proc reports them. */
  const blocked = (): bigint => {
    const hex = /^SigBlk:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/thread-self/status', 'latin1'))?.[1];
    return BigInt(`0x${hex}`);
  };
  const bit = (signal: number) => 1n << BigInt(signal - 1);

  it('holds back every signal but those a fault raises while the call runs, then restores the mask', () => {
    const before = blocked();
    let during = 0n;
    expect(libc.withSignalsBlocked(() => (during = blocked()))).toBe(during);
    // SIGINT, SIGUSR1, SIGPIPE, SIGTERM, SIGPROF held back; SIGILL, SIGTRAP, SIGBUS,
    // SIGFPE, SIGSEGV and SIGSYS not; SIGKILL and SIGSTOP never can be.
    for (const signal of [2, 10, 13, 15, 27]) expect(during & bit(signal)).toBe(bit(signal));
    for (const signal of [4, 5, 7, 8, 11, 31, 9, 19]) expect(during & bit(signal)).toBe(0n);
    expect(blocked()).toBe(before);
    expect(() =>
      libc.withSignalsBlocked(() => {
        throw new Error('inside');
      }),
    ).toThrow('inside');
    expect(blocked()).toBe(before);
  });

  it('nests: an inner call restores the mask the outer one set, not the one before it', () => {
    const before = blocked();
    libc.withSignalsBlocked(() => {
      const outer = blocked();
      expect(outer).not.toBe(before);
      libc.withSignalsBlocked(() => {});
      expect(blocked()).toBe(outer);
    });
    expect(blocked()).toBe(before);
  });
});
