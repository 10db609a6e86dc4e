/**
 * Issue 3 on real sockets: every option of the catalogue set by a child to a non-default
 * value and read back exactly (CLI --json and the library, in the child's netns); the
 * knetstat Options column's units, order and visibility rules; what an inspection must
 * leave untouched; and a collection by an unprivileged user.
 */

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectSockets } from '../../src/collect.js';
import type { SocketRecord } from '../../src/model.js';
import { OPTION_CATALOGUE } from '../../src/options/catalogue.js';
import type { JsonSocket as JsonRow } from '../../src/render/json.js';
import { bufferReadBack, deferAcceptReadBack } from '../helpers/kernel-units.js';
import {
  type Address,
  CLI,
  type Described,
  netnsUnavailableReason,
  type Pair,
  SocketChild,
} from '../helpers/netns.js';
import { parseKnetstatTable, splitTables, type TextRow } from '../helpers/proc-net-oracle.js';

const skip = netnsUnavailableReason();

// Levels and option numbers from the Linux UAPI headers (asm-generic/socket.h,
// linux/tcp.h, linux/in.h, linux/in6.h), written here again on purpose: a wrong number in
// the catalogue must not be hidden by the test using the same number.
const SOL_SOCKET = 1;
const SOL_IP = 0;
const SOL_TCP = 6;
const SOL_IPV6 = 41;
// The child sets the old (time_t-sized) timeouts; knetstat reads the _NEW ones (66, 67).
const SO_RCVTIMEO_OLD = 20;
const SO_SNDTIMEO_OLD = 21;
const SO_ERROR = 4;
const ECONNREFUSED = 111;

type Kind = 'listener' | 'client' | 'accepted' | 'udp';
type Family = 4 | 6;
type SetValue =
  | number
  | string
  | ['linger', number, number]
  | ['timeval', number, number]
  | ['txtime', number, number];
type Decoding = 'int' | 'string' | 'timeval' | 'linger' | 'u64' | 'txtime';
/** What getsockopt must give back: a value, or "what the owner itself reads" for values the kernel keeps changing. */
type Expected = number | string | null | { owner: Decoding; why: string };

interface OptionCase {
  name: string;
  level: number;
  optname: number;
  /** null: not set directly (see `expected`). */
  set: SetValue | null;
  expected: Expected | Partial<Record<Kind, Expected>>;
  on: readonly Kind[];
  families?: readonly Family[];
  /** Must be set before bind/connect (the child's before_bind / before_connect). */
  early?: boolean;
  /** The privilege setting it needs (root has it; a restricted container may not): EPERM then skips. */
  privileged?: string;
}

const TCP: readonly Kind[] = ['listener', 'client', 'accepted'];
const UDP: readonly Kind[] = ['udp'];
const ALL: readonly Kind[] = ['listener', 'client', 'accepted', 'udp'];

const RCVBUF = 50_000;
const SNDBUF = 40_000;
const KEEPIDLE = 77;
const KEEPCNT = 5;
const KEEPINTVL = 13;
const USER_TIMEOUT = 12_345;
const LINGER = 7;
const FASTOPEN_QUEUE = 5;
const DEFER_ACCEPT = 10;
/** Filled in from the namespace's sysctls: an allowed algorithm that is not the default. */
let congestion = 'reno';

/**
 * Option name → value the child sets → the value getsockopt must give back. Order matters
 * where the kernel couples options: IP_TOS resets SO_PRIORITY, so it is set first; the
 * buffers before SO_RCVLOWAT, which may otherwise grow SO_RCVBUF.
 */
function optionCases(): OptionCase[] {
  return [
    { name: 'SO_REUSEADDR', level: SOL_SOCKET, optname: 2, set: 1, expected: 1, on: ALL },
    { name: 'SO_REUSEPORT', level: SOL_SOCKET, optname: 15, set: 1, expected: 1, on: ALL },
    { name: 'SO_KEEPALIVE', level: SOL_SOCKET, optname: 9, set: 1, expected: 1, on: TCP },
    { name: 'TCP_KEEPIDLE', level: SOL_TCP, optname: 4, set: KEEPIDLE, expected: KEEPIDLE, on: TCP },
    { name: 'TCP_KEEPCNT', level: SOL_TCP, optname: 6, set: KEEPCNT, expected: KEEPCNT, on: TCP },
    { name: 'TCP_KEEPINTVL', level: SOL_TCP, optname: 5, set: KEEPINTVL, expected: KEEPINTVL, on: TCP },
    {
      name: 'TCP_USER_TIMEOUT',
      level: SOL_TCP,
      optname: 18,
      set: USER_TIMEOUT,
      expected: USER_TIMEOUT,
      on: TCP,
    },
    {
      name: 'SO_RCVBUF',
      level: SOL_SOCKET,
      optname: 8,
      set: RCVBUF,
      expected: bufferReadBack(RCVBUF),
      on: ALL,
    },
    {
      name: 'SO_SNDBUF',
      level: SOL_SOCKET,
      optname: 7,
      set: SNDBUF,
      expected: bufferReadBack(SNDBUF),
      on: ALL,
    },
    // SOCK_SNDBUF_LOCK | SOCK_RCVBUF_LOCK: what setting both buffers leaves.
    { name: 'SO_BUF_LOCK', level: SOL_SOCKET, optname: 72, set: null, expected: 3, on: ALL },
    // The kernel keeps timeouts in jiffies: 2.5 s and 1.5 s are whole jiffies at HZ 100,
    // 250 and 1000, so they read back exactly (1.25 s reads 1.252 s at HZ 250).
    {
      name: 'SO_RCVTIMEO',
      level: SOL_SOCKET,
      optname: SO_RCVTIMEO_OLD,
      set: ['timeval', 2, 500_000],
      expected: 2500,
      on: ALL,
    },
    {
      name: 'SO_SNDTIMEO',
      level: SOL_SOCKET,
      optname: SO_SNDTIMEO_OLD,
      set: ['timeval', 1, 500_000],
      expected: 1500,
      on: ALL,
    },
    {
      name: 'SO_LINGER',
      level: SOL_SOCKET,
      optname: 13,
      set: ['linger', 1, LINGER],
      expected: LINGER,
      on: ALL,
    },
    { name: 'TCP_NODELAY', level: SOL_TCP, optname: 1, set: 1, expected: 1, on: TCP },
    {
      name: 'TCP_FASTOPEN',
      level: SOL_TCP,
      optname: 23,
      set: FASTOPEN_QUEUE,
      expected: FASTOPEN_QUEUE,
      on: ['listener'],
    },
    {
      name: 'TCP_DEFER_ACCEPT',
      level: SOL_TCP,
      optname: 9,
      set: DEFER_ACCEPT,
      expected: deferAcceptReadBack(DEFER_ACCEPT),
      on: ['listener'],
    },
    { name: 'SO_BROADCAST', level: SOL_SOCKET, optname: 6, set: 1, expected: 1, on: UDP },

    { name: 'TCP_CONGESTION', level: SOL_TCP, optname: 13, set: congestion, expected: congestion, on: TCP },
    {
      name: 'TCP_MAXSEG',
      level: SOL_TCP,
      optname: 2,
      set: 1000,
      expected: {
        listener: 1000,
        // Once connected, getsockopt gives the connection's current MSS, not the request.
        client: { owner: 'int', why: 'the current MSS of a connection' },
        accepted: { owner: 'int', why: 'the current MSS of a connection' },
      },
      on: TCP,
    },
    { name: 'TCP_CORK', level: SOL_TCP, optname: 3, set: 1, expected: 1, on: TCP },
    { name: 'TCP_QUICKACK', level: SOL_TCP, optname: 12, set: 0, expected: 0, on: TCP },
    { name: 'TCP_NOTSENT_LOWAT', level: SOL_TCP, optname: 25, set: 16_384, expected: 16_384, on: TCP },
    { name: 'TCP_WINDOW_CLAMP', level: SOL_TCP, optname: 10, set: 20_000, expected: 20_000, on: TCP },
    { name: 'TCP_SYNCNT', level: SOL_TCP, optname: 7, set: 3, expected: 3, on: TCP },
    // Not the default tcp_fin_timeout (60).
    { name: 'TCP_LINGER2', level: SOL_TCP, optname: 8, set: 30, expected: 30, on: TCP },
    // tls is the one ULP a process can attach, on an established socket, with the tls module.
    { name: 'TCP_ULP', level: SOL_TCP, optname: 31, set: 'tls', expected: 'tls', on: ['client'] },
    { name: 'TCP_THIN_LINEAR_TIMEOUTS', level: SOL_TCP, optname: 16, set: 1, expected: 1, on: TCP },
    // Only before connect (TCP_CLOSE), hence only on the client.
    {
      name: 'TCP_FASTOPEN_CONNECT',
      level: SOL_TCP,
      optname: 30,
      set: 1,
      expected: 1,
      on: ['client'],
      early: true,
    },
    { name: 'TCP_TX_DELAY', level: SOL_TCP, optname: 37, set: 100, expected: 100, on: TCP },
    { name: 'TCP_INQ', level: SOL_TCP, optname: 36, set: 1, expected: 1, on: TCP },
    { name: 'TCP_SAVE_SYN', level: SOL_TCP, optname: 27, set: 1, expected: 1, on: TCP },
    { name: 'IP_TOS', level: SOL_IP, optname: 1, set: 0x10, expected: 0x10, on: ALL, families: [4] },
    { name: 'IPV6_TCLASS', level: SOL_IPV6, optname: 67, set: 0x20, expected: 0x20, on: ALL, families: [6] },
    { name: 'SO_PRIORITY', level: SOL_SOCKET, optname: 12, set: 5, expected: 5, on: ALL },
    {
      name: 'SO_MARK',
      level: SOL_SOCKET,
      optname: 36,
      set: 42,
      expected: 42,
      on: ALL,
      privileged: 'CAP_NET_ADMIN',
    },
    { name: 'SO_BINDTODEVICE', level: SOL_SOCKET, optname: 25, set: 'lo', expected: 'lo', on: ALL },
    { name: 'SO_RCVLOWAT', level: SOL_SOCKET, optname: 18, set: 100, expected: 100, on: ALL },
    // Linux refuses to set it (ENOPROTOOPT) and always reads 1.
    { name: 'SO_SNDLOWAT', level: SOL_SOCKET, optname: 19, set: null, expected: 1, on: ALL },
    {
      name: 'SO_BUSY_POLL',
      level: SOL_SOCKET,
      optname: 46,
      set: 50,
      expected: 50,
      on: ALL,
      privileged: 'CAP_NET_ADMIN above net.core.busy_read',
    },
    {
      name: 'SO_PREFER_BUSY_POLL',
      level: SOL_SOCKET,
      optname: 69,
      set: 1,
      expected: 1,
      on: ALL,
      privileged: 'CAP_NET_ADMIN',
    },
    {
      name: 'SO_INCOMING_CPU',
      level: SOL_SOCKET,
      optname: 49,
      set: 1,
      expected: { owner: 'int', why: 'every received packet rewrites it' },
      on: ALL,
    },
    { name: 'SO_ZEROCOPY', level: SOL_SOCKET, optname: 60, set: 1, expected: 1, on: ALL },
    // The two timestamp flags exclude each other on one socket: one per family.
    { name: 'SO_TIMESTAMP', level: SOL_SOCKET, optname: 29, set: 1, expected: 1, on: ALL, families: [4] },
    { name: 'SO_TIMESTAMPNS', level: SOL_SOCKET, optname: 35, set: 1, expected: 1, on: ALL, families: [6] },
    // SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
    { name: 'SO_TIMESTAMPING', level: SOL_SOCKET, optname: 37, set: 0x18, expected: 0x18, on: ALL },
    { name: 'SO_OOBINLINE', level: SOL_SOCKET, optname: 10, set: 1, expected: 1, on: TCP },
    { name: 'SO_DONTROUTE', level: SOL_SOCKET, optname: 5, set: 1, expected: 1, on: ALL },
    // CLOCK_TAI (11), SOF_TXTIME_REPORT_ERRORS (2)
    { name: 'SO_TXTIME', level: SOL_SOCKET, optname: 61, set: ['txtime', 11, 2], expected: '11/2', on: ALL },
    {
      name: 'SO_MAX_PACING_RATE',
      level: SOL_SOCKET,
      optname: 47,
      set: 1_000_000,
      expected: 1_000_000,
      on: ALL,
    },
    // Not the default (255 → the sysctl, 1).
    { name: 'SO_TXREHASH', level: SOL_SOCKET, optname: 74, set: 0, expected: 0, on: TCP },
    { name: 'IP_TTL', level: SOL_IP, optname: 2, set: 33, expected: 33, on: ALL, families: [4] },
    { name: 'IP_FREEBIND', level: SOL_IP, optname: 15, set: 1, expected: 1, on: ALL, families: [4] },
    {
      name: 'IP_TRANSPARENT',
      level: SOL_IP,
      optname: 19,
      set: 1,
      expected: 1,
      on: ALL,
      families: [4],
      privileged: 'CAP_NET_ADMIN or CAP_NET_RAW',
    },
    { name: 'IP_BIND_ADDRESS_NO_PORT', level: SOL_IP, optname: 24, set: 1, expected: 1, on: ALL },
    { name: 'IP_RECVERR', level: SOL_IP, optname: 11, set: 1, expected: 1, on: ALL, families: [4] },
    // IP_PMTUDISC_PROBE; the default is IP_PMTUDISC_WANT (1).
    { name: 'IP_MTU_DISCOVER', level: SOL_IP, optname: 10, set: 3, expected: 3, on: ALL, families: [4] },
    { name: 'IP_MINTTL', level: SOL_IP, optname: 21, set: 10, expected: 10, on: ALL, families: [4] },
    { name: 'IP_MULTICAST_TTL', level: SOL_IP, optname: 33, set: 7, expected: 7, on: UDP, families: [4] },
    { name: 'IP_MULTICAST_LOOP', level: SOL_IP, optname: 34, set: 0, expected: 0, on: UDP, families: [4] },
    { name: 'IP_MULTICAST_ALL', level: SOL_IP, optname: 49, set: 0, expected: 0, on: UDP, families: [4] },
    // Only before bind; an accepted socket inherits its listener's.
    {
      name: 'IPV6_V6ONLY',
      level: SOL_IPV6,
      optname: 26,
      set: 1,
      expected: 1,
      on: ['listener', 'client', 'udp'],
      families: [6],
      early: true,
    },
    {
      name: 'IPV6_UNICAST_HOPS',
      level: SOL_IPV6,
      optname: 16,
      set: 33,
      expected: 33,
      on: ALL,
      families: [6],
    },
    { name: 'IPV6_RECVERR', level: SOL_IPV6, optname: 25, set: 1, expected: 1, on: ALL, families: [6] },
    { name: 'IPV6_MTU_DISCOVER', level: SOL_IPV6, optname: 23, set: 3, expected: 3, on: ALL, families: [6] },
    { name: 'IPV6_FREEBIND', level: SOL_IPV6, optname: 78, set: 1, expected: 1, on: ALL, families: [6] },
    {
      name: 'IPV6_TRANSPARENT',
      level: SOL_IPV6,
      optname: 75,
      set: 1,
      expected: 1,
      on: ALL,
      families: [6],
      privileged: 'CAP_NET_ADMIN or CAP_NET_RAW',
    },
    {
      name: 'IPV6_MULTICAST_HOPS',
      level: SOL_IPV6,
      optname: 18,
      set: 7,
      expected: 7,
      on: UDP,
      families: [6],
    },
    {
      name: 'IPV6_MULTICAST_LOOP',
      level: SOL_IPV6,
      optname: 19,
      set: 0,
      expected: 0,
      on: UDP,
      families: [6],
    },
  ];
}

/** The knetstat Options column the cases above must produce, per kind of socket. */
function expectedKnetstatColumn(kind: Kind): string {
  const common = `SO_RCVBUF=${RCVBUF},SO_SNDBUF=${SNDBUF},SO_RCVTIMEO=2500ms,SO_SNDTIMEO=1500ms,SO_LINGER=${LINGER}s`;
  if (kind === 'udp') return `SO_REUSEADDR=1,SO_REUSEPORT=1,${common},SO_BROADCAST=1`;
  const tcp =
    `SO_REUSEADDR=1,SO_REUSEPORT=1,SO_KEEPALIVE=1,TCP_KEEPIDLE=${KEEPIDLE},TCP_KEEPCNT=${KEEPCNT},` +
    `TCP_KEEPINTVL=${KEEPINTVL},TCP_USER_TIMEOUT=${USER_TIMEOUT},${common},TCP_NODELAY=1`;
  return kind === 'listener'
    ? `${tcp},TCP_FASTOPEN=${FASTOPEN_QUEUE},TCP_DEFER_ACCEPT=${deferAcceptReadBack(DEFER_ACCEPT)}`
    : `${tcp},TCP_DEFER_ACCEPT=0`; // shown always, as the module did, even when 0
}

function commandOf(pid: number): string {
  return readFileSync(`/proc/${pid}/comm`, 'utf8').trimEnd();
}

function endpoint([address, port]: Address): string {
  return `${address}:${port === 0 ? '*' : port}`;
}

function textRowOf(output: string, socket: Described): TextRow | undefined {
  const rows = splitTables(output).flatMap((t) =>
    parseKnetstatTable(t, t.includes(' Stat Diag ') ? 'tcp' : 'udp'),
  );
  const remote = socket.remote ?? [socket.local[0].includes(':') ? '::' : '0.0.0.0', 0];
  return rows.find((r) => r.local === endpoint(socket.local) && r.remote === endpoint(remote));
}

function appliesTo(c: OptionCase, kind: Kind, family: Family): boolean {
  return c.on.includes(kind) && (c.families === undefined || c.families.includes(family));
}

function expectedFor(c: OptionCase, kind: Kind): Expected | undefined {
  const e = c.expected;
  if (e !== null && typeof e === 'object' && !('owner' in e))
    return (e as Partial<Record<Kind, Expected>>)[kind];
  return e as Expected;
}

function optionTriple(c: OptionCase): [number, number, SetValue] {
  return [c.level, c.optname, c.set as SetValue];
}

describe.skipIf(skip !== null)(
  `every catalogue option read back exactly${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let child: SocketChild;
    const cases = optionCases();
    /** id → the socket, for kind × family. */
    const sockets = new Map<string, { kind: Kind; family: Family; socket: Described }>();
    /** `${id} ${name}` → errno of a setsockopt that did not take. */
    const setErrors = new Map<string, string>();
    let cliRows: JsonRow[] = [];
    let libraryRows: SocketRecord[] = [];
    let text = '';
    let textAll = '';
    /** `${id} ${name}` → the owner's own getsockopt, read after the collections. */
    const ownerReads = new Map<string, { value?: number | string | null; errno?: string }>();

    beforeAll(async () => {
      child = await SocketChild.start();
      const allowed = child.sysctl('net/ipv4/tcp_allowed_congestion_control').split(/\s+/);
      const current = child.sysctl('net/ipv4/tcp_congestion_control');
      congestion = allowed.find((name) => name !== current) ?? 'reno';
      cases.splice(0, cases.length, ...optionCases());

      for (const family of [4, 6] as const) {
        const address = family === 4 ? '127.0.0.1' : '::1';
        const early = (kind: Kind) =>
          cases.filter((c) => c.early && appliesTo(c, kind, family)).map(optionTriple);
        const late = (kind: Kind) =>
          cases.filter((c) => !c.early && c.set !== null && appliesTo(c, kind, family));
        const setLate = async (id: string, kind: Kind) => {
          const list = late(kind);
          const { errors } = await child.run<{ errors: (string | null)[] }>({
            op: 'setsockopts',
            id,
            options: list.map(optionTriple),
          });
          errors.forEach((errno, i) => {
            if (errno !== null) setErrors.set(`${id} ${list[i]?.name}`, errno);
          });
        };

        const listener = `L${family}`;
        sockets.set(listener, {
          kind: 'listener',
          family,
          socket: await child.run<Described>({
            op: 'listen',
            id: listener,
            family,
            address,
            before_bind: early('listener'),
          }),
        });
        await setLate(listener, 'listener');

        // The established pair hangs off a plain listener, so that the accepted socket
        // carries what is set on it and nothing inherited.
        await child.run({ op: 'listen', id: `P${family}`, family, address });
        const pair = await child.run<Pair>({
          op: 'connect',
          id: `C${family}`,
          to: `P${family}`,
          accept_as: `A${family}`,
          before_connect: early('client'),
        });
        sockets.set(`C${family}`, { kind: 'client', family, socket: pair.client });
        sockets.set(`A${family}`, { kind: 'accepted', family, socket: pair.server });
        await setLate(`C${family}`, 'client');
        await setLate(`A${family}`, 'accepted');

        const udp = `U${family}`;
        sockets.set(udp, {
          kind: 'udp',
          family,
          socket: await child.run<Described>({
            op: 'udp',
            id: udp,
            family,
            address,
            before_bind: early('udp'),
          }),
        });
        await setLate(udp, 'udp');
      }

      const json = child.knetstat(['--json']);
      expect(json.status).toBe(0);
      cliRows = JSON.parse(json.stdout) as JsonRow[];
      libraryRows = child.collect().sockets;
      text = child.knetstat([]).stdout;
      textAll = child.knetstat(['-o', 'all']).stdout;

      for (const [id, { kind, family }] of sockets) {
        for (const c of cases) {
          if (!appliesTo(c, kind, family)) continue;
          const spec = OPTION_CATALOGUE.find((o) => o.name === c.name);
          const read = await child.run<{ value?: number | string | null; errno?: string }>({
            op: 'read_option',
            id,
            // The owner reads what knetstat reads: the catalogue's level and number.
            level: spec?.level ?? c.level,
            name: spec?.optname ?? c.optname,
            decoding: spec?.decoding ?? 'int',
          });
          ownerReads.set(`${id} ${c.name}`, read);
        }
      }
    });
    afterAll(async () => {
      await child?.stop();
    });

    it('the table covers the whole catalogue, with the UAPI numbers the catalogue uses', () => {
      expect(cases.map((c) => c.name).sort()).toEqual(OPTION_CATALOGUE.map((o) => o.name).sort());
      for (const c of cases) {
        const spec = OPTION_CATALOGUE.find((o) => o.name === c.name);
        expect([spec?.name, spec?.level]).toEqual([c.name, c.level]);
        // The timeouts are set through the old numbers and read through the new ones.
        if (c.name === 'SO_RCVTIMEO') expect(spec?.optname).toBe(66);
        else if (c.name === 'SO_SNDTIMEO') expect(spec?.optname).toBe(67);
        else expect([c.name, spec?.optname]).toEqual([c.name, c.optname]);
      }
    });

    it.for(optionCases().map((c) => c.name))('%s', (name, context) => {
      const c = cases.find((x) => x.name === name) as OptionCase;
      let checked = 0;
      const skipped: string[] = [];
      for (const [id, { kind, family, socket }] of sockets) {
        if (!appliesTo(c, kind, family)) continue;
        const where = `${name} on ${kind} IPv${family} (${id})`;
        const fromCli = cliRows.find((r) => r.inode === socket.inode);
        const fromLibrary = libraryRows.find((r) => r.inode === socket.inode);
        expect(fromCli?.options, where).not.toBeNull();
        expect(fromLibrary?.options, where).not.toBeNull();
        const cliValue = fromCli?.options?.[name];
        const libraryValue = fromLibrary?.options?.[name];
        const owner = ownerReads.get(`${id} ${name}`);
        const setErrno = setErrors.get(`${id} ${name}`);
        if (setErrno !== undefined) {
          // The kernel lacks the option or the feature (module, config), or this root lacks
          // the capability: what we read must still be what the owner reads, and an option
          // getsockopt refuses is absent.
          const tolerated = ['ENOPROTOOPT', 'ENOENT', 'EOPNOTSUPP', ...(c.privileged ? ['EPERM'] : [])];
          expect(tolerated, `${where}: setsockopt ${setErrno}`).toContain(setErrno);
          if (owner?.errno) expect(cliValue, where).toBeUndefined();
          else expect(cliValue, where).toEqual(owner?.value);
          expect(libraryValue, where).toEqual(cliValue);
          const needs = setErrno === 'EPERM' ? `, needs ${c.privileged}` : '';
          skipped.push(`${kind} IPv${family}: setsockopt gave ${setErrno}${needs}`);
          continue;
        }
        const expected = expectedFor(c, kind);
        const want = expected !== null && typeof expected === 'object' ? owner?.value : expected;
        expect(owner?.errno, where).toBeUndefined();
        expect(cliValue, where).toEqual(want);
        expect(libraryValue, where).toEqual(want);
        checked++;
      }
      if (skipped.length > 0 && checked === 0) {
        context.skip(
          `${name} cannot be set on this kernel (${skipped.join('; ')}); read-back matched the owner's`,
        );
      }
      expect(checked).toBeGreaterThan(0);
    });

    it('the text shows knetstat’s options with their units, in knetstat’s order', () => {
      for (const [id, { kind, socket }] of sockets) {
        const row = textRowOf(text, socket);
        expect(row, id).toBeDefined();
        expect(row?.options, id).toBe(expectedKnetstatColumn(kind));
        if (kind !== 'udp') expect(row?.diag, id).toBe('');
      }
    });

    it('-o all appends the other options after knetstat’s, in catalogue order', () => {
      const extended = OPTION_CATALOGUE.filter((o) => o.set === 'extended').map((o) => o.name);
      for (const [id, { kind, socket }] of sockets) {
        const row = textRowOf(textAll, socket);
        const options = cliRows.find((r) => r.inode === socket.inode)?.options ?? {};
        const rest = extended
          .filter((name) => options[name] !== undefined && options[name] !== '')
          .map((name) => `${name}=${options[name] === null ? 'off' : options[name]}`);
        expect(rest.length, id).toBeGreaterThan(10);
        expect(row?.options, id).toBe(`${expectedKnetstatColumn(kind)},${rest.join(',')}`);
      }
    });
  },
);

describe.skipIf(skip !== null)(`what the Options column shows${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  beforeAll(async () => {
    child = await SocketChild.start();
  });
  afterAll(async () => {
    await child?.stop();
  });

  it('accepted sockets show what they inherit from their listener', async () => {
    for (const family of [4, 6] as const) {
      const address = family === 4 ? '127.0.0.1' : '::1';
      const id = `I${family}`;
      await child.run({
        op: 'listen',
        id,
        family,
        address,
        options: [
          [SOL_SOCKET, 9, 1], // SO_KEEPALIVE
          [SOL_TCP, 4, KEEPIDLE], // TCP_KEEPIDLE
          [SOL_TCP, 1, 1], // TCP_NODELAY
          [SOL_SOCKET, 8, RCVBUF], // SO_RCVBUF, and with it the receive buffer lock
          [SOL_SOCKET, 13, ['linger', 1, LINGER]], // SO_LINGER
        ],
      });
      const { server, client } = await child.run<Pair>({
        op: 'connect',
        id: `IC${family}`,
        to: id,
        accept_as: `IA${family}`,
      });
      const output = child.knetstat([family === 4 ? 'tcp' : 'tcp6']).stdout;
      expect(textRowOf(output, server)?.options).toBe(
        `SO_REUSEADDR=0,SO_REUSEPORT=0,SO_KEEPALIVE=1,TCP_KEEPIDLE=${KEEPIDLE},SO_RCVBUF=${RCVBUF},SO_LINGER=${LINGER}s,TCP_NODELAY=1,TCP_DEFER_ACCEPT=0`,
      );
      // The client end has none of it.
      expect(textRowOf(output, client)?.options).toBe(
        'SO_REUSEADDR=0,SO_REUSEPORT=0,SO_KEEPALIVE=0,TCP_NODELAY=0,TCP_DEFER_ACCEPT=0',
      );
      const json = JSON.parse(child.knetstat(['--json']).stdout) as JsonRow[];
      const accepted = json.find((r) => r.inode === server.inode)?.options;
      expect(accepted?.SO_BUF_LOCK).toBe(2); // SOCK_RCVBUF_LOCK only
      expect(accepted?.SO_RCVBUF).toBe(bufferReadBack(RCVBUF));
    }
  });

  it('SO_RCVBUF set explicitly shows, halved; one left to the kernel does not', async () => {
    const set = await child.run<Described>({ op: 'udp', id: 'RB1', options: [[SOL_SOCKET, 8, RCVBUF]] });
    const left = await child.run<Described>({ op: 'udp', id: 'RB0' });
    const output = child.knetstat(['udp']).stdout;
    expect(textRowOf(output, set)?.options).toBe(
      `SO_REUSEADDR=0,SO_REUSEPORT=0,SO_RCVBUF=${RCVBUF},SO_BROADCAST=0`,
    );
    expect(textRowOf(output, left)?.options).toBe('SO_REUSEADDR=0,SO_REUSEPORT=0,SO_BROADCAST=0');
    // The value is there all the same, for --json.
    const json = JSON.parse(child.knetstat(['--json', 'udp']).stdout) as JsonRow[];
    const leftOptions = json.find((r) => r.inode === left.inode)?.options;
    expect(leftOptions?.SO_BUF_LOCK).toBe(0);
    expect(leftOptions?.SO_RCVBUF).toBeGreaterThan(0);
  });

  it('keepalive timings show only where they differ from this namespace’s sysctls', async () => {
    // A non-default sysctl in the child's namespace, so that a default (7200) is an override.
    child.setSysctl('net/ipv4/tcp_keepalive_time', 600);
    const intvl = Number(child.sysctl('net/ipv4/tcp_keepalive_intvl'));
    const probes = Number(child.sysctl('net/ipv4/tcp_keepalive_probes'));
    const same = await child.run<Described>({
      op: 'listen',
      id: 'K1',
      options: [
        [SOL_TCP, 4, 600],
        [SOL_TCP, 5, intvl],
        [SOL_TCP, 6, probes],
      ],
    });
    const other = await child.run<Described>({
      op: 'listen',
      id: 'K2',
      options: [
        [SOL_TCP, 4, 7200],
        [SOL_TCP, 5, intvl + 1],
        [SOL_TCP, 6, probes + 1],
      ],
    });
    const untouched = await child.run<Described>({ op: 'listen', id: 'K0' });
    const output = child.knetstat(['tcp']).stdout;
    // Listeners: TCP_FASTOPEN and TCP_DEFER_ACCEPT always show there, as in the module.
    const plain =
      'SO_REUSEADDR=0,SO_REUSEPORT=0,SO_KEEPALIVE=0,TCP_NODELAY=0,TCP_FASTOPEN=0,TCP_DEFER_ACCEPT=0';
    expect(textRowOf(output, same)?.options).toBe(plain);
    expect(textRowOf(output, untouched)?.options).toBe(plain);
    expect(textRowOf(output, other)?.options).toBe(
      `SO_REUSEADDR=0,SO_REUSEPORT=0,SO_KEEPALIVE=0,TCP_KEEPIDLE=7200,TCP_KEEPCNT=${probes + 1},TCP_KEEPINTVL=${intvl + 1},TCP_NODELAY=0,TCP_FASTOPEN=0,TCP_DEFER_ACCEPT=0`,
    );
    // JSON has the effective values: the untouched socket follows the namespace's sysctl.
    const json = JSON.parse(child.knetstat(['--json', 'tcp']).stdout) as JsonRow[];
    expect(json.find((r) => r.inode === untouched.inode)?.options?.TCP_KEEPIDLE).toBe(600);
    expect(json.find((r) => r.inode === same.inode)?.options?.TCP_KEEPIDLE).toBe(600);
  });
});

describe.skipIf(skip !== null)(
  `an inspection leaves the inspected alone${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let child: SocketChild;
    beforeAll(async () => {
      child = await SocketChild.start();
    });
    afterAll(async () => {
      await child?.stop();
    });

    it('a pending SO_ERROR is still pending after a collection, and no file status flag changed', async () => {
      // Connected to a port nobody listens on (a fresh namespace): the ICMP port unreachable
      // that answers a send leaves ECONNREFUSED pending in SO_ERROR. No IP_RECVERR, so that
      // POLLERR means exactly that (with it, a queued extended error would raise POLLERR too).
      const refused = await child.run<Described>({ op: 'udp', id: 'E', connect: ['127.0.0.1', 9] });
      let pending = false;
      for (let i = 0; i < 100 && !pending; i++) {
        // poll() reports the error without reading (and so without clearing) it.
        pending = (await child.run<{ err: boolean }>({ op: 'poll', id: 'E' })).err;
        if (pending) break;
        // ICMP errors are rate-limited: send again until one comes back. A send that meets
        // the error consumes it (and fails); the next send raises a new one.
        await child.run({ op: 'send', id: 'E', bytes: 10 }).catch(() => undefined);
        await sleep(10);
      }
      expect(pending).toBe(true);
      await child.run({ op: 'listen', id: 'L' });
      await child.run({ op: 'connect', id: 'C', to: 'L', accept_as: 'A' });
      const ids = ['E', 'L', 'C', 'A'];
      const info = async () => {
        const out: Described[] = [];
        for (const id of ids) out.push(await child.run<Described>({ op: 'info', id }));
        return out;
      };
      const before = await info();

      const json = child.knetstat(['--json']);
      expect(json.status).toBe(0);
      const rows = JSON.parse(json.stdout) as JsonRow[];
      // The sockets were really inspected: their options were read.
      for (const socket of before) expect(rows.find((r) => r.inode === socket.inode)?.options).not.toBeNull();
      expect(rows.find((r) => r.inode === refused.inode)?.options?.IP_RECVERR).toBe(0);
      child.collect();

      const after = await info();
      expect(after.map((s) => s.flags)).toEqual(before.map((s) => s.flags));
      // Only now does the owner read SO_ERROR; a second read shows that reading clears it,
      // so had a collection read it, the first would already be 0.
      const first = await child.run<{ value: number }>({
        op: 'read_option',
        id: 'E',
        level: SOL_SOCKET,
        name: SO_ERROR,
      });
      const second = await child.run<{ value: number }>({
        op: 'read_option',
        id: 'E',
        level: SOL_SOCKET,
        name: SO_ERROR,
      });
      expect(first.value).toBe(ECONNREFUSED);
      expect(second.value).toBe(0);
    });
  },
);

describe.skipIf(skip !== null)(
  `the collector's own file descriptors${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let child: SocketChild;
    beforeAll(async () => {
      // In this process's namespace, so that collectSockets can run here, in-process.
      child = await SocketChild.start({ sharedNetns: true });
    });
    afterAll(async () => {
      await child?.stop();
    });

    it('holds no more fds after a collection than before (pidfds and duplicates all closed)', async () => {
      const listener = await child.run<Described>({ op: 'listen', id: 'L', options: [[SOL_SOCKET, 9, 1]] });
      const udp = await child.run<Described>({ op: 'udp', id: 'U' });
      const fds = () => readdirSync('/proc/self/fd').sort();
      const before = fds();
      const collection = collectSockets({ tables: ['tcp', 'udp'] });
      const after = fds();
      expect(after).toEqual(before);
      // And the collection did open the child's sockets: their options were read.
      const l = collection.sockets.find((s) => s.inode === listener.inode);
      expect(l?.options?.SO_KEEPALIVE).toBe(1);
      expect(l?.processes).toContainEqual({ pid: child.pid, fd: listener.fd, command: commandOf(child.pid) });
      expect(collection.sockets.find((s) => s.inode === udp.inode)?.options).not.toBeNull();
    });
  },
);

const UNPRIVILEGED = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

/** Why knetstat cannot run as uid 65534 here (e.g. the checkout is not readable), or null. */
function unprivilegedUnavailableReason(): string | null {
  if (skip) return skip;
  const probe = spawnSync(
    UNPRIVILEGED[0] as string,
    [...UNPRIVILEGED.slice(1), process.execPath, CLI, '--version'],
    {
      encoding: 'utf8',
    },
  );
  if (probe.status !== 0) {
    return `uid 65534 cannot run ${CLI} (${(probe.stderr || probe.error?.message || '').trim()}); the checkout must be readable by others`;
  }
  // The second socket child runs as uid 65534 too, with the python3 that user finds.
  const python = spawnSync(
    UNPRIVILEGED[0] as string,
    [...UNPRIVILEGED.slice(1), 'sh', '-c', 'exec python3 -c pass'],
    {
      encoding: 'utf8',
    },
  );
  if (python.status !== 0) return `uid 65534 cannot run python3 (${python.stderr.trim()})`;
  return null;
}

const unprivilegedSkip = unprivilegedUnavailableReason();

describe.skipIf(unprivilegedSkip !== null)(
  `a collection by an unprivileged user${unprivilegedSkip ? ` (skipped: ${unprivilegedSkip})` : ''}`,
  () => {
    let rootChild: SocketChild;
    let ownChild: SocketChild;
    const rootSockets: Described[] = [];
    let ownSocket: Described;
    beforeAll(async () => {
      rootChild = await SocketChild.start();
      // Another child in the same namespace, running as the unprivileged user itself.
      ownChild = await SocketChild.start({ netnsOf: rootChild.pid, wrap: UNPRIVILEGED });
      rootSockets.push(
        await rootChild.run<Described>({ op: 'listen', id: 'L', options: [[SOL_SOCKET, 9, 1]] }),
        await rootChild.run<Described>({ op: 'udp', id: 'U', options: [[SOL_SOCKET, 6, 1]] }),
      );
      const pair = await rootChild.run<Pair>({ op: 'connect', id: 'C', to: 'L', accept_as: 'A' });
      rootSockets.push(pair.client, pair.server);
      ownSocket = await ownChild.run<Described>({ op: 'listen', id: 'O', options: [[SOL_TCP, 1, 1]] });
    });
    afterAll(async () => {
      await ownChild?.stop();
      await rootChild?.stop();
    });

    it('succeeds, marks root’s sockets unreadable with the reason, invents nothing, reads its own', () => {
      const json = rootChild.knetstat(['--json'], { wrap: UNPRIVILEGED });
      expect(json.status).toBe(0);
      const rows = JSON.parse(json.stdout) as JsonRow[];
      for (const socket of rootSockets) {
        const row = rows.find((r) => r.inode === socket.inode);
        expect(row, socket.id).toBeDefined();
        expect(row?.options).toBeNull();
        expect(row?.processes).toEqual([]);
        expect(row?.optionsError).toMatch(/may not inspect|not permitted/);
      }
      const own = rows.find((r) => r.inode === ownSocket.inode);
      expect(own?.processes).toEqual([
        { pid: ownChild.pid, fd: ownSocket.fd, command: commandOf(ownChild.pid) },
      ]);
      expect(own?.options?.TCP_NODELAY).toBe(1);
      // The one summary line, last, with the count and what would help.
      const lines = json.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(json.stderr.endsWith('\n')).toBe(true);
      expect(lines[0]).toMatch(
        new RegExp(
          `^knetstat: options unknown for ${rootSockets.length} sockets: .*run as root or grant CAP_SYS_PTRACE`,
        ),
      );
    });

    it('the text shows a marker in place of the options, and the same rows as root sees', () => {
      const text = rootChild.knetstat([], { wrap: UNPRIVILEGED });
      expect(text.status).toBe(0);
      for (const socket of rootSockets) expect(textRowOf(text.stdout, socket)?.options).toBe('[no owner]');
      expect(textRowOf(text.stdout, ownSocket)?.options).toBe(
        'SO_REUSEADDR=0,SO_REUSEPORT=0,SO_KEEPALIVE=0,TCP_NODELAY=1,TCP_FASTOPEN=0,TCP_DEFER_ACCEPT=0',
      );
      expect(text.stderr.trimEnd().split('\n')).toHaveLength(1);
      // Everything but the Options column is what root sees.
      const asRoot = rootChild.knetstat([]).stdout;
      const withoutOptions = (output: string) =>
        splitTables(output)
          .flatMap((t) => parseKnetstatTable(t, t.includes(' Stat Diag ') ? 'tcp' : 'udp'))
          .map((r) => JSON.stringify({ ...r, options: '', line: '' }))
          .sort();
      expect(withoutOptions(text.stdout)).toEqual(withoutOptions(asRoot));
    });
  },
);
