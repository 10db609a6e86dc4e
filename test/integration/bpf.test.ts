/**
 * The BPF passes: a collection that finds owners and reads most TCP options with BPF
 * iterators gives exactly what one that scans /proc and duplicates every socket gives — for
 * options at their defaults and set, whether bpf_getsockopt reads them or the pass
 * converts a field (a linger time, a timeout, a deferral) — and one that may not load BPF
 * reads everything the old way.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mayLoadBpf } from '../../src/options/bpf-pass.js';
import { prepareTcpProgram } from '../../src/options/bpf-tcp.js';
import { BPF_READABLE_TCP_OPTIONS } from '../../src/options/catalogue.js';
import { optionsNeeded } from '../../src/options/display.js';
import { kernelReadsAllowed } from '../../src/sys/bpf.js';
import { KERNEL_BTF, kernelBtf } from '../../src/sys/btf.js';
import { netnsUnavailableReason, SocketChild } from '../helpers/netns.js';
import { essentials } from '../helpers/records.js';

const SOL_SOCKET = 1;
const SOL_TCP = 6;
const SO_REUSEADDR = 2;
const SO_KEEPALIVE = 9;
const SO_RCVBUF = 8;
const SO_LINGER = 13;
const SO_RCVTIMEO = 66;
const SO_SNDTIMEO = 67;
const TCP_NODELAY = 1;
const TCP_KEEPIDLE = 4;
const TCP_KEEPINTVL = 5;
const TCP_KEEPCNT = 6;
const TCP_DEFER_ACCEPT = 9;
const TCP_USER_TIMEOUT = 18;
const TCP_FASTOPEN = 23;
const SO_PRIORITY = 12;
const SO_RCVLOWAT = 18;
const SO_TXREHASH = 74;
const TCP_THIN_LINEAR_TIMEOUTS = 16;
const TCP_SAVE_SYN = 27;
const SOL_IP = 0;
const SOL_IPV6 = 41;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MTU_DISCOVER = 23;
const IPV6_RECVERR = 25;
const IPV6_V6ONLY = 26;
// Options whose values the pass works out of struct fields (bpf-tcp.ts FIELDS).
const FIELD_OPTIONS: Array<[number, number, number | [string, number, number]]> = [
  [SOL_SOCKET, 46, 50], // SO_BUSY_POLL
  [SOL_SOCKET, 69, 1], // SO_PREFER_BUSY_POLL
  [SOL_SOCKET, 60, 1], // SO_ZEROCOPY
  [SOL_SOCKET, 29, 1], // SO_TIMESTAMP
  [SOL_SOCKET, 10, 1], // SO_OOBINLINE
  [SOL_SOCKET, 5, 1], // SO_DONTROUTE
  [SOL_SOCKET, 37, 0x18], // SO_TIMESTAMPING: SOFTWARE | RX_SOFTWARE
  [SOL_SOCKET, 61, ['txtime', 1, 2]], // SO_TXTIME: CLOCK_MONOTONIC, REPORT_ERRORS
  [SOL_SOCKET, 47, 1_000_000], // SO_MAX_PACING_RATE
  [SOL_TCP, 3, 1], // TCP_CORK
  [SOL_TCP, 12, 0], // TCP_QUICKACK off: pingpong mode
  [SOL_TCP, 8, 30], // TCP_LINGER2
  [SOL_TCP, 37, 1000], // TCP_TX_DELAY
  [SOL_TCP, 36, 1], // TCP_INQ
  [SOL_IP, 2, 33], // IP_TTL
  [SOL_IP, 10, 0], // IP_MTU_DISCOVER: dont
  [SOL_IP, 21, 5], // IP_MINTTL
];

function reason(): string | null {
  const netns = netnsUnavailableReason();
  if (netns) return netns;
  if (!existsSync(KERNEL_BTF)) return `no kernel BTF (${KERNEL_BTF})`;
  if (!mayLoadBpf()) return 'needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN';
  return null;
}
const skip = reason();

/**
 * Whether this kernel lets the pass settle the IPv6 options too: the places the hop
 * limit is worked out from in its types, kernel reads not locked down, and the inet
 * flag bit IPV6_RECVERR reads (6.6 on).
 */
const IPV6_SETTLED = (() => {
  if (skip !== null) return false;
  const btf = kernelBtf();
  try {
    btf.enumerator('INET_FLAGS_RECVERR6');
  } catch {
    return false;
  }
  return (
    kernelReadsAllowed() &&
    prepareTcpProgram(btf, BPF_READABLE_TCP_OPTIONS, undefined, true).layout.hopLimit !== undefined
  );
})();

/** The module's options, which the default text shows. */
const KNETSTAT_SET = [...(optionsNeeded({ kind: 'knetstat' }) ?? [])];

describe.skipIf(skip !== null)(`the BPF pass${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;

  beforeAll(async () => {
    child = await SocketChild.start();
    // Defaults everywhere, and each option the pass reads through a field set away from
    // its default, so that both ways of settling a value are compared.
    await child.run({
      op: 'listen',
      id: 'L',
      options: [
        [SOL_SOCKET, SO_REUSEADDR, 1],
        [SOL_TCP, TCP_DEFER_ACCEPT, 5],
        [SOL_TCP, TCP_FASTOPEN, 16],
        [SOL_TCP, TCP_SAVE_SYN, 1],
      ],
    });
    // A deferral past TCP_RTO_MAX (120 s), where the retransmissions stop doubling; Fast
    // Open on connect, which can only be set before the socket is bound.
    await child.run({
      op: 'listen',
      id: 'Llong',
      options: [[SOL_TCP, TCP_DEFER_ACCEPT, 400]],
      before_bind: [[SOL_TCP, 30, 1]], // TCP_FASTOPEN_CONNECT
    });
    await child.run({
      op: 'connect',
      id: 'C',
      to: 'L',
      accept_as: 'A',
      options: [
        [SOL_SOCKET, SO_KEEPALIVE, 1],
        [SOL_TCP, TCP_KEEPIDLE, 77],
        [SOL_TCP, TCP_KEEPINTVL, 11],
        [SOL_TCP, TCP_KEEPCNT, 4],
        [SOL_TCP, TCP_USER_TIMEOUT, 1234],
        [SOL_TCP, TCP_NODELAY, 1],
        [SOL_SOCKET, SO_RCVBUF, 65536],
        [SOL_SOCKET, SO_PRIORITY, 3],
        [SOL_SOCKET, SO_RCVLOWAT, 100],
        [SOL_SOCKET, SO_TXREHASH, 0],
        [SOL_TCP, TCP_THIN_LINEAR_TIMEOUTS, 1],
        ...FIELD_OPTIONS,
      ],
      accept_options: [
        [SOL_SOCKET, SO_LINGER, ['linger', 1, 3]],
        [SOL_SOCKET, SO_RCVTIMEO, ['timeval', 2, 500000]],
        [SOL_SOCKET, SO_SNDTIMEO, ['timeval', 0, 1]],
        [SOL_SOCKET, 35, 1], // SO_TIMESTAMPNS
        [SOL_TCP, 8, -1], // TCP_LINGER2: no FIN_WAIT2 timer
      ],
    });
    // Linger switched off again: l_linger stays, the flag is what counts.
    await child.run({
      op: 'listen',
      id: 'Loff',
      options: [
        [SOL_SOCKET, SO_LINGER, ['linger', 1, 9]],
        [SOL_SOCKET, SO_LINGER, ['linger', 0, 9]],
      ],
    });
    await child.run({ op: 'listen', id: 'L6', family: 6, address: '::1' });
    // IPv6: a hop limit set on the socket; none set, so that it comes from the route's
    // metric, from the device (lo) and from the namespace (a listener has no route);
    // and the other IPv6 options the pass reads, set.
    const ip = (...argv: string[]) => child.run({ op: 'run', argv: ['ip', ...argv] });
    await ip('-6', 'address', 'add', 'fd00::5/128', 'dev', 'lo', 'nodad');
    await ip('-6', 'route', 'del', 'local', 'fd00::5', 'dev', 'lo', 'table', 'local');
    await ip('-6', 'route', 'add', 'local', 'fd00::5', 'dev', 'lo', 'table', 'local', 'hoplimit', '9');
    await child.run({
      op: 'run',
      argv: [
        'sh',
        '-c',
        'echo 50 > /proc/sys/net/ipv6/conf/lo/hop_limit && echo 70 > /proc/sys/net/ipv6/conf/all/hop_limit',
      ],
    });
    await child.run({
      op: 'connect',
      id: 'C6',
      to: 'L6',
      accept_as: 'A6',
      before_connect: [[SOL_IPV6, IPV6_V6ONLY, 1]],
      options: [
        [SOL_IPV6, IPV6_UNICAST_HOPS, 17],
        [SOL_IPV6, IPV6_RECVERR, 1],
        [SOL_IPV6, IPV6_MTU_DISCOVER, 0],
      ],
    });
    await child.run({ op: 'listen', id: 'L6r', family: 6, address: 'fd00::5' });
    await child.run({ op: 'connect', id: 'C6r', to: 'L6r', accept_as: 'A6r' });
    await child.run({ op: 'udp', id: 'U', options: [[SOL_SOCKET, 6, 1]] }); // SO_BROADCAST
    await child.run({ op: 'listen_many', count: 30, prefix: 'm' });
    // Every socket held by a second process too, under another name: two owners each,
    // which the BPF owner scan must list as /proc does, in the same order.
    await child.run({ op: 'fork', name: 'knetfork' });
  });

  afterAll(async () => {
    await child?.stop();
  });

  for (const [what, options] of [
    ['the whole catalogue', undefined],
    ["the module's options", KNETSTAT_SET],
  ] as const) {
    it(`reads ${what} exactly as duplicating every socket does`, () => {
      const settings = options ? { options } : {};
      const alone = child.collect({ ...settings, bpf: 'off' });
      const pass = child.collect({ ...settings, bpf: 'on' });
      expect(alone.bpf).toEqual({ owners: false, options: false });
      expect(pass.bpf).toEqual({ owners: true, options: true });
      // Every option of every TCP socket was settled by the dump and the pass alone
      // (timeouts, linger times and deferrals converted with the HZ and constants learnt,
      // IPv6 hop limits worked out from the route as the kernel does) — of the IPv6
      // ones, where this kernel lets the program work out all four IPv6 options.
      const read = pass.sockets.filter((s) => s.protocol === 'tcp' && s.options !== null);
      expect(alone.settledWithoutDuplicate).toBe(0);
      if (options || IPV6_SETTLED) expect(pass.settledWithoutDuplicate).toBe(read.length);
      else expect(pass.settledWithoutDuplicate).toBe(read.filter((s) => s.family === 4).length);
      expect(pass.warnings).toEqual(alone.warnings);
      expect(essentials(pass)).toEqual(essentials(alone));
      // Two owners per socket, the fork's under its own name.
      const listener = pass.sockets.find((s) => s.protocol === 'tcp' && s.state === 'LISTEN');
      expect(listener?.processes.map((p) => p.command).sort()).toEqual(['knetfork', 'python3'].sort());
      // The values set above are there, read one way or the other.
      const accepted = pass.sockets.find(
        (s) => s.state === 'ESTABLISHED' && s.options?.SO_LINGER === 3 && s.options?.SO_RCVTIMEO === 2500,
      );
      expect(accepted?.options?.SO_SNDTIMEO).toBeGreaterThan(0);
      const client = pass.sockets.find((s) => s.options?.TCP_KEEPIDLE === 77);
      expect(client?.options).toMatchObject({
        SO_KEEPALIVE: 1,
        TCP_KEEPINTVL: 11,
        TCP_KEEPCNT: 4,
        TCP_USER_TIMEOUT: 1234,
        TCP_NODELAY: 1,
        SO_BUF_LOCK: 2,
      });
      const listeners = pass.sockets.filter((s) => s.state === 'LISTEN' && s.protocol === 'tcp');
      expect(
        listeners.some((s) => s.options?.TCP_FASTOPEN === 16 && (s.options?.TCP_DEFER_ACCEPT as number) > 0),
      ).toBe(true);
      expect(listeners.some((s) => s.options?.TCP_DEFER_ACCEPT === 487)).toBe(true);
      if (!options) {
        expect(client?.options).toMatchObject({
          SO_PRIORITY: 3,
          SO_RCVLOWAT: 100,
          SO_TXREHASH: 0,
          TCP_THIN_LINEAR_TIMEOUTS: 1,
          SO_BUSY_POLL: 50,
          SO_PREFER_BUSY_POLL: 1,
          SO_ZEROCOPY: 1,
          SO_TIMESTAMP: 1,
          SO_OOBINLINE: 1,
          SO_DONTROUTE: 1,
          SO_TIMESTAMPING: 0x18,
          SO_TXTIME: '1/2',
          SO_MAX_PACING_RATE: 1_000_000,
          TCP_CORK: 1,
          TCP_QUICKACK: 0,
          TCP_LINGER2: 30,
          TCP_TX_DELAY: 1000,
          TCP_INQ: 1,
          IP_TTL: 33,
          IP_MTU_DISCOVER: 0,
          IP_MINTTL: 5,
          SO_SNDLOWAT: 1,
          TCP_ULP: '',
        });
        expect(accepted?.options).toMatchObject({ SO_TIMESTAMPNS: 1, SO_TIMESTAMP: 0, TCP_LINGER2: -1 });
        expect(
          listeners.find((s) => s.options?.TCP_DEFER_ACCEPT === 487)?.options?.TCP_FASTOPEN_CONNECT,
        ).toBe(1);
        expect(Number.isInteger(client?.options?.SO_INCOMING_CPU)).toBe(true);
        // The IPv6 hop limits, each from where the kernel takes it.
        const v6 = (state: string, address: string, local = true) =>
          pass.sockets.filter(
            (s) =>
              s.protocol === 'tcp' &&
              s.state === state &&
              (local ? s.local.address : s.remote.address) === address &&
              s.options !== null,
          );
        const fromSocket = v6('ESTABLISHED', '::1').find((s) => s.options?.IPV6_RECVERR === 1);
        expect(fromSocket?.options).toMatchObject({
          IPV6_UNICAST_HOPS: 17,
          IPV6_V6ONLY: 1,
          IPV6_MTU_DISCOVER: 0,
        });
        const fromDevice = v6('ESTABLISHED', '::1').filter((s) => s !== fromSocket);
        expect(fromDevice.map((s) => s.options?.IPV6_UNICAST_HOPS)).toEqual([50]);
        // Accepted from a listener bound to ::1, not the wildcard, which __inet6_bind made
        // IPv6-only: the flag is inherited.
        expect(fromDevice[0]?.options).toMatchObject({
          IPV6_V6ONLY: 1,
          IPV6_RECVERR: 0,
          IPV6_MTU_DISCOVER: 1,
        });
        expect(v6('ESTABLISHED', 'fd00::5').map((s) => s.options?.IPV6_UNICAST_HOPS)).toEqual([9, 9]);
        expect(v6('LISTEN', 'fd00::5').map((s) => s.options?.IPV6_UNICAST_HOPS)).toEqual([70]);
      }
    });
  }

  it('hands the helper process only what the pass left, with the same result', () => {
    const alone = child.collect({ bpf: 'off', parallel: 'off' });
    const both = child.collect({ bpf: 'on', parallel: 'on' });
    expect(both.bpf).toEqual({ owners: true, options: true });
    expect(both.helper).toBe('used');
    expect(essentials(both)).toEqual(essentials(alone));
  });

  it('runs no options pass for options only the dump gives (the owners still come from BPF)', () => {
    const collection = child.collect({ options: ['TCP_CONGESTION', 'IPV6_TCLASS'], bpf: 'on' });
    expect(collection.bpf).toEqual({ owners: true, options: false });
    expect(collection.warnings).toEqual([]);
  });

  it('leaves everything to getsockopt, and says why, where it may not load a program', () => {
    // The same collection without CAP_SYS_ADMIN, CAP_BPF and CAP_PERFMON (the rest kept:
    // duplicating still works).
    const wrap = [
      'setpriv',
      '--inh-caps=-sys_admin,-bpf,-perfmon',
      '--bounding-set=-sys_admin,-bpf,-perfmon',
      '--',
    ];
    const refused = child.collect({ options: KNETSTAT_SET, bpf: 'on' }, { wrap });
    expect(refused.bpf).toEqual({ owners: false, options: false });
    expect(refused.warnings).toContainEqual(expect.stringMatching(/BPF pass failed \(needs CAP_BPF/));
    expect(refused.warnings).toContainEqual(expect.stringMatching(/BPF owner scan failed \(needs CAP_BPF/));
    const alone = child.collect({ options: KNETSTAT_SET, bpf: 'off' });
    expect(essentials(refused)).toEqual(essentials(alone));
  });
});
