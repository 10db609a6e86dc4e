/**
 * The inet_diag codec: struct inet_diag_req_v2 out, struct inet_diag_msg and its
 * attributes (tcp_info, sk_meminfo) in. Layouts from include/uapi/linux/inet_diag.h,
 * sock_diag.h and tcp.h. Ports and addresses are in network order; everything else
 * in host order.
 */
import { formatIPv4, formatIPv6 } from '../address.js';
import type { Endpoint, Family, SocketMemoryInfo, TcpInfo } from '../model.js';
import { ProtocolError } from '../sys/errors.js';
import { ByteReader, hostIsLittleEndian } from './byte-reader.js';
import { align4 } from './message.js';

export const SOCK_DIAG_BY_FAMILY = 20;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const INET_DIAG_INFO = 2;
export const INET_DIAG_SKMEMINFO = 7;

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
}

const AF_INET = 2;
const AF_INET6 = 10;

function readAddress(reader: ByteReader, family: Family): string {
  const raw = reader.bytesView(16);
  return family === 4 ? formatIPv4(raw) : formatIPv6(raw);
}

/** struct inet_diag_msg and the attributes after it. */
export function parseInetDiagMessage(payload: Uint8Array): InetDiagMessage {
  const reader = new ByteReader(payload, 'inet_diag_msg');
  const familyNumber = reader.u8();
  if (familyNumber !== AF_INET && familyNumber !== AF_INET6) {
    throw new ProtocolError(`inet_diag_msg: unexpected address family ${familyNumber}`);
  }
  const family: Family = familyNumber === AF_INET ? 4 : 6;
  const state = reader.u8();
  const timer = reader.u8();
  const retransmits = reader.u8();
  const localPort = reader.u16be();
  const remotePort = reader.u16be();
  const localAddress = readAddress(reader, family);
  const remoteAddress = readAddress(reader, family);
  const interfaceIndex = reader.u32();
  const cookieLow = reader.u32();
  const cookieHigh = reader.u32();
  const message: InetDiagMessage = {
    family,
    state,
    timer,
    retransmits,
    local: { address: localAddress, port: localPort },
    remote: { address: remoteAddress, port: remotePort },
    interfaceIndex,
    cookie: (BigInt(cookieHigh) << 32n) | BigInt(cookieLow),
    expires: reader.u32(),
    recvQ: reader.u32(),
    sendQ: reader.u32(),
    uid: reader.u32(),
    inode: reader.u32(),
    tcpInfo: null,
    memInfo: null,
  };
  for (const attribute of splitAttributes(
    payload.subarray(Math.min(payload.byteLength, INET_DIAG_MSG_SIZE)),
  )) {
    if (attribute.type === INET_DIAG_INFO) message.tcpInfo = parseTcpInfo(attribute.payload);
    else if (attribute.type === INET_DIAG_SKMEMINFO)
      message.memInfo = parseSocketMemoryInfo(attribute.payload);
  }
  return message;
}

export interface Attribute {
  type: number;
  payload: Uint8Array;
}

/** struct rtattr records, walked by their own lengths and never past the end. */
export function* splitAttributes(bytes: Uint8Array): Generator<Attribute> {
  let offset = 0;
  while (bytes.byteLength - offset >= 4) {
    const header = new ByteReader(bytes.subarray(offset, offset + 4), 'rtattr');
    const length = header.u16();
    const type = header.u16() & 0x3fff; // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (length < 4 || length > bytes.byteLength - offset) {
      throw new ProtocolError(
        `rtattr: length ${length} at offset ${offset} does not fit ${bytes.byteLength} bytes`,
      );
    }
    yield { type, payload: bytes.subarray(offset + 4, offset + length) };
    offset += align4(length);
  }
}

/** [name, offset, bytes]; a field is read only if the kernel's tcp_info reaches past its end. */
const TCP_INFO_FIELDS: ReadonlyArray<readonly [keyof TcpInfo, number, 1 | 4 | 8]> = [
  ['state', 0, 1],
  ['caState', 1, 1],
  ['retransmits', 2, 1],
  ['probes', 3, 1],
  ['backoff', 4, 1],
  ['options', 5, 1],
  ['rto', 8, 4],
  ['ato', 12, 4],
  ['sndMss', 16, 4],
  ['rcvMss', 20, 4],
  ['unacked', 24, 4],
  ['sacked', 28, 4],
  ['lost', 32, 4],
  ['retrans', 36, 4],
  ['lastDataSent', 44, 4],
  ['lastAckSent', 48, 4],
  ['lastDataRecv', 52, 4],
  ['lastAckRecv', 56, 4],
  ['pmtu', 60, 4],
  ['rcvSsthresh', 64, 4],
  ['rtt', 68, 4],
  ['rttvar', 72, 4],
  ['sndSsthresh', 76, 4],
  ['sndCwnd', 80, 4],
  ['advmss', 84, 4],
  ['reordering', 88, 4],
  ['rcvRtt', 92, 4],
  ['rcvSpace', 96, 4],
  ['totalRetrans', 100, 4],
  ['bytesAcked', 120, 8],
  ['bytesReceived', 128, 8],
  ['notsentBytes', 144, 4],
  ['minRtt', 148, 4],
  ['bytesSent', 200, 8],
  ['bytesRetrans', 208, 8],
  ['sndWnd', 228, 4],
  ['rcvWnd', 232, 4],
];

/** The oldest tcp_info we accept: up to tcpi_total_retrans (Linux 2.6.x). */
const TCP_INFO_MIN_SIZE = 104;

export function parseTcpInfo(bytes: Uint8Array): TcpInfo {
  if (bytes.byteLength < TCP_INFO_MIN_SIZE) {
    throw new ProtocolError(`tcp_info: ${bytes.byteLength} bytes, expected at least ${TCP_INFO_MIN_SIZE}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const info: Partial<Record<keyof TcpInfo, number>> = {};
  for (const [name, offset, size] of TCP_INFO_FIELDS) {
    if (offset + size > bytes.byteLength) continue;
    info[name] =
      size === 1
        ? view.getUint8(offset)
        : size === 4
          ? view.getUint32(offset, hostIsLittleEndian)
          : Number(view.getBigUint64(offset, hostIsLittleEndian));
  }
  return info as TcpInfo;
}

export function parseSocketMemoryInfo(bytes: Uint8Array): SocketMemoryInfo {
  const reader = new ByteReader(bytes, 'sk_meminfo');
  const rmemAlloc = reader.u32();
  const rcvbuf = reader.u32();
  const wmemAlloc = reader.u32();
  const sndbuf = reader.u32();
  const fwdAlloc = reader.u32();
  const wmemQueued = reader.u32();
  const optmem = reader.u32();
  const backlog = reader.u32();
  // SK_MEMINFO_DROPS arrived in Linux 4.7.
  const drops = reader.remaining >= 4 ? reader.u32() : 0;
  return { rmemAlloc, rcvbuf, wmemAlloc, sndbuf, fwdAlloc, wmemQueued, optmem, backlog, drops };
}
