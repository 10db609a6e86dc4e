import { endianness } from 'node:os';
import { ProtocolError } from '../sys/errors.js';

/** True on little-endian hosts; netlink headers and tcp_info are in host order. */
export const hostIsLittleEndian = endianness() === 'LE';

/** Where a host-order u64's low and high 32-bit words are, as indexes into 32-bit words. */
export const LOW_WORD = hostIsLittleEndian ? 0 : 1;
export const HIGH_WORD = 1 - LOW_WORD;

/**
 * A received datagram and the views its parsers read through, made once per datagram
 * rather than per message. `words` reads the host-order 32-bit fields of inet_diag_msg,
 * tcp_info and sk_meminfo as plain array loads: netlink pads every message and attribute
 * to 4 bytes, so those fields sit on 4-byte boundaries of the datagram.
 * Neither view reaches past `bytes`; a 32-bit read past its end gives undefined.
 */
export interface Datagram {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly words: Uint32Array;
}

export function datagramOf(bytes: Uint8Array): Datagram {
  // A Uint32Array must start on a multiple of 4. The receive buffer does; bytes handed in
  // by a caller (a test, a capture) may not, and are then read from an aligned copy.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return {
    bytes: aligned,
    view: new DataView(aligned.buffer, aligned.byteOffset, aligned.byteLength),
    words: new Uint32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >>> 2),
  };
}

/**
 * A bounds-checked cursor over one struct or message. Every read checks the bytes are
 * there first, so a truncated or lying length becomes a ProtocolError, never a read past
 * the end of the buffer.
 */
export class ByteReader {
  private readonly view: DataView;
  offset = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.byteLength;
  }

  get remaining(): number {
    return this.bytes.byteLength - this.offset;
  }

  private need(count: number): number {
    const at = this.offset;
    if (count > this.bytes.byteLength - at) {
      throw new ProtocolError(
        `${this.what}: truncated (needs ${at + count} bytes, has ${this.bytes.byteLength})`,
      );
    }
    this.offset = at + count;
    return at;
  }

  u8(): number {
    return this.view.getUint8(this.need(1));
  }
  u16(): number {
    return this.view.getUint16(this.need(2), hostIsLittleEndian);
  }
  u16be(): number {
    return this.view.getUint16(this.need(2), false);
  }
  u32(): number {
    return this.view.getUint32(this.need(4), hostIsLittleEndian);
  }
  i32(): number {
    return this.view.getInt32(this.need(4), hostIsLittleEndian);
  }
  u64(): number {
    // Counters that exceed 2^53 lose precision; none of the values we show come close.
    return Number(this.view.getBigUint64(this.need(8), hostIsLittleEndian));
  }
  bytesView(count: number): Uint8Array {
    const at = this.need(count);
    return this.bytes.subarray(at, at + count);
  }
  skip(count: number): void {
    this.need(count);
  }
}
