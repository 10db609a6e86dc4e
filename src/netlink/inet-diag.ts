/**
 * The inet_diag codec: struct inet_diag_req_v2 out, struct inet_diag_msg and its
 * attributes (tcp_info, sk_meminfo) in. Layouts from include/uapi/linux/inet_diag.h,
 * sock_diag.h and tcp.h. Ports and addresses are in network order; everything else
 * in host order.
 */
import { formatIPv4At, formatIPv6At } from '../address.js';
import { HASH_START, HashBuckets, mixHash, valueWord } from '../hash-buckets.js';
import type {
  DiagIndicator,
  Endpoint,
  Family,
  SockDiagOptionFacts,
  SocketMemoryInfo,
  TcpInfo,
} from '../model.js';
import { diagOfWindows } from '../states.js';
import { ProtocolError } from '../sys/errors.js';
import { type Datagram, datagramOf, HIGH_WORD, hostIsLittleEndian, LOW_WORD } from './byte-reader.js';
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
  /** idiag_cookie, a u64, in decimal. */
  cookie: string;
  expires: number;
  recvQ: number;
  sendQ: number;
  uid: number;
  inode: number;
  /** Null where the reply carried none, or when parsed without `details`. */
  tcpInfo: TcpInfo | null;
  /**
   * The Diag indicator tcp_info gives (diagOfWindows), kept whether or not `tcpInfo` is;
   * null where the reply carried no tcp_info.
   */
  windowDiag: DiagIndicator | null;
  /** Null where the reply carried none, or when parsed without `details`. */
  memInfo: SocketMemoryInfo | null;
  /** Only when parsed with `optionFacts`: the attributes that carry socket option values. */
  optionFacts?: SockDiagOptionFacts;
}

export interface ParseSettings {
  /** Also collect the attributes that carry socket option values (TOS, CONG, SOCKOPT, ...). */
  optionFacts?: boolean;
  /**
   * Make each tcp_info and sk_meminfo into `tcpInfo` and `memInfo` (default true).
   * Without it only what the listing uses is read from them — `windowDiag`, and the
   * buffer sizes into `optionFacts` — and 46 fields fewer are held per socket.
   */
  details?: boolean;
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

/** struct inet_diag_msg and the attributes after it, from a payload of its own. */
export function parseInetDiagMessage(payload: Uint8Array, settings: ParseSettings = {}): InetDiagMessage {
  return readInetDiagMessage(
    datagramOf(payload),
    0,
    payload.byteLength,
    settings.optionFacts === true,
    settings.details !== false,
  );
}

/**
 * The u64 in `words` at `index`: exact below 2^53 and rounded as Number(bigint) would be
 * above it; a small value stays a small integer, not a boxed double, in each of 36k objects.
 */
function u64(words: Uint32Array, index: number): number {
  const low = words[index + LOW_WORD] as number;
  const high = words[index + HIGH_WORD] as number;
  return high === 0 ? low : low + high * 4294967296;
}

let lastFacts: SockDiagOptionFacts | undefined;
/** Facts objects met so far, by a hash of their values (factsOf), for the process's life. */
const keptFacts = new HashBuckets<Readonly<SockDiagOptionFacts>>(1024, 'clear');

/**
 * The facts object for these values: an earlier socket's when they are all the same, as
 * they mostly are (a host's sockets share their buffer sizes, TOS and congestion
 * control), so that tens of thousands of sockets share a few objects — and the options
 * reader, which takes sockets with the same facts and the same BPF record to have the
 * same options, meets the same object again. They are only read. Every field is
 * present, undefined where the reply did not carry it: one shape for all.
 */
function factsOf(
  boundInterface: number,
  tos: number | undefined,
  tclass: number | undefined,
  v6only: number | undefined,
  mark: number | undefined,
  congestion: string | undefined,
  inetFlags: number | undefined,
  rcvbuf: number | undefined,
  sndbuf: number | undefined,
): SockDiagOptionFacts {
  // Most often the previous socket's: no hash needed.
  const last = lastFacts;
  if (
    last !== undefined &&
    sameFacts(last, boundInterface, tos, tclass, v6only, mark, congestion, inetFlags, rcvbuf, sndbuf)
  )
    return last;
  // Unrolled: no array made per socket.
  let hash = mixHash(HASH_START, valueWord(boundInterface));
  hash = mixHash(hash, valueWord(tos));
  hash = mixHash(hash, valueWord(tclass));
  hash = mixHash(hash, valueWord(v6only));
  hash = mixHash(hash, valueWord(mark));
  hash = mixHash(hash, valueWord(congestion));
  hash = mixHash(hash, valueWord(inetFlags));
  hash = mixHash(hash, valueWord(rcvbuf));
  hash = mixHash(hash, valueWord(sndbuf));
  const bucket = keptFacts.get(hash);
  if (bucket)
    for (const kept of bucket)
      if (sameFacts(kept, boundInterface, tos, tclass, v6only, mark, congestion, inetFlags, rcvbuf, sndbuf)) {
        lastFacts = kept;
        return kept;
      }
  const facts = Object.freeze({
    boundInterface,
    tos,
    tclass,
    v6only,
    mark,
    congestion,
    inetFlags,
    rcvbuf,
    sndbuf,
  });
  keptFacts.add(hash, facts);
  lastFacts = facts;
  return facts;
}

function sameFacts(
  f: SockDiagOptionFacts,
  boundInterface: number,
  tos: number | undefined,
  tclass: number | undefined,
  v6only: number | undefined,
  mark: number | undefined,
  congestion: string | undefined,
  inetFlags: number | undefined,
  rcvbuf: number | undefined,
  sndbuf: number | undefined,
): boolean {
  return (
    f.boundInterface === boundInterface &&
    f.tos === tos &&
    f.tclass === tclass &&
    f.v6only === v6only &&
    f.mark === mark &&
    f.congestion === congestion &&
    f.inetFlags === inetFlags &&
    f.rcvbuf === rcvbuf &&
    f.sndbuf === sndbuf
  );
}

/**
 * The inet_diag_msg in bytes [start, end) of a datagram, read in place: this runs once
 * per socket, so there is no view, slice or object per field or attribute, and every
 * object is made once, whole. (Fields are read by index rather than through small helper
 * functions: until the optimiser has compiled this, each call would cost more than the read.)
 */
export function readInetDiagMessage(
  datagram: Datagram,
  start: number,
  end: number,
  optionFacts: boolean,
  details: boolean,
): InetDiagMessage {
  const { bytes, view, words } = datagram;
  const size = end - start;
  if (size < 1) throw new ProtocolError('inet_diag_msg: truncated (needs 1 bytes, has 0)');
  const familyNumber = bytes[start];
  if (familyNumber !== AF_INET && familyNumber !== AF_INET6) {
    throw new ProtocolError(`inet_diag_msg: unexpected address family ${familyNumber}`);
  }
  if (size < INET_DIAG_MSG_SIZE) {
    throw new ProtocolError(`inet_diag_msg: truncated (needs ${INET_DIAG_MSG_SIZE} bytes, has ${size})`);
  }
  const family: Family = familyNumber === AF_INET ? 4 : 6;
  const w = start >>> 2; // the message's first word: `start` is a multiple of 4
  const interfaceIndex = words[w + 40 / 4] as number;

  let tcpInfo: TcpInfo | null = null;
  let windowDiag: DiagIndicator | null = null;
  let memInfo: SocketMemoryInfo | null = null;
  // The option attributes, gathered here and made into one object at the end.
  let tos: number | undefined;
  let tclass: number | undefined;
  let v6only: number | undefined;
  let mark: number | undefined;
  let congestion: string | undefined;
  let inetFlags: number | undefined;
  let rcvbuf: number | undefined;
  let sndbuf: number | undefined;
  const base = start + INET_DIAG_MSG_SIZE;
  for (let at = base; ; ) {
    const length = attributeLength(view, at, end, base);
    if (length < 0) break;
    const type = view.getUint16(at + 2, hostIsLittleEndian) & 0x3fff; // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
    // The value: `n` bytes at `value`. One too short for its option is left out, and the
    // reader then asks getsockopt.
    const value = at + 4;
    const n = length - 4;
    switch (type) {
      case INET_DIAG_INFO:
        windowDiag = readWindowDiag(datagram, value, n);
        if (details) tcpInfo = readTcpInfo(datagram, value, n);
        break;
      case INET_DIAG_SKMEMINFO:
        checkMemoryInfoSize(n);
        rcvbuf = words[(value >>> 2) + SK_MEMINFO_RCVBUF];
        sndbuf = words[(value >>> 2) + SK_MEMINFO_SNDBUF];
        if (details) memInfo = readSocketMemoryInfo(datagram, value, n);
        break;
      case INET_DIAG_TOS:
        if (n >= 1) tos = bytes[value];
        break;
      case INET_DIAG_TCLASS:
        if (n >= 1) tclass = bytes[value];
        break;
      case INET_DIAG_SKV6ONLY:
        if (n >= 1) v6only = bytes[value];
        break;
      case INET_DIAG_MARK:
        if (n >= 4) mark = words[value >>> 2];
        break;
      case INET_DIAG_CONG:
        if (n >= 1 && optionFacts) congestion = congestionName(bytes, value, n);
        break;
      case INET_DIAG_SOCKOPT:
        if (n >= 2)
          inetFlags = bitfieldByte(bytes[value] as number) | (bitfieldByte(bytes[value + 1] as number) << 8);
        break;
    }
    at += align4(length);
  }

  return {
    family,
    state: bytes[start + 1] as number,
    timer: bytes[start + 2] as number,
    retransmits: bytes[start + 3] as number,
    local: { address: formatAddress(datagram, family, start + 8), port: port(bytes, start + 4) },
    remote: { address: formatAddress(datagram, family, start + 24), port: port(bytes, start + 6) },
    interfaceIndex,
    // idiag_cookie[2]: two host-order words, the low one first.
    cookie: cookieText(words[w + 44 / 4] as number, words[w + 48 / 4] as number),
    expires: words[w + 52 / 4] as number,
    recvQ: words[w + 56 / 4] as number,
    sendQ: words[w + 60 / 4] as number,
    uid: words[w + 64 / 4] as number,
    inode: words[w + 68 / 4] as number,
    tcpInfo,
    windowDiag,
    memInfo,
    optionFacts: optionFacts
      ? factsOf(interfaceIndex, tos, tclass, v6only, mark, congestion, inetFlags, rcvbuf, sndbuf)
      : undefined,
  };
}

/**
 * A u64 from its low and high words, in decimal: through a number (no bigint made, as
 * for every cookie a kernel hands out in practice) while it is below 2^53.
 */
export function cookieText(low: number, high: number): string {
  if (high < 2 ** 21) return String(high * 4294967296 + low);
  return ((BigInt(high) << 32n) | BigInt(low)).toString();
}

/**
 * Addresses formatted lately, by their bits. The sockets of a listing share a few local
 * addresses, and connections to one peer share its address, so most look-ups hit: no
 * string is built, and the records share one string per address instead of keeping
 * 36k copies. Direct-mapped: a slot keeps the last address that hashed to it.
 */
const ADDRESS_SLOT_BITS = 8;
const ADDRESS_SLOTS = 1 << ADDRESS_SLOT_BITS;
const slotWords = new Uint32Array(ADDRESS_SLOTS * 4);
const slotFamily = new Uint8Array(ADDRESS_SLOTS); // 0: empty
const slotText: string[] = new Array<string>(ADDRESS_SLOTS).fill('');

/** idiag_src or idiag_dst at `at` (a multiple of 4): 4 bytes for IPv4, 16 for IPv6. */
function formatAddress(datagram: Datagram, family: Family, at: number): string {
  const { bytes, words } = datagram;
  const w = at >>> 2;
  const a = words[w] as number;
  const b = family === 6 ? (words[w + 1] as number) : 0;
  const c = family === 6 ? (words[w + 2] as number) : 0;
  const d = family === 6 ? (words[w + 3] as number) : 0;
  // Fibonacci hashing of the words folded together: the product's top bits pick the slot.
  const slot = Math.imul(a ^ b ^ c ^ d, 0x9e3779b1) >>> (32 - ADDRESS_SLOT_BITS);
  const k = slot * 4;
  if (
    slotFamily[slot] === family &&
    slotWords[k] === a &&
    slotWords[k + 1] === b &&
    slotWords[k + 2] === c &&
    slotWords[k + 3] === d
  ) {
    return slotText[slot] as string;
  }
  const text = family === 4 ? formatIPv4At(bytes, at) : formatIPv6At(bytes, at);
  slotFamily[slot] = family;
  slotWords[k] = a;
  slotWords[k + 1] = b;
  slotWords[k + 2] = c;
  slotWords[k + 3] = d;
  slotText[slot] = text;
  return text;
}

/** A port: network order. */
function port(bytes: Uint8Array, at: number): number {
  return ((bytes[at] as number) << 8) | (bytes[at + 1] as number);
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

/** The NUL-terminated name in `length` bytes at `at`; the previous one is reused when the bytes match (they nearly always do). */
function congestionName(bytes: Uint8Array, at: number, length: number): string {
  let end = 0;
  while (end < length && bytes[at + end] !== 0) end++;
  if (end === lastCongestionBytes.byteLength) {
    let same = true;
    for (let i = 0; i < end; i++) if (bytes[at + i] !== lastCongestionBytes[i]) same = false;
    if (same) return lastCongestion;
  }
  lastCongestionBytes = bytes.slice(at, at + end);
  lastCongestion = String.fromCharCode(...lastCongestionBytes);
  return lastCongestion;
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

/**
 * struct tcp_info, as far as the running kernel sent it: a field past its end is
 * undefined. Every field is in the one object literal, in one order, so that all
 * tcp_info objects share one shape and are allocated whole.
 */
export function parseTcpInfo(bytes: Uint8Array): TcpInfo {
  return readTcpInfo(datagramOf(bytes), 0, bytes.byteLength);
}

function checkTcpInfoSize(n: number): void {
  if (n < TCP_INFO_MIN_SIZE) {
    throw new ProtocolError(`tcp_info: ${n} bytes, expected at least ${TCP_INFO_MIN_SIZE}`);
  }
}

/** The Diag indicator from the tcp_info of `n` bytes at `at`: the same fields readTcpInfo reads. */
function readWindowDiag(datagram: Datagram, at: number, n: number): DiagIndicator {
  checkTcpInfoSize(n);
  const { words } = datagram;
  const w = at >>> 2;
  return diagOfWindows(
    n >= 236 ? words[w + 232 / 4] : undefined,
    n >= 232 ? words[w + 228 / 4] : undefined,
    words[w + 24 / 4] as number,
    words[w + 56 / 4] as number,
  );
}

/** The tcp_info of `n` bytes at `at` (a multiple of 4) of the datagram. */
function readTcpInfo(datagram: Datagram, at: number, n: number): TcpInfo {
  checkTcpInfoSize(n);
  const { bytes, words } = datagram;
  const w = at >>> 2;
  // Offsets in bytes, as in include/uapi/linux/tcp.h; the length check above covers all
  // fields up to tcpi_total_retrans, the rest are read only where `n` reaches past them.
  const info = {
    state: bytes[at],
    caState: bytes[at + 1],
    retransmits: bytes[at + 2],
    probes: bytes[at + 3],
    backoff: bytes[at + 4],
    options: bytes[at + 5],
    rto: words[w + 8 / 4],
    ato: words[w + 12 / 4],
    sndMss: words[w + 16 / 4],
    rcvMss: words[w + 20 / 4],
    unacked: words[w + 24 / 4],
    sacked: words[w + 28 / 4],
    lost: words[w + 32 / 4],
    retrans: words[w + 36 / 4],
    lastDataSent: words[w + 44 / 4],
    lastAckSent: words[w + 48 / 4],
    lastDataRecv: words[w + 52 / 4],
    lastAckRecv: words[w + 56 / 4],
    pmtu: words[w + 60 / 4],
    rcvSsthresh: words[w + 64 / 4],
    rtt: words[w + 68 / 4],
    rttvar: words[w + 72 / 4],
    sndSsthresh: words[w + 76 / 4],
    sndCwnd: words[w + 80 / 4],
    advmss: words[w + 84 / 4],
    reordering: words[w + 88 / 4],
    rcvRtt: words[w + 92 / 4],
    rcvSpace: words[w + 96 / 4],
    totalRetrans: words[w + 100 / 4],
    bytesAcked: n >= 128 ? u64(words, w + 120 / 4) : undefined,
    bytesReceived: n >= 136 ? u64(words, w + 128 / 4) : undefined,
    notsentBytes: n >= 148 ? words[w + 144 / 4] : undefined,
    minRtt: n >= 152 ? words[w + 148 / 4] : undefined,
    bytesSent: n >= 208 ? u64(words, w + 200 / 4) : undefined,
    bytesRetrans: n >= 216 ? u64(words, w + 208 / 4) : undefined,
    sndWnd: n >= 232 ? words[w + 228 / 4] : undefined,
    rcvWnd: n >= 236 ? words[w + 232 / 4] : undefined,
  };
  return info as TcpInfo; // every required field lies within the 104 bytes checked above
}

/** SK_MEMINFO_* counters; SK_MEMINFO_DROPS arrived in Linux 4.7 and is 0 before it. */
export function parseSocketMemoryInfo(bytes: Uint8Array): SocketMemoryInfo {
  return readSocketMemoryInfo(datagramOf(bytes), 0, bytes.byteLength);
}

/** SK_MEMINFO_RCVBUF and SK_MEMINFO_SNDBUF: indexes of the u32 array. */
const SK_MEMINFO_RCVBUF = 1;
const SK_MEMINFO_SNDBUF = 3;

function checkMemoryInfoSize(n: number): void {
  if (n < 32) throw new ProtocolError(`sk_meminfo: truncated (needs 32 bytes, has ${n})`);
}

function readSocketMemoryInfo(datagram: Datagram, at: number, n: number): SocketMemoryInfo {
  checkMemoryInfoSize(n);
  const { words } = datagram;
  const w = at >>> 2;
  const info = {
    rmemAlloc: words[w],
    rcvbuf: words[w + 1],
    wmemAlloc: words[w + 2],
    sndbuf: words[w + 3],
    fwdAlloc: words[w + 4],
    wmemQueued: words[w + 5],
    optmem: words[w + 6],
    backlog: words[w + 7],
    drops: n >= 36 ? words[w + 8] : 0,
  };
  return info as SocketMemoryInfo; // all within the 32 bytes checked above
}
