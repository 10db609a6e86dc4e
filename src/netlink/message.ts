/**
 * Netlink framing: struct nlmsghdr, message iteration within one recv() datagram,
 * and NLMSG_ERROR. Layouts from include/uapi/linux/netlink.h.
 */
import { ProtocolError, SystemCallError } from '../sys/errors.js';
import { ByteReader, hostIsLittleEndian } from './byte-reader.js';

export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;

export interface NetlinkMessageHeader {
  length: number;
  type: number;
  flags: number;
  sequence: number;
  portId: number;
}

export interface NetlinkMessage {
  header: NetlinkMessageHeader;
  /** The payload after the header, `length - 16` bytes, a view into the datagram. */
  payload: Uint8Array;
}

export function align4(length: number): number {
  return (length + 3) & ~3;
}

export function parseNetlinkMessageHeader(bytes: Uint8Array): NetlinkMessageHeader {
  const reader = new ByteReader(bytes, 'nlmsghdr');
  return {
    length: reader.u32(),
    type: reader.u16(),
    flags: reader.u16(),
    sequence: reader.u32(),
    portId: reader.u32(),
  };
}

export function formatNetlinkMessage(
  header: Omit<NetlinkMessageHeader, 'length'>,
  payload: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(NLMSG_HDRLEN + payload.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, out.byteLength, hostIsLittleEndian);
  view.setUint16(4, header.type, hostIsLittleEndian);
  view.setUint16(6, header.flags, hostIsLittleEndian);
  view.setUint32(8, header.sequence, hostIsLittleEndian);
  view.setUint32(12, header.portId, hostIsLittleEndian);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

/**
 * The nlmsg_len of the message at `offset` of a `size`-byte datagram, checked. The kernel
 * never splits a message across datagrams, so a header whose length runs past the
 * datagram, or is shorter than a header, is a protocol error rather than something to
 * wait for; so are stray bytes too few for a header.
 */
export function netlinkMessageLength(view: DataView, offset: number, size: number): number {
  if (size - offset < NLMSG_HDRLEN) {
    throw new ProtocolError(`netlink: ${size - offset} stray bytes after the last message`);
  }
  const length = view.getUint32(offset, hostIsLittleEndian);
  if (length < NLMSG_HDRLEN || length > size - offset) {
    throw new ProtocolError(
      `netlink: message length ${length} at offset ${offset} does not fit the ${size}-byte datagram`,
    );
  }
  return length;
}

/** The messages in one datagram, each checked by netlinkMessageLength as it is reached. */
export function* splitNetlinkMessages(datagram: Uint8Array): Generator<NetlinkMessage> {
  const view = new DataView(datagram.buffer, datagram.byteOffset, datagram.byteLength);
  const size = datagram.byteLength;
  for (let offset = 0; offset < size; ) {
    const length = netlinkMessageLength(view, offset, size);
    const header: NetlinkMessageHeader = {
      length,
      type: view.getUint16(offset + 4, hostIsLittleEndian),
      flags: view.getUint16(offset + 6, hostIsLittleEndian),
      sequence: view.getUint32(offset + 8, hostIsLittleEndian),
      portId: view.getUint32(offset + 12, hostIsLittleEndian),
    };
    yield { header, payload: datagram.subarray(offset + NLMSG_HDRLEN, offset + length) };
    offset += align4(length);
  }
}

/**
 * NLMSG_ERROR's payload: a negative errno (0 is an ACK) and the offending request's
 * header. Returns the error, or null for an ACK.
 */
export function parseNetlinkError(payload: Uint8Array, call: string): SystemCallError | null {
  const reader = new ByteReader(payload, 'nlmsgerr');
  const error = reader.i32();
  if (error === 0) return null;
  return new SystemCallError(call, -error);
}
