/** The typed model every stage of the pipeline passes on. */

export type Protocol = 'tcp' | 'udp';
export type Family = 4 | 6;

export type TcpStateName =
  | 'ESTABLISHED'
  | 'SYN_SENT'
  | 'SYN_RECV'
  | 'FIN_WAIT1'
  | 'FIN_WAIT2'
  | 'TIME_WAIT'
  | 'CLOSE'
  | 'CLOSE_WAIT'
  | 'LAST_ACK'
  | 'LISTEN'
  | 'CLOSING';
export type UdpStateName = 'UNCONN' | 'ESTABLISHED';
export type StateName = TcpStateName | UdpStateName;

/** The four tables of the kernel module, one per protocol and family. */
export type TableName = 'tcp' | 'tcp6' | 'udp' | 'udp6';
export const TABLES: readonly TableName[] = ['tcp', 'tcp6', 'udp', 'udp6'];

export function tableOf(protocol: Protocol, family: Family): TableName {
  return `${protocol}${family === 6 ? '6' : ''}` as TableName;
}

export interface Endpoint {
  address: string;
  port: number;
}

/** Fields of struct tcp_info; a field the running kernel did not send is undefined (the key is there: objects are made whole, in one shape). */
export interface TcpInfo {
  state: number;
  caState: number;
  retransmits: number;
  probes: number;
  backoff: number;
  options: number;
  rto: number;
  ato: number;
  sndMss: number;
  rcvMss: number;
  unacked: number;
  sacked: number;
  lost: number;
  retrans: number;
  lastDataSent: number;
  lastAckSent: number;
  lastDataRecv: number;
  lastAckRecv: number;
  pmtu: number;
  rcvSsthresh: number;
  rtt: number;
  rttvar: number;
  sndSsthresh: number;
  sndCwnd: number;
  advmss: number;
  reordering: number;
  rcvRtt: number;
  rcvSpace: number;
  totalRetrans: number;
  bytesAcked?: number;
  bytesReceived?: number;
  notsentBytes?: number;
  minRtt?: number;
  bytesSent?: number;
  bytesRetrans?: number;
  /** The peer's advertised window (Linux 5.4+). */
  sndWnd?: number;
  /** Our advertised window (Linux 6.2+). */
  rcvWnd?: number;
}

/** INET_DIAG_SKMEMINFO: the socket's memory counters, in bytes. */
export interface SocketMemoryInfo {
  rmemAlloc: number;
  rcvbuf: number;
  wmemAlloc: number;
  sndbuf: number;
  fwdAlloc: number;
  wmemQueued: number;
  optmem: number;
  backlog: number;
  drops: number;
}

/**
 * Values that the sock_diag reply carries and that getsockopt would return too, read
 * from the very same kernel variable (the catalogue's `sockDiag` entries say which).
 * A field is undefined when the reply did not carry it (the key is there: one object shape).
 * Sockets whose facts are all the same share one frozen object (the parser keeps a
 * table of them, across collections).
 */
export interface SockDiagOptionFacts {
  /** idiag_if: sk_bound_dev_if, 0 when the socket is bound to no device. */
  boundInterface: number;
  /** INET_DIAG_SOCKOPT (Linux 5.10): inet flag bits, bit n = field n of struct inet_diag_sockopt. */
  inetFlags?: number;
  /** INET_DIAG_TOS: inet->tos. */
  tos?: number;
  /** INET_DIAG_TCLASS (IPv6): np->tclass. */
  tclass?: number;
  /** INET_DIAG_SKV6ONLY (IPv6, listening or closed sockets only): sk_ipv6only. */
  v6only?: number;
  /** INET_DIAG_MARK (only to a reader with CAP_NET_ADMIN): sk_mark. */
  mark?: number;
  /** INET_DIAG_CONG (TCP): the congestion control's name. */
  congestion?: string;
  /** SK_MEMINFO_RCVBUF and SK_MEMINFO_SNDBUF, also in memInfo when that is kept. */
  rcvbuf?: number;
  sndbuf?: number;
}

/** Diag indicators as knetstat shows them. */
export type DiagIndicator = '' | '>|' | '|<' | '>|<' | '>#';

export interface SocketOwner {
  pid: number;
  fd: number;
  command: string;
}

export type OptionValue = number | string | null;
/**
 * A socket's options by name. Frozen; within a collection, sockets whose options are all
 * the same share one object (options/options-table.ts).
 */
export type SocketOptions = Readonly<Record<string, OptionValue>>;

export interface SocketRecord {
  protocol: Protocol;
  family: Family;
  state: StateName;
  local: Endpoint;
  remote: Endpoint;
  recvQ: number;
  sendQ: number;
  inode: number;
  /**
   * sock_diag's socket cookie (idiag_cookie) in decimal, unique per socket until reboot;
   * null from the /proc/net fallback. The option reader compares it with SO_COOKIE to
   * prove that a duplicated fd is this very socket. (A string, not a bigint, so that a
   * Collection stays JSON.stringify-able.)
   */
  cookie: string | null;
  uid: number;
  /** A TIME_WAIT or request (SYN_RECV) mini-socket: no owner, no options, no tcp_info. */
  minisocket: boolean;
  /** null when the source could not tell (the /proc/net fallback). */
  diag: DiagIndicator | null;
  tcpInfo: TcpInfo | null;
  memInfo: SocketMemoryInfo | null;
  /** Option values the sock_diag reply carried (absent with the /proc/net source). */
  optionFacts?: SockDiagOptionFacts;
  processes: SocketOwner[];
  options: SocketOptions | null;
  optionsError?: string;
}

export type Source = 'netlink' | 'proc';

export interface Collection {
  sockets: SocketRecord[];
  /** Where the socket list came from. */
  source: Source;
  /** Notes for stderr, e.g. why netlink was not used, or why options could not be read. */
  warnings: string[];
  /** Whether a helper process did part of the scan and reads (see CollectSettings.parallel). */
  helper: HelperUse;
  /** Whether BPF iterators found the owners, and read most TCP options (see CollectSettings.bpf). */
  bpf: { owners: boolean; options: boolean };
  /** How many sockets' options the sock_diag dump and the BPF pass settled with no duplicate made. */
  settledWithoutDuplicate: number;
}

/** 'used': a helper process did its share; 'failed': it was started but this process did its share. */
export type HelperUse = 'none' | 'used' | 'failed';
