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
  /** This thread's blocked signals, as /proc reports them (hex). */
  const blocked = () =>
    /^SigBlk:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/thread-self/status', 'latin1'))?.[1];

  it('blocks every signal while the call runs, then restores the mask, also when it throws', () => {
    const before = blocked();
    let during: string | undefined;
    expect(libc.withSignalsBlocked(() => (during = blocked()))).toBe(during);
    // Every blockable signal (SIGKILL and SIGSTOP cannot be; glibc keeps two of its own).
    expect(BigInt(`0x${during}`) & 0xffffn).toBe(0xfeffn);
    expect(blocked()).toBe(before);
    expect(() =>
      libc.withSignalsBlocked(() => {
        throw new Error('inside');
      }),
    ).toThrow('inside');
    expect(blocked()).toBe(before);
  });
});
