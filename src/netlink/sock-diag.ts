/**
 * Dumps of NETLINK_SOCK_DIAG: one request per (family, protocol), the reply read
 * datagram by datagram and parsed as it arrives, so memory stays proportional to
 * the sockets kept, not to the stream.
 */
import { ProtocolError, SystemCallError } from '../sys/errors.js';
import * as libc from '../sys/libc.js';
import { type Datagram, datagramOf, hostIsLittleEndian } from './byte-reader.js';
import {
  ALL_STATES,
  formatInetDiagRequest,
  INET_DIAG_CONG,
  INET_DIAG_INFO,
  INET_DIAG_SKMEMINFO,
  INET_DIAG_TCLASS,
  INET_DIAG_TOS,
  type InetDiagMessage,
  readInetDiagMessage,
  SOCK_DIAG_BY_FAMILY,
} from './inet-diag.js';
import {
  align4,
  formatNetlinkMessage,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
  netlinkMessageLength,
  parseNetlinkError,
} from './message.js';

/** The kernel caps a dump datagram at 32 KiB; a larger buffer lets us detect anything bigger. */
const RECEIVE_BUFFER_SIZE = 64 * 1024;
/** How often a dump interrupted by a concurrent change (or ENOBUFS) is started again. */
export const MAX_DUMP_ATTEMPTS = 4;

/** A source of datagrams: the real netlink socket, or captured bytes in tests. */
export interface DatagramTransport {
  send(request: Uint8Array): void;
  /** The next datagram; its bytes stay valid until the next call. */
  receive(): Uint8Array;
  close(): void;
}

function sockaddrNetlink(): Uint8Array {
  const address = new Uint8Array(12);
  new DataView(address.buffer).setUint16(0, libc.AF_NETLINK, hostIsLittleEndian);
  return address; // pid 0 = the kernel, no multicast groups
}

export class NetlinkSocket implements DatagramTransport {
  private readonly fd: number;
  private readonly buffer = new Uint8Array(RECEIVE_BUFFER_SIZE);
  private readonly kernel = sockaddrNetlink();

  constructor() {
    this.fd = libc.socket(libc.AF_NETLINK, libc.SOCK_RAW | libc.SOCK_CLOEXEC, libc.NETLINK_SOCK_DIAG);
  }

  send(request: Uint8Array): void {
    libc.sendTo(this.fd, request, this.kernel);
  }

  receive(): Uint8Array {
    for (;;) {
      try {
        const length = libc.recv(this.fd, this.buffer, libc.MSG_TRUNC);
        if (length > this.buffer.byteLength) {
          throw new ProtocolError(`netlink: a ${length}-byte datagram does not fit the receive buffer`);
        }
        return this.buffer.subarray(0, length);
      } catch (error) {
        if (error instanceof SystemCallError && error.code === 'EINTR') continue;
        throw error;
      }
    }
  }

  close(): void {
    libc.close(this.fd);
  }
}

export interface DumpRequest {
  family: 4 | 6;
  protocol: 'tcp' | 'udp';
  /**
   * Also ask for the attributes that carry option values (INET_DIAG_TOS, _TCLASS, _CONG;
   * the kernel adds _SOCKOPT, _MARK and _SKV6ONLY unasked) and return them as each
   * message's `optionFacts`, so that the option reader can skip those getsockopt calls.
   */
  optionFacts?: boolean;
  /** Make each tcp_info and sk_meminfo into objects (default true; see ParseSettings). */
  details?: boolean;
}

const bit = (attribute: number) => 1 << (attribute - 1);

let nextSequence = 1;

/**
 * What a dump makes of each socket's message as it is read, and keeps (or drops, for
 * null). One function for every dump, given the request, rather than a closure per dump:
 * the parse loop calls it for every socket, and its optimised code, which inlines the
 * one function it has seen there, is thrown away when another one turns up (V8's
 * "wrong call target"), at every table after the first.
 */
export type MessageConverter<T> = (message: InetDiagMessage, request: DumpRequest) => T | null;

/**
 * Runs one dump to its NLMSG_DONE, adding what `convert` makes of each socket to
 * `items`. Returns false when the kernel flagged the dump as interrupted
 * (NLM_F_DUMP_INTR: the tables changed while it walked them, so entries may be missing
 * or doubled).
 */
function runDump<T>(
  transport: DatagramTransport,
  request: DumpRequest,
  convert: MessageConverter<T>,
  items: T[],
): boolean {
  const sequence = nextSequence;
  // nlmsg_seq is 32 bits: past 2^32 - 1 the request would carry a truncated number and no
  // reply would ever match it, so a long-running process wraps it itself.
  nextSequence = nextSequence >= 0xffffffff ? 1 : nextSequence + 1;
  const call = `sock_diag(${request.protocol}${request.family === 6 ? '6' : ''})`;
  const body = formatInetDiagRequest({
    family: request.family === 4 ? libc.AF_INET : libc.AF_INET6,
    protocol: request.protocol === 'tcp' ? 6 : 17,
    extensions:
      bit(INET_DIAG_INFO) |
      bit(INET_DIAG_SKMEMINFO) |
      (request.optionFacts ? bit(INET_DIAG_TOS) | bit(INET_DIAG_TCLASS) | bit(INET_DIAG_CONG) : 0),
    states: ALL_STATES,
  });
  transport.send(
    formatNetlinkMessage(
      { type: SOCK_DIAG_BY_FAMILY, flags: NLM_F_REQUEST | NLM_F_DUMP, sequence, portId: 0 },
      body,
    ),
  );
  const optionFacts = request.optionFacts === true;
  const details = request.details !== false;
  let complete = true;
  for (;;) {
    const received = transport.receive();
    const size = received.byteLength;
    if (size === 0) throw new ProtocolError(`${call}: the socket closed before NLMSG_DONE`);
    // The messages are read in place, through views made once per datagram: no header
    // object, payload view or list of messages per socket.
    const datagram = datagramOf(received);
    const { bytes, view } = datagram;
    for (let offset = 0; offset < size; ) {
      offset = readSocketMessages(datagram, offset, sequence, request, convert, items);
      if (offset >= size) break; // past it when the last message is not padded to 4
      // Any other message: a stale reply, a socket flagged NLM_F_DUMP_INTR, the end.
      const length = netlinkMessageLength(view, offset, size);
      const next = offset + align4(length);
      const start = offset + NLMSG_HDRLEN;
      const end = offset + length;
      const header = nlmsghdr(view, offset);
      offset = next;
      if (header.sequence !== sequence) continue; // a stale reply to an abandoned dump
      if (header.flags & NLM_F_DUMP_INTR) complete = false;
      switch (header.type) {
        case SOCK_DIAG_BY_FAMILY: {
          const item = convert(readInetDiagMessage(datagram, start, end, optionFacts, details), request);
          if (item !== null) items.push(item);
          break;
        }
        case NLMSG_DONE: {
          if (end - start >= 4) {
            const error = parseNetlinkError(bytes.subarray(start, end), call);
            if (error) throw error;
          }
          return complete;
        }
        case NLMSG_ERROR: {
          const error = parseNetlinkError(bytes.subarray(start, end), call);
          if (error) throw error;
          break;
        }
        case NLMSG_NOOP:
          break;
        default:
          throw new ProtocolError(`${call}: unexpected message type ${header.type}`);
      }
    }
  }
}

/** The fields of a struct nlmsghdr that the dump loop checks. */
function nlmsghdr(view: DataView, offset: number): { type: number; flags: number; sequence: number } {
  return {
    type: view.getUint16(offset + 4, hostIsLittleEndian),
    flags: view.getUint16(offset + 6, hostIsLittleEndian),
    sequence: view.getUint32(offset + 8, hostIsLittleEndian),
  };
}

/**
 * Reads the run of plain socket messages of this dump that starts at `offset` (each
 * length checked), and returns where the first other message starts, or the end of the
 * datagram. The sockets, nearly every message of a dump, get a loop of their own that
 * never meets the rest: V8 keeps its compiled code, whereas a loop that also handled
 * NLMSG_DONE lost it at the end of every dump and ran the next one unoptimised until
 * it was compiled again.
 */
function readSocketMessages<T>(
  datagram: Datagram,
  offset: number,
  sequence: number,
  request: DumpRequest,
  convert: MessageConverter<T>,
  items: T[],
): number {
  const { view } = datagram;
  const size = view.byteLength;
  const le = hostIsLittleEndian;
  const optionFacts = request.optionFacts === true;
  const details = request.details !== false;
  while (offset < size) {
    const length = netlinkMessageLength(view, offset, size);
    const plainSocket =
      view.getUint16(offset + 4, le) === SOCK_DIAG_BY_FAMILY &&
      (view.getUint16(offset + 6, le) & NLM_F_DUMP_INTR) === 0 &&
      view.getUint32(offset + 8, le) === sequence;
    if (!plainSocket) break;
    const item = convert(
      readInetDiagMessage(datagram, offset + NLMSG_HDRLEN, offset + length, optionFacts, details),
      request,
    );
    if (item !== null) items.push(item);
    offset += align4(length);
  }
  return offset;
}

/**
 * Dumps every socket of one family and protocol, in every state. An interrupted dump,
 * or one that overran the socket's buffer (ENOBUFS), is started again from scratch on a
 * fresh socket (the kernel may still be running the old dump on the old one), at most
 * MAX_DUMP_ATTEMPTS times; after that the last result is kept and `interrupted` says so.
 */
export function dumpInetSockets(
  openTransport: () => DatagramTransport,
  request: DumpRequest,
): { messages: InetDiagMessage[]; interrupted: boolean } {
  const { items, interrupted } = dumpInetSocketsAs(openTransport, request, theMessage);
  return { messages: items, interrupted };
}

const theMessage: MessageConverter<InetDiagMessage> = (message) => message;

/**
 * dumpInetSockets, each message made into what the caller keeps as it is read (or
 * dropped, for null): the message itself dies young, never copied by the collector.
 */
export function dumpInetSocketsAs<T>(
  openTransport: () => DatagramTransport,
  request: DumpRequest,
  convert: MessageConverter<T>,
): { items: T[]; interrupted: boolean } {
  for (let attempt = 1; ; attempt++) {
    const items: T[] = [];
    const transport = openTransport();
    let complete: boolean;
    try {
      complete = runDump(transport, request, convert, items);
    } catch (error) {
      if (error instanceof SystemCallError && error.code === 'ENOBUFS' && attempt < MAX_DUMP_ATTEMPTS)
        continue;
      throw error;
    } finally {
      transport.close();
    }
    if (complete) return { items, interrupted: false };
    if (attempt >= MAX_DUMP_ATTEMPTS) return { items, interrupted: true };
  }
}
