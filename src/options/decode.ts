import type { OptionValue } from '../model.js';
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import type { OptionDecoding } from './catalogue.js';

const UNLIMITED_U64 = 0xffffffffffffffffn;

/**
 * Turns getsockopt's bytes into a value. Returns undefined when the kernel answered with
 * fewer bytes than the layout needs: such an option is absent, not guessed.
 */
export function decodeOption(
  decoding: OptionDecoding,
  bytes: Uint8Array,
  length: number,
): OptionValue | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  switch (decoding) {
    case 'int':
      if (length >= 4) return view.getInt32(0, hostIsLittleEndian);
      // A few options (e.g. IP_TOS, IP_TTL asked with a short buffer) may answer one byte.
      return length === 1 ? view.getUint8(0) : undefined;
    case 'timeval': {
      if (length < 16) return undefined;
      const seconds = Number(view.getBigInt64(0, hostIsLittleEndian));
      const microseconds = Number(view.getBigInt64(8, hostIsLittleEndian));
      return seconds * 1000 + Math.floor(microseconds / 1000);
    }
    case 'linger': {
      if (length < 8) return undefined;
      return view.getInt32(0, hostIsLittleEndian) === 0 ? null : view.getInt32(4, hostIsLittleEndian);
    }
    case 'string': {
      const end = bytes.subarray(0, length).indexOf(0);
      return Buffer.from(bytes.buffer, bytes.byteOffset, end < 0 ? length : end).toString('latin1');
    }
    case 'u64': {
      if (length < 8) return length >= 4 ? view.getUint32(0, hostIsLittleEndian) : undefined;
      const value = view.getBigUint64(0, hostIsLittleEndian);
      return value === UNLIMITED_U64 ? String(value) : Number(value);
    }
    case 'txtime':
      if (length < 8) return undefined;
      return `${view.getInt32(0, hostIsLittleEndian)}/${view.getUint32(4, hostIsLittleEndian)}`;
  }
}
