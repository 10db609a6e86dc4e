/**
 * The io_uring executor against the real kernel, on sockets of our own: every SOL_SOCKET
 * option of the catalogue reads the same through the ring as through getsockopt(2), the
 * close closes, and what the kernel refuses comes back as a negated errno.
 */
import { closeSync, openSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectCalls } from '../../src/options/calls.js';
import { OPTION_CATALOGUE } from '../../src/options/catalogue.js';
import { directFdAccess } from '../../src/options/fd-access.js';
import { SystemCallError } from '../../src/sys/errors.js';
import * as libc from '../../src/sys/libc.js';
import { SocketCallRing } from '../../src/sys/uring.js';
import { intValue, SOCK_STREAM, SOL_TCP } from '../helpers/sockopt.js';

const opened = SocketCallRing.open();
const skip = opened instanceof Error ? opened.message : null;

const EOPNOTSUPP = 95;

function isOpen(fd: number): boolean {
  try {
    libc.fstatInode(fd);
    return true;
  } catch (error) {
    if (error instanceof SystemCallError && error.code === 'EBADF') return false;
    throw error;
  }
}

describe.skipIf(skip !== null)(`SocketCallRing${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let ring: SocketCallRing;
  const direct = new DirectCalls(directFdAccess);

  beforeAll(() => {
    ring = opened as SocketCallRing;
  });
  afterAll(() => {
    ring?.dispose();
  });

  /** A TCP and a UDP socket with several SOL_SOCKET options away from their defaults. */
  function socketsWithOptions(): number[] {
    const tcp = libc.socket(libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
    const udp = libc.socket(libc.AF_INET6, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC, 0);
    for (const fd of [tcp, udp]) {
      libc.setsockopt(fd, libc.SOL_SOCKET, 2, intValue(1)); // SO_REUSEADDR
      libc.setsockopt(fd, libc.SOL_SOCKET, 8, intValue(50000)); // SO_RCVBUF
      libc.setsockopt(fd, libc.SOL_SOCKET, 12, intValue(3)); // SO_PRIORITY
      const linger = new Uint8Array(8);
      new DataView(linger.buffer).setInt32(0, 1, true);
      new DataView(linger.buffer).setInt32(4, 7, true);
      libc.setsockopt(fd, libc.SOL_SOCKET, 13, linger); // SO_LINGER on, 7 s
    }
    libc.setsockopt(tcp, libc.SOL_SOCKET, 9, intValue(1)); // SO_KEEPALIVE
    libc.setsockopt(udp, libc.SOL_SOCKET, 6, intValue(1)); // SO_BROADCAST
    return [tcp, udp];
  }

  it('reads every SOL_SOCKET option of the catalogue exactly as getsockopt(2) does', () => {
    const specs = OPTION_CATALOGUE.filter((o) => o.level === libc.SOL_SOCKET);
    expect(specs.length).toBeGreaterThan(15);
    for (const fd of socketsWithOptions()) {
      try {
        specs.forEach((spec, i) => {
          ring.getsockopt(fd, spec.level, spec.optname, i);
          direct.getsockopt(fd, spec.level, spec.optname, i);
        });
        ring.submit();
        specs.forEach((spec, i) => {
          const length = direct.results[i] as number;
          expect(ring.results[i], spec.name).toBe(length);
          if (length > 0)
            expect([...ring.slot(i).subarray(0, length)], spec.name).toEqual([
              ...direct.slot(i).subarray(0, length),
            ]);
        });
      } finally {
        libc.close(fd);
      }
    }
  });

  it('closes the fd in the same batch, after the calls before it', () => {
    const fd = libc.socket(libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
    ring.getsockopt(fd, libc.SOL_SOCKET, 9, 0); // SO_KEEPALIVE
    ring.close(fd);
    expect(isOpen(fd)).toBe(true);
    ring.submit();
    expect(ring.results[0]).toBe(4);
    expect(ring.closeResult).toBe(0);
    expect(isOpen(fd)).toBe(false);
  });

  it('answers another level than SOL_SOCKET with EOPNOTSUPP: those calls stay plain', () => {
    const fd = libc.socket(libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
    try {
      ring.getsockopt(fd, SOL_TCP, 1, 0); // TCP_NODELAY
      ring.submit();
      expect(ring.results[0]).toBe(-EOPNOTSUPP);
    } finally {
      libc.close(fd);
    }
  });

  it('fails the call, not the batch, on a file that is not a socket', () => {
    const fd = openSync('/proc/self/status', 'r');
    try {
      ring.getsockopt(fd, libc.SOL_SOCKET, 57, 0); // SO_COOKIE
      ring.submit();
      expect(ring.results[0]).toBeLessThan(0);
    } finally {
      closeSync(fd);
    }
  });

  it('reads a socket cookie as sock_diag would report it: 8 bytes, the same on every read', () => {
    const fd = libc.socket(libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
    try {
      ring.getsockopt(fd, libc.SOL_SOCKET, 57, 0);
      ring.getsockopt(fd, libc.SOL_SOCKET, 57, 1);
      ring.submit();
      expect(ring.results[0]).toBe(8);
      expect([...ring.slot(0).subarray(0, 8)]).toEqual([...ring.slot(1).subarray(0, 8)]);
      expect(
        ring
          .slot(0)
          .subarray(0, 8)
          .some((b) => b !== 0),
      ).toBe(true);
    } finally {
      libc.close(fd);
    }
  });

  it('refuses more calls than its entries in one batch, and stays usable', () => {
    const fd = libc.socket(libc.AF_INET, SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
    try {
      expect(() => {
        for (let i = 0; i < 65; i++) ring.getsockopt(fd, libc.SOL_SOCKET, 9, i % 64);
      }).toThrow(/too many calls/);
      ring.submit();
      ring.getsockopt(fd, libc.SOL_SOCKET, 9, 0);
      ring.submit();
      expect(ring.results[0]).toBe(4);
    } finally {
      libc.close(fd);
    }
  });
});
