/**
 * NetlinkSocket.receive with recv(2) replaced: EINTR (a signal during the wait) is
 * retried however often it comes, other errors reach the caller, and a datagram larger
 * than the receive buffer (recv with MSG_TRUNC reports its real length) is a
 * ProtocolError rather than a silently cut message.
 */
import fc from 'fast-check';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { SystemCallError } from '../../src/sys/errors.js';

const EINTR = 4;
const EAGAIN = 11;
const ENOBUFS = 105;

type RecvStep = { errno: number } | { datagram: Uint8Array } | { oversized: number };
let script: RecvStep[] = [];
let recvCalls = 0;

vi.mock('../../src/sys/libc.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/sys/libc.js')>();
  return {
    ...real,
    socket: () => 1000,
    sendTo: (_fd: number, data: Uint8Array) => data.byteLength,
    close: () => undefined,
    recv: (_fd: number, buffer: Uint8Array, flags: number) => {
      recvCalls++;
      expect(flags & real.MSG_TRUNC).toBe(real.MSG_TRUNC);
      const step = script.shift();
      if (!step) throw new Error('recv called past the end of the script');
      if ('errno' in step) throw new SystemCallError('recv', step.errno);
      if ('oversized' in step) return buffer.byteLength + step.oversized;
      buffer.set(step.datagram);
      return step.datagram.byteLength;
    },
  };
});

const { NetlinkSocket } = await import('../../src/netlink/sock-diag.js');
const { ProtocolError } = await import('../../src/sys/errors.js');

beforeEach(() => {
  script = [];
  recvCalls = 0;
});

describe('NetlinkSocket.receive', () => {
  it('retries EINTR and returns each datagram in order', () => {
    const arrivals = fc.array(
      fc.tuple(fc.integer({ min: 0, max: 5 }), fc.uint8Array({ minLength: 1, maxLength: 64 })),
      { minLength: 1, maxLength: 6 },
    );
    fc.assert(
      fc.property(arrivals, (pairs) => {
        script = pairs.flatMap(([interruptions, datagram]) => [
          ...Array.from({ length: interruptions }, () => ({ errno: EINTR })),
          { datagram },
        ]);
        recvCalls = 0;
        const socket = new NetlinkSocket();
        for (const [, datagram] of pairs) expect([...socket.receive()]).toEqual([...datagram]);
        expect(recvCalls).toBe(pairs.reduce((n, [i]) => n + i + 1, 0));
        socket.close();
      }),
      { numRuns: 200 },
    );
  });

  it('passes every other error to the caller (ENOBUFS is the dump loop’s to retry)', () => {
    for (const errno of [ENOBUFS, EAGAIN]) {
      script = [{ errno: EINTR }, { errno }];
      const socket = new NetlinkSocket();
      expect(() => socket.receive()).toThrow(SystemCallError);
      expect(recvCalls).toBe(2);
      recvCalls = 0;
    }
  });

  it('rejects a datagram that did not fit the buffer', () => {
    script = [{ oversized: 1 }];
    expect(() => new NetlinkSocket().receive()).toThrow(ProtocolError);
  });
});
