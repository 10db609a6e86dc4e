/**
 * The inet_diag codec: struct inet_diag_req_v2 out, struct inet_diag_msg and its
 * attributes (tcp_info, sk_meminfo) in. Layouts from include/uapi/linux/inet_diag.h,
 * sock_diag.h and tcp.h. Ports and addresses are in network order; everything else
 * in host order.
 */
import { formatIPv4, formatIPv6 } from '../address.js';
import type { Endpoint, Family, SockDiagOptionFacts, SocketMemoryInfo, TcpInfo } from '../model.js';
import { ProtocolError } from '../sys/errors.js';
import { hostIsLittleEndian } from './byte-reader.js';
import { align4 } from './message.js';

export const SOCK_DIAG_BY_FAMILY = 20;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const INET_DIAG_INFO = 2;
export const INET_DIAG_CONG = 4;
export const INET_DIAG_TOS = 5;
export const INET_DIAG_TCLASS = 6;
export const INET_DIAG_SKMEMINFO = 7;
export const INET_DIAG_SKV6ONLY = 11;
export const INET_DIAG_MARK = 15;
export const INET_DIAG_SOCKOPT = 22;

/** Every TCP state, TIME_WAIT (bit 6), SYN_RECV (bit 3) and NEW_SYN_RECV (bit 12) included. */
export const ALL_STATES = 0xffffffff;

export interface InetDiagRequest {
  family: number;
  protocol: number;
  /** Bit (attribute - 1) asks for that attribute. */
  extensions: number;
  states: number;
}

const INET_DIAG_REQ_V2_SIZE = 56;
const INET_DIAG_MSG_SIZE = 72;

export function formatInetDiagRequest(request: InetDiagRequest): Uint8Array {
  const out = new Uint8Array(INET_DIAG_REQ_V2_SIZE);
  const view = new DataView(out.buffer);
  view.setUint8(0, request.family);
  view.setUint8(1, request.protocol);
  view.setUint8(2, request.extensions);
  view.setUint32(4, request.states >>> 0, hostIsLittleEndian);
  // inet_diag_sockid stays zero: no filter; cookie INET_DIAG_NOCOOKIE is not needed for dumps.
  return out;
}

export interface InetDiagMessage {
  family: Family;
  /** The kernel's state number (TCP_ESTABLISHED = 1 ... TCP_NEW_SYN_RECV = 12). */
  state: number;
  timer: number;
  retransmits: number;
  local: Endpoint;
  remote: Endpoint;
  interfaceIndex: number;
  cookie: bigint;
  expires: number;
  recvQ: number;
  sendQ: number;
  uid: number;
  inode: number;
  tcpInfo: TcpInfo | null;
  memInfo: SocketMemoryInfo | null;
  /** Only when parsed with `optionFacts`: the attributes that carry socket option values. */
  optionFacts?: SockDiagOptionFacts;
}

export interface ParseSettings {
  /** Also collect the attributes that carry socket option values (TOS, CONG, SOCKOPT, ...). */
  optionFacts?: boolean;
}

const AF_INET = 2;
const AF_INET6 = 10;

/**
 * The length of the rtattr at `at`, checked against the `size` bytes of its message;
 * -1 when fewer bytes than a header remain (a short tail is padding, not an attribute).
 * `base` only makes the error's offsets relative to the start of the attributes.
 */
function attributeLength(view: DataView, at: number, size: number, base: number): number {
  if (size - at < 4) return -1;
  const length = view.getUint16(at, hostIsLittleEndian);
  if (length < 4 || length > size - at) {
    throw new ProtocolError(
      `rtattr: length ${length} at offset ${at - base} does not fit ${size - base} bytes`,
    );
  }
  return length;
}

/**
 * struct inet_diag_msg and the attributes after it. This runs once per socket, so it
 * reads through one DataView by offset: no reader, slice or object per field or attribute.
 */
export function parseInetDiagMessage(payload: Uint8Array, settings: ParseSettings = {}): InetDiagMessage {
  const size = payload.byteLength;
  if (size < 1) throw new ProtocolError('inet_diag_msg: truncated (needs 1 bytes, has 0)');
  const familyNumber = payload[0];
  if (familyNumber !== AF_INET && familyNumber !== AF_INET6) {
    throw new ProtocolError(`inet_diag_msg: unexpected address family ${familyNumber}`);
  }
  if (size < INET_DIAG_MSG_SIZE) {
    throw new ProtocolError(`inet_diag_msg: truncated (needs ${INET_DIAG_MSG_SIZE} bytes, has ${size})`);
  }
  const le = hostIsLittleEndian;
  const view = new DataView(payload.buffer, payload.byteOffset, size);
  const family: Family = familyNumber === AF_INET ? 4 : 6;
  const addressLength = family === 4 ? 4 : 16;
  const format = family === 4 ? formatIPv4 : formatIPv6;
  const interfaceIndex = view.getUint32(40, le);
  const message: InetDiagMessage = {
    family,
    state: payload[1] as number,
    timer: payload[2] as number,
    retransmits: payload[3] as number,
    local: { address: format(payload.subarray(8, 8 + addressLength)), port: view.getUint16(4, false) },
    remote: { address: format(payload.subarray(24, 24 + addressLength)), port: view.getUint16(6, false) },
    interfaceIndex,
    // idiag_cookie[2]: two host-order words, the low one first.
    cookie: le
      ? view.getBigUint64(44, true)
      : (BigInt(view.getUint32(48, false)) << 32n) | BigInt(view.getUint32(44, false)),
    expires: view.getUint32(52, le),
    recvQ: view.getUint32(56, le),
    sendQ: view.getUint32(60, le),
    uid: view.getUint32(64, le),
    inode: view.getUint32(68, le),
    tcpInfo: null,
    memInfo: null,
    optionFacts: settings.optionFacts ? { boundInterface: interfaceIndex } : undefined,
  };
  const facts = message.optionFacts;
  for (let at = INET_DIAG_MSG_SIZE; ; ) {
    const length = attributeLength(view, at, size, INET_DIAG_MSG_SIZE);
    if (length < 0) break;
    const type = view.getUint16(at + 2, le) & 0x3fff; // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (type === INET_DIAG_INFO) message.tcpInfo = readTcpInfo(view, at + 4, length - 4);
    else if (type === INET_DIAG_SKMEMINFO) message.memInfo = readSocketMemoryInfo(view, at + 4, length - 4);
    else if (facts) collectOptionFact(facts, type, payload, view, at + 4, length - 4);
    at += align4(length);
  }
  return message;
}

/**
 * INET_DIAG_SOCKOPT's struct inet_diag_sockopt: C bitfields, allocated from the low bit
 * on little-endian hosts and from the high bit on big-endian ones. Normalised here to
 * bit n = the n-th field of the struct (recverr = 0 ... defer_connect = 10).
 */
export const INET_DIAG_SOCKOPT_BITS = {
  recverr: 0,
  isIcsk: 1,
  freebind: 2,
  hdrincl: 3,
  mcLoop: 4,
  transparent: 5,
  mcAll: 6,
  nodefrag: 7,
  bindAddressNoPort: 8,
  recverrRfc4884: 9,
  deferConnect: 10,
} as const;

function bitfieldByte(byte: number): number {
  if (hostIsLittleEndian) return byte;
  let reversed = 0;
  for (let bit = 0; bit < 8; bit++) if (byte & (1 << bit)) reversed |= 0x80 >> bit;
  return reversed;
}

let lastCongestionBytes = new Uint8Array(0);
let lastCongestion = '';

/** A NUL-terminated name; the previous one is reused when the bytes match (they nearly always do). */
function congestionName(bytes: Uint8Array): string {
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.byteLength;
  if (end === lastCongestionBytes.byteLength) {
    let same = true;
    for (let i = 0; i < end; i++) if (bytes[i] !== lastCongestionBytes[i]) same = false;
    if (same) return lastCongestion;
  }
  lastCongestionBytes = bytes.slice(0, end);
  lastCongestion = String.fromCharCode(...lastCongestionBytes);
  return lastCongestion;
}

/** An attribute too short for its value is left out: the reader then asks getsockopt. */
function collectOptionFact(
  facts: SockDiagOptionFacts,
  type: number,
  payload: Uint8Array,
  view: DataView,
  at: number,
  length: number,
): void {
  if (length < 1) return;
  switch (type) {
    case INET_DIAG_TOS:
      facts.tos = view.getUint8(at);
      break;
    case INET_DIAG_TCLASS:
      facts.tclass = view.getUint8(at);
      break;
    case INET_DIAG_SKV6ONLY:
      facts.v6only = view.getUint8(at);
      break;
    case INET_DIAG_MARK:
      if (length >= 4) facts.mark = view.getUint32(at, hostIsLittleEndian);
      break;
    case INET_DIAG_CONG:
      facts.congestion = congestionName(payload.subarray(at, at + length));
      break;
    case INET_DIAG_SOCKOPT:
      if (length >= 2) {
        facts.inetFlags = bitfieldByte(view.getUint8(at)) | (bitfieldByte(view.getUint8(at + 1)) << 8);
      }
      break;
  }
}

export interface Attribute {
  type: number;
  payload: Uint8Array;
}

/** struct rtattr records, walked by their own lengths and never past the end. */
export function* splitAttributes(bytes: Uint8Array): Generator<Attribute> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; ; ) {
    const length = attributeLength(view, at, bytes.byteLength, 0);
    if (length < 0) return;
    const type = view.getUint16(at + 2, hostIsLittleEndian) & 0x3fff;
    yield { type, payload: bytes.subarray(at + 4, at + length) };
    at += align4(length);
  }
}

/** The oldest tcp_info we accept: up to tcpi_total_retrans (Linux 2.6.x). */
const TCP_INFO_MIN_SIZE = 104;

/** struct tcp_info, as far as the running kernel sent it: a field past its end is absent. */
export function parseTcpInfo(bytes: Uint8Array): TcpInfo {
  return readTcpInfo(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.byteLength);
}

function readTcpInfo(view: DataView, at: number, n: number): TcpInfo {
  if (n < TCP_INFO_MIN_SIZE) {
    throw new ProtocolError(`tcp_info: ${n} bytes, expected at least ${TCP_INFO_MIN_SIZE}`);
  }
  const le = hostIsLittleEndian;
  const u8 = (offset: number) => view.getUint8(at + offset);
  const u32 = (offset: number) => view.getUint32(at + offset, le);
  // Two 32-bit halves: exact below 2^53 and rounded as Number(bigint) would be above it;
  // a small value stays a small integer, not a boxed double, in each of 36k objects.
  const u64 = (offset: number) => {
    const low = u32(le ? offset : offset + 4);
    const high = u32(le ? offset + 4 : offset);
    return high === 0 ? low : low + high * 4294967296;
  };
  const info: TcpInfo = {
    state: u8(0),
    caState: u8(1),
    retransmits: u8(2),
    probes: u8(3),
    backoff: u8(4),
    options: u8(5),
    rto: u32(8),
    ato: u32(12),
    sndMss: u32(16),
    rcvMss: u32(20),
    unacked: u32(24),
    sacked: u32(28),
    lost: u32(32),
    retrans: u32(36),
    lastDataSent: u32(44),
    lastAckSent: u32(48),
    lastDataRecv: u32(52),
    lastAckRecv: u32(56),
    pmtu: u32(60),
    rcvSsthresh: u32(64),
    rtt: u32(68),
    rttvar: u32(72),
    sndSsthresh: u32(76),
    sndCwnd: u32(80),
    advmss: u32(84),
    reordering: u32(88),
    rcvRtt: u32(92),
    rcvSpace: u32(96),
    totalRetrans: u32(100),
  };
  // Later fields only where the kernel's struct reaches them (absent, not undefined), always
  // added in this order so that every tcp_info of one kernel has the same shape.
  if (n >= 128) info.bytesAcked = u64(120);
  if (n >= 136) info.bytesReceived = u64(128);
  if (n >= 148) info.notsentBytes = u32(144);
  if (n >= 152) info.minRtt = u32(148);
  if (n >= 208) info.bytesSent = u64(200);
  if (n >= 216) info.bytesRetrans = u64(208);
  if (n >= 232) info.sndWnd = u32(228);
  if (n >= 236) info.rcvWnd = u32(232);
  return info;
}

/** SK_MEMINFO_* counters; SK_MEMINFO_DROPS arrived in Linux 4.7 and is 0 before it. */
export function parseSocketMemoryInfo(bytes: Uint8Array): SocketMemoryInfo {
  return readSocketMemoryInfo(
    new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    0,
    bytes.byteLength,
  );
}

function readSocketMemoryInfo(view: DataView, at: number, n: number): SocketMemoryInfo {
  if (n < 32) throw new ProtocolError(`sk_meminfo: truncated (needs 32 bytes, has ${n})`);
  const u32 = (offset: number) => view.getUint32(at + offset, hostIsLittleEndian);
  return {
    rmemAlloc: u32(0),
    rcvbuf: u32(4),
    wmemAlloc: u32(8),
    sndbuf: u32(12),
    fwdAlloc: u32(16),
    wmemQueued: u32(20),
    optmem: u32(24),
    backlog: u32(28),
    drops: n >= 36 ? u32(32) : 0,
  };
}
