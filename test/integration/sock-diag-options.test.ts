/**
 * The values knetstat takes from the sock_diag dump are the values getsockopt returns:
 * the same sockets listed from netlink (options partly from the dump) and from /proc/net
 * (every option through getsockopt) must show the same options.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPTION_CATALOGUE } from '../../src/options/catalogue.js';
import { netnsUnavailableReason, SocketChild } from '../helpers/netns.js';

const skip = netnsUnavailableReason();

const SOL_SOCKET = 1;
const SOL_IP = 0;
const SOL_TCP = 6;
const SOL_IPV6 = 41;

interface JsonSocket {
  protocol: string;
  family: number;
  state: string;
  inode: number;
  options: Record<string, unknown> | null;
}

/** SO_INCOMING_CPU is the CPU that handled the last packet: it may differ between two reads. */
function stableOptions(socket: JsonSocket): Record<string, unknown> | null {
  if (!socket.options) return null;
  const { SO_INCOMING_CPU: _cpu, ...rest } = socket.options;
  return rest;
}

describe.skipIf(skip !== null)(
  `options from sock_diag equal getsockopt's${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let child: SocketChild;
    let fromNetlink: JsonSocket[];
    let fromProc: JsonSocket[];

    beforeAll(async () => {
      child = await SocketChild.start();
      await child.run({
        op: 'listen',
        id: 'L4',
        family: 4,
        address: '127.0.0.1',
        before_bind: [
          [SOL_IP, 15, 1], // IP_FREEBIND
          [SOL_IP, 24, 1], // IP_BIND_ADDRESS_NO_PORT
        ],
        options: [
          [SOL_IP, 1, 0x10], // IP_TOS
          [SOL_IP, 19, 1], // IP_TRANSPARENT
          [SOL_IP, 11, 1], // IP_RECVERR
          [SOL_SOCKET, 36, 77], // SO_MARK
          [SOL_SOCKET, 8, 65536], // SO_RCVBUF
          [SOL_TCP, 13, 'reno'], // TCP_CONGESTION
        ],
      });
      await child.run({
        op: 'connect',
        id: 'C4',
        to: 'L4',
        accept_as: 'A4',
        options: [
          [SOL_SOCKET, 7, 32768], // SO_SNDBUF
          [SOL_SOCKET, 25, 'lo'], // SO_BINDTODEVICE: idiag_if is set, so read with getsockopt
        ],
      });
      await child.run({
        op: 'listen',
        id: 'L6',
        family: 6,
        address: '::1',
        before_bind: [[SOL_IPV6, 26, 1]], // IPV6_V6ONLY, carried by the dump for a listener
        options: [
          [SOL_IPV6, 67, 0x28], // IPV6_TCLASS
          [SOL_IPV6, 78, 1], // IPV6_FREEBIND
          [SOL_IPV6, 75, 1], // IPV6_TRANSPARENT
        ],
      });
      // Established IPv6: the dump does not carry V6ONLY, so it is read with getsockopt.
      await child.run({ op: 'connect', id: 'C6', to: 'L6', accept_as: 'A6' });
      await child.run({
        op: 'udp',
        id: 'U4',
        family: 4,
        options: [
          [SOL_IP, 34, 0], // IP_MULTICAST_LOOP
          [SOL_IP, 49, 0], // IP_MULTICAST_ALL
        ],
      });
      await child.run({ op: 'udp', id: 'U6', family: 6, address: '::1' });
      const list = (args: string[]) => {
        const { stdout, status, stderr } = child.knetstat(['--json', ...args]);
        expect(status, stderr).toBe(0);
        return JSON.parse(stdout) as JsonSocket[];
      };
      fromNetlink = list([]);
      fromProc = list(['--source', 'proc']);
    });

    afterAll(async () => {
      await child?.stop();
    });

    it('reads the same values with io_uring batches as with one system call each', () => {
      const options = (settings: Record<string, unknown>) =>
        new Map(
          child
            .collect(settings)
            .sockets.map((s) => [s.inode, stableOptions(s as unknown as JsonSocket)] as const),
        );
      const batched = options({});
      const plain = options({ ioUring: false });
      expect(batched.size).toBe(8);
      expect([...batched.values()].every((o) => o !== null)).toBe(true);
      expect(batched).toEqual(plain);
    });

    it('lists the same sockets both ways, each with its options read', () => {
      const key = (s: JsonSocket) => `${s.protocol}${s.family}:${s.inode}`;
      expect(fromNetlink.map(key).sort()).toEqual(fromProc.map(key).sort());
      expect(fromNetlink.length).toBe(8);
      for (const s of fromNetlink) expect(s.options, key(s)).not.toBeNull();
    });

    it('shows the same value for every option, whichever way it was read', () => {
      const byInode = new Map(fromProc.map((s) => [s.inode, s]));
      for (const socket of fromNetlink) {
        expect(stableOptions(socket), `inode ${socket.inode}`).toEqual(
          stableOptions(byInode.get(socket.inode) as JsonSocket),
        );
      }
    });

    it('covers every option the catalogue takes from the dump, with the values set', () => {
      const options = (predicate: (s: JsonSocket) => boolean) =>
        fromNetlink.filter(predicate).map((s) => s.options ?? {});
      const [listener4] = options((s) => s.protocol === 'tcp' && s.family === 4 && s.state === 'LISTEN');
      expect(listener4).toMatchObject({
        IP_TOS: 0x10,
        IP_FREEBIND: 1,
        IP_TRANSPARENT: 1,
        IP_BIND_ADDRESS_NO_PORT: 1,
        IP_RECVERR: 1,
        SO_MARK: 77,
        SO_RCVBUF: 131072,
        TCP_CONGESTION: 'reno',
        SO_BINDTODEVICE: '',
      });
      expect(options((s) => s.protocol === 'tcp' && s.family === 4)).toContainEqual(
        expect.objectContaining({ SO_SNDBUF: 65536, SO_BINDTODEVICE: 'lo' }),
      );
      const [listener6] = options((s) => s.protocol === 'tcp' && s.family === 6 && s.state === 'LISTEN');
      expect(listener6).toMatchObject({
        IPV6_V6ONLY: 1,
        IPV6_TCLASS: 0x28,
        IPV6_FREEBIND: 1,
        IPV6_TRANSPARENT: 1,
      });
      const [udp4] = options((s) => s.protocol === 'udp' && s.family === 4);
      expect(udp4).toMatchObject({ IP_MULTICAST_LOOP: 0, IP_MULTICAST_ALL: 0 });
      const covered = new Set(fromNetlink.flatMap((s) => Object.keys(s.options ?? {})));
      for (const spec of OPTION_CATALOGUE.filter((o) => o.sockDiag))
        expect(covered, spec.name).toContain(spec.name);
    });
  },
);
