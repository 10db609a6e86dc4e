import { closeSync, openSync, readlinkSync } from 'node:fs';
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
