/**
 * The option catalogue: the only list of what knetstat passes to getsockopt. Every
 * entry is side-effect free to read and carries no secret; a test asserts that the
 * options which are not (SO_ERROR, TCP_ZEROCOPY_RECEIVE, TCP_SAVED_SYN, SO_PEERPIDFD,
 * TCP_FASTOPEN_KEY, TCP_AO_GET_KEYS, SO_PEERSEC) are absent. Numbers are the Linux
 * UAPI's (asm-generic/socket.h, linux/tcp.h, linux/in.h, linux/in6.h), which are the
 * same on every 64-bit architecture we run on.
 */
import type { Family, Protocol } from '../model.js';
import { INET_DIAG_SOCKOPT_BITS as SOCKOPT_BIT } from '../netlink/inet-diag.js';

export const SOL_SOCKET = 1;
export const SOL_IP = 0;
export const SOL_TCP = 6;
export const SOL_IPV6 = 41;

/** How the bytes getsockopt returns become a value. */
export type OptionDecoding =
  | 'int' // a C int, as the kernel returns it
  | 'timeval' // struct __kernel_sock_timeval → milliseconds, 0 = no timeout
  | 'linger' // struct linger → seconds, null when off
  | 'string' // NUL-terminated name, '' when unset
  | 'u64' // unsigned long
  | 'txtime'; // struct sock_txtime → "clockid/flags"

export type OptionUnit = 'flag' | 'count' | 'bytes' | 'ms' | 's' | 'us' | 'name' | 'value' | 'bytes/s';

/**
 * An option whose value the sock_diag dump already carries, copied from the very kernel
 * variable that getsockopt reads (the comment at each entry cites both). The reader takes
 * such a value from the dump instead of making the call; where the dump lacks it (an
 * older kernel, no CAP_NET_ADMIN for the mark, an established IPv6 socket for V6ONLY, the
 * /proc/net source) it calls getsockopt as for any other entry. Either way the option is
 * only reported for a socket whose owner's fd was duplicated and checked, or (the BPF
 * pass) one knetstat could have duplicated: an owner visible and inspectable.
 */
export type SockDiagSource =
  /** INET_DIAG_SKMEMINFO: SK_MEMINFO_RCVBUF / _SNDBUF. */
  | { fact: 'rcvbuf' | 'sndbuf' }
  /** INET_DIAG_TOS, _TCLASS, _SKV6ONLY, _MARK, _CONG. */
  | { fact: 'tos' | 'tclass' | 'v6only' | 'mark' | 'congestion' }
  /** A bit of INET_DIAG_SOCKOPT (see INET_DIAG_SOCKOPT_BITS). */
  | { fact: 'inetFlags'; bit: number }
  /** idiag_if: when 0 the socket is bound to no device and getsockopt returns ''; else it is read. */
  | { fact: 'boundInterface' };

export interface OptionSpec {
  name: string;
  level: number;
  optname: number;
  decoding: OptionDecoding;
  unit: OptionUnit;
  protocols: readonly Protocol[];
  /** Omitted: both families. */
  families?: readonly Family[];
  /** Read on listening sockets only (the kernel answers others with a meaningless 0). */
  listenOnly?: boolean;
  /** Part of the kernel module's Options column, or one of our extensions. */
  set: 'knetstat' | 'extended';
  /** Taken from the sock_diag dump when it carries the value; getsockopt otherwise. */
  sockDiag?: SockDiagSource;
  /** One line for the README and --help. */
  meaning: string;
}

const TCP: readonly Protocol[] = ['tcp'];
const UDP: readonly Protocol[] = ['udp'];
const BOTH: readonly Protocol[] = ['tcp', 'udp'];
const V4: readonly Family[] = [4];
const V6: readonly Family[] = [6];

function option(
  name: string,
  level: number,
  optname: number,
  protocols: readonly Protocol[],
  unit: OptionUnit,
  meaning: string,
  extra: Partial<OptionSpec> = {},
): OptionSpec {
  return { name, level, optname, decoding: 'int', unit, protocols, set: 'extended', meaning, ...extra };
}

const knetstat = { set: 'knetstat' } as const;

export const OPTION_CATALOGUE: readonly OptionSpec[] = [
  // The kernel module's set, in its display order (SO_BUF_LOCK is read to decide whether
  // SO_RCVBUF/SO_SNDBUF were set explicitly).
  option(
    'SO_REUSEADDR',
    SOL_SOCKET,
    2,
    BOTH,
    'flag',
    'bind may reuse a local address (0, 1, or 2 = forced)',
    knetstat,
  ),
  option(
    'SO_REUSEPORT',
    SOL_SOCKET,
    15,
    BOTH,
    'flag',
    'several sockets may bind the same address and port',
    knetstat,
  ),
  option('SO_KEEPALIVE', SOL_SOCKET, 9, TCP, 'flag', 'send keepalive probes on an idle connection', knetstat),
  option(
    'TCP_KEEPIDLE',
    SOL_TCP,
    4,
    TCP,
    's',
    'idle time before the first keepalive probe (effective)',
    knetstat,
  ),
  option(
    'TCP_KEEPCNT',
    SOL_TCP,
    6,
    TCP,
    'count',
    'unanswered probes before the connection is dropped (effective)',
    knetstat,
  ),
  option('TCP_KEEPINTVL', SOL_TCP, 5, TCP, 's', 'time between keepalive probes (effective)', knetstat),
  option(
    'TCP_USER_TIMEOUT',
    SOL_TCP,
    18,
    TCP,
    'ms',
    'how long sent data may stay unacknowledged; 0 = system default',
    knetstat,
  ),
  option(
    'SO_BUF_LOCK',
    SOL_SOCKET,
    72,
    BOTH,
    'value',
    'which buffer sizes the application fixed: 1 = send, 2 = receive (Linux 5.14)',
    knetstat,
  ),
  // sock_getsockopt and sk_get_meminfo (INET_DIAG_SKMEMINFO) both read READ_ONCE(sk->sk_rcvbuf).
  option('SO_RCVBUF', SOL_SOCKET, 8, BOTH, 'bytes', 'receive buffer size, as the kernel doubled it', {
    ...knetstat,
    sockDiag: { fact: 'rcvbuf' },
  }),
  // Both read READ_ONCE(sk->sk_sndbuf).
  option('SO_SNDBUF', SOL_SOCKET, 7, BOTH, 'bytes', 'send buffer size, as the kernel doubled it', {
    ...knetstat,
    sockDiag: { fact: 'sndbuf' },
  }),
  option('SO_RCVTIMEO', SOL_SOCKET, 66, BOTH, 'ms', 'timeout of blocking receives; 0 = none', {
    ...knetstat,
    decoding: 'timeval',
  }),
  option('SO_SNDTIMEO', SOL_SOCKET, 67, BOTH, 'ms', 'timeout of blocking sends; 0 = none', {
    ...knetstat,
    decoding: 'timeval',
  }),
  option('SO_LINGER', SOL_SOCKET, 13, BOTH, 's', 'close() waits this long for unsent data; null = off', {
    ...knetstat,
    decoding: 'linger',
  }),
  option(
    'TCP_NODELAY',
    SOL_TCP,
    1,
    TCP,
    'flag',
    'Nagle’s algorithm off: small writes are sent at once',
    knetstat,
  ),
  option('TCP_FASTOPEN', SOL_TCP, 23, TCP, 'count', 'TCP Fast Open queue length of a listener; 0 = off', {
    ...knetstat,
    listenOnly: true,
  }),
  option(
    'TCP_DEFER_ACCEPT',
    SOL_TCP,
    9,
    TCP,
    's',
    'accept() waits this long for data after the handshake; 0 = off',
    knetstat,
  ),
  option('SO_BROADCAST', SOL_SOCKET, 6, UDP, 'flag', 'may send to broadcast addresses', knetstat),

  // Beyond the module.
  // Both copy icsk->icsk_ca_ops->name.
  option('TCP_CONGESTION', SOL_TCP, 13, TCP, 'name', 'congestion control algorithm', {
    decoding: 'string',
    sockDiag: { fact: 'congestion' },
  }),
  option(
    'TCP_MAXSEG',
    SOL_TCP,
    2,
    TCP,
    'bytes',
    'maximum segment size (the user’s on a listener or unconnected socket, else the current one)',
  ),
  option('TCP_CORK', SOL_TCP, 3, TCP, 'flag', 'partial frames are held back until uncorked'),
  option('TCP_QUICKACK', SOL_TCP, 12, TCP, 'flag', 'ACKs are sent at once rather than delayed (currently)'),
  option(
    'TCP_NOTSENT_LOWAT',
    SOL_TCP,
    25,
    TCP,
    'bytes',
    'writable only while unsent data is below this; 0 = system default',
  ),
  option('TCP_WINDOW_CLAMP', SOL_TCP, 10, TCP, 'bytes', 'bound on the advertised window'),
  option('TCP_SYNCNT', SOL_TCP, 7, TCP, 'count', 'SYN retransmits before connect gives up (effective)'),
  option(
    'TCP_LINGER2',
    SOL_TCP,
    8,
    TCP,
    's',
    'FIN_WAIT2 lifetime of orphaned sockets (effective); -1 = none',
  ),
  option('TCP_ULP', SOL_TCP, 31, TCP, 'name', 'upper layer protocol, e.g. tls; empty = none', {
    decoding: 'string',
  }),
  option('TCP_THIN_LINEAR_TIMEOUTS', SOL_TCP, 16, TCP, 'flag', 'linear timeouts for thin streams'),
  option('TCP_FASTOPEN_CONNECT', SOL_TCP, 30, TCP, 'flag', 'connect() uses TCP Fast Open (client side)'),
  option('TCP_TX_DELAY', SOL_TCP, 37, TCP, 'us', 'artificial transmit delay, for testing; 0 = none'),
  option('TCP_INQ', SOL_TCP, 36, TCP, 'flag', 'recvmsg() reports the bytes left in the queue'),
  option(
    'TCP_SAVE_SYN',
    SOL_TCP,
    27,
    TCP,
    'flag',
    'a listener keeps the SYN headers (reading them is not done: it frees them)',
  ),
  option('SO_PRIORITY', SOL_SOCKET, 12, BOTH, 'value', 'queueing priority of outgoing packets'),
  // Both read READ_ONCE(sk->sk_mark); the dump carries it only to a reader with CAP_NET_ADMIN.
  option('SO_MARK', SOL_SOCKET, 36, BOTH, 'value', 'firewall mark of outgoing packets', {
    sockDiag: { fact: 'mark' },
  }),
  // sock_getbindtodevice returns '' when sk_bound_dev_if is 0, which idiag_if reports.
  option('SO_BINDTODEVICE', SOL_SOCKET, 25, BOTH, 'name', 'bound to this network interface; empty = none', {
    decoding: 'string',
    sockDiag: { fact: 'boundInterface' },
  }),
  option('SO_RCVLOWAT', SOL_SOCKET, 18, BOTH, 'bytes', 'receive low-water mark'),
  option('SO_SNDLOWAT', SOL_SOCKET, 19, BOTH, 'bytes', 'send low-water mark (fixed at 1 on Linux)'),
  option('SO_BUSY_POLL', SOL_SOCKET, 46, BOTH, 'us', 'busy-poll time for blocking receives; 0 = off'),
  option('SO_PREFER_BUSY_POLL', SOL_SOCKET, 69, BOTH, 'flag', 'prefer busy polling over interrupts'),
  option(
    'SO_INCOMING_CPU',
    SOL_SOCKET,
    49,
    BOTH,
    'value',
    'CPU that last handled the socket’s packets; -1 = none',
  ),
  option('SO_ZEROCOPY', SOL_SOCKET, 60, BOTH, 'flag', 'MSG_ZEROCOPY sends allowed'),
  option('SO_TIMESTAMP', SOL_SOCKET, 29, BOTH, 'flag', 'receive timestamps in microseconds (SCM_TIMESTAMP)'),
  option(
    'SO_TIMESTAMPNS',
    SOL_SOCKET,
    35,
    BOTH,
    'flag',
    'receive timestamps in nanoseconds (SCM_TIMESTAMPNS)',
  ),
  option('SO_TIMESTAMPING', SOL_SOCKET, 37, BOTH, 'value', 'SOF_TIMESTAMPING_* flags'),
  option('SO_OOBINLINE', SOL_SOCKET, 10, TCP, 'flag', 'urgent data is read inline'),
  option(
    'SO_DONTROUTE',
    SOL_SOCKET,
    5,
    BOTH,
    'flag',
    'bypass routing: send to directly connected hosts only',
  ),
  option('SO_TXTIME', SOL_SOCKET, 61, BOTH, 'value', 'SCM_TXTIME clock id and flags, as "clockid/flags"', {
    decoding: 'txtime',
  }),
  option(
    'SO_MAX_PACING_RATE',
    SOL_SOCKET,
    47,
    BOTH,
    'bytes/s',
    'pacing rate cap; 18446744073709551615 = none',
    { decoding: 'u64' },
  ),
  option(
    'SO_TXREHASH',
    SOL_SOCKET,
    74,
    TCP,
    'value',
    'rehash the flow label on retransmits: 0 off, 1 on, 255 system default',
  ),
  // Both read READ_ONCE(inet->tos).
  option('IP_TOS', SOL_IP, 1, BOTH, 'value', 'type of service / DSCP byte of outgoing packets', {
    families: V4,
    sockDiag: { fact: 'tos' },
  }),
  option('IP_TTL', SOL_IP, 2, BOTH, 'count', 'time to live of outgoing packets (effective)', {
    families: V4,
  }),
  // The IP_* flags below, IPV6_FREEBIND, IPV6_TRANSPARENT and INET_DIAG_SOCKOPT test the
  // same inet flag bits (inet_test_bit(FREEBIND, sk) etc.; inet->freebind before 6.6).
  option('IP_FREEBIND', SOL_IP, 15, BOTH, 'flag', 'may bind to an address not (yet) on the host', {
    families: V4,
    sockDiag: { fact: 'inetFlags', bit: SOCKOPT_BIT.freebind },
  }),
  option('IP_TRANSPARENT', SOL_IP, 19, BOTH, 'flag', 'transparent proxying (TPROXY)', {
    families: V4,
    sockDiag: { fact: 'inetFlags', bit: SOCKOPT_BIT.transparent },
  }),
  // An IPv6 socket answers SOL_IP from ip_getsockopt too: the same bit.
  option(
    'IP_BIND_ADDRESS_NO_PORT',
    SOL_IP,
    24,
    BOTH,
    'flag',
    'bind() defers choosing the port to connect()',
    { sockDiag: { fact: 'inetFlags', bit: SOCKOPT_BIT.bindAddressNoPort } },
  ),
  // IPV6_RECVERR is another bit, which the dump does not carry.
  option('IP_RECVERR', SOL_IP, 11, BOTH, 'flag', 'extended errors are queued for MSG_ERRQUEUE', {
    families: V4,
    sockDiag: { fact: 'inetFlags', bit: SOCKOPT_BIT.recverr },
  }),
  option(
    'IP_MTU_DISCOVER',
    SOL_IP,
    10,
    BOTH,
    'value',
    'path MTU discovery mode: 0 dont, 1 want, 2 do, 3 probe, 4 interface, 5 omit',
    { families: V4 },
  ),
  option('IP_MINTTL', SOL_IP, 21, BOTH, 'count', 'packets with a lower TTL are dropped (RFC 5082); 0 = off', {
    families: V4,
  }),
  option('IP_MULTICAST_TTL', SOL_IP, 33, UDP, 'count', 'TTL of outgoing multicast packets', { families: V4 }),
  option(
    'IP_MULTICAST_LOOP',
    SOL_IP,
    34,
    UDP,
    'flag',
    'multicast packets are looped back to local listeners',
    { families: V4, sockDiag: { fact: 'inetFlags', bit: SOCKOPT_BIT.mcLoop } },
  ),
  option('IP_MULTICAST_ALL', SOL_IP, 49, UDP, 'flag', 'receive multicast for all groups joined on the host', {
    families: V4,
    sockDiag: { fact: 'inetFlags', bit: SOCKOPT_BIT.mcAll },
  }),
  // Both read sk->sk_ipv6only; the dump carries it for listening and closed sockets only.
  option('IPV6_V6ONLY', SOL_IPV6, 26, BOTH, 'flag', 'IPv6 only: no IPv4-mapped traffic', {
    families: V6,
    sockDiag: { fact: 'v6only' },
  }),
  // Both read np->tclass.
  option('IPV6_TCLASS', SOL_IPV6, 67, BOTH, 'value', 'traffic class of outgoing packets', {
    families: V6,
    sockDiag: { fact: 'tclass' },
  }),
  option(
    'IPV6_UNICAST_HOPS',
    SOL_IPV6,
    16,
    BOTH,
    'count',
    'hop limit of outgoing unicast packets (effective)',
    { families: V6 },
  ),
  option('IPV6_RECVERR', SOL_IPV6, 25, BOTH, 'flag', 'extended errors are queued for MSG_ERRQUEUE', {
    families: V6,
  }),
  option('IPV6_MTU_DISCOVER', SOL_IPV6, 23, BOTH, 'value', 'path MTU discovery mode, as IP_MTU_DISCOVER', {
    families: V6,
  }),
  // The same inet FREEBIND bit as IP_FREEBIND.
  option('IPV6_FREEBIND', SOL_IPV6, 78, BOTH, 'flag', 'may bind to an address not (yet) on the host', {
    families: V6,
    sockDiag: { fact: 'inetFlags', bit: SOCKOPT_BIT.freebind },
  }),
  // The same inet TRANSPARENT bit as IP_TRANSPARENT.
  option('IPV6_TRANSPARENT', SOL_IPV6, 75, BOTH, 'flag', 'transparent proxying (TPROXY)', {
    families: V6,
    sockDiag: { fact: 'inetFlags', bit: SOCKOPT_BIT.transparent },
  }),
  option('IPV6_MULTICAST_HOPS', SOL_IPV6, 18, UDP, 'count', 'hop limit of outgoing multicast packets', {
    families: V6,
  }),
  option(
    'IPV6_MULTICAST_LOOP',
    SOL_IPV6,
    19,
    UDP,
    'flag',
    'multicast packets are looped back to local listeners',
    { families: V6 },
  ),
];

/**
 * Options that must never be read: reading them changes the socket or leaks a secret.
 * [name, level, optname]; the catalogue test checks none of these pairs is in it.
 */
export const FORBIDDEN_OPTIONS: ReadonlyArray<readonly [string, number, number]> = [
  ['SO_ERROR', SOL_SOCKET, 4], // reading clears the pending error
  ['SO_PEERSEC', SOL_SOCKET, 31], // security label of the peer
  ['SO_PEERPIDFD', SOL_SOCKET, 77], // creates a file descriptor
  ['TCP_SAVED_SYN', SOL_TCP, 28], // reading frees the saved SYN
  ['TCP_FASTOPEN_KEY', SOL_TCP, 33], // secret
  ['TCP_ZEROCOPY_RECEIVE', SOL_TCP, 35], // consumes received data
  ['TCP_AO_GET_KEYS', SOL_TCP, 41], // secret
];

export const KNETSTAT_OPTION_NAMES: readonly string[] = OPTION_CATALOGUE.filter(
  (o) => o.set === 'knetstat',
).map((o) => o.name);

const byName = new Map(OPTION_CATALOGUE.map((o) => [o.name, o]));

export function findOption(name: string): OptionSpec | undefined {
  return byName.get(name);
}

/** The catalogue entries that apply to a socket of this kind. */
export function optionsFor(protocol: Protocol, family: Family, listening: boolean): OptionSpec[] {
  return OPTION_CATALOGUE.filter(
    (o) =>
      o.protocols.includes(protocol) &&
      (o.families === undefined || o.families.includes(family)) &&
      (!o.listenOnly || listening),
  );
}

/**
 * Options that bpf_getsockopt answers on a TCP socket (Linux 6.x: sol_socket_sockopt,
 * sol_tcp_sockopt and sol_ip_sockopt in net/core/filter.c), all ints, each through the
 * kernel's own sk_getsockopt or do_tcp_getsockopt. Measured on 6.18 against getsockopt:
 * the first fifteen equal on every socket of the bench (bench/experiments/bpf-iter.mjs),
 * all of them on the integration test's sockets. Where a kernel refuses one, the pass
 * leaves it to getsockopt. The BPF pass (bpf-tcp.ts) reads these.
 */
export const BPF_READABLE_TCP_OPTIONS: readonly string[] = [
  'TCP_NODELAY',
  'TCP_MAXSEG',
  'TCP_KEEPIDLE',
  'TCP_KEEPINTVL',
  'TCP_KEEPCNT',
  'TCP_SYNCNT',
  'TCP_WINDOW_CLAMP',
  'TCP_USER_TIMEOUT',
  'TCP_NOTSENT_LOWAT',
  'TCP_THIN_LINEAR_TIMEOUTS',
  'TCP_SAVE_SYN',
  'SO_REUSEADDR',
  'SO_REUSEPORT',
  'SO_KEEPALIVE',
  'SO_RCVBUF',
  'SO_SNDBUF',
  'SO_MARK',
  'SO_PRIORITY',
  'SO_RCVLOWAT',
  'SO_TXREHASH',
];
