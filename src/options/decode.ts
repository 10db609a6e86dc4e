import type { OptionValue } from '../model.js';
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import type { OptionDecoding } from './catalogue.js';

const UNLIMITED_U64 = 0xffffffffffffffffn;

// The reader decodes every option out of one reused buffer: one view of it, not one per call.
let viewedBytes: Uint8Array | undefined;
let view: DataView = new DataView(new ArrayBuffer(0));

function viewOf(bytes: Uint8Array): DataView {
  if (bytes !== viewedBytes) {
    viewedBytes = bytes;
    view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  return view;
}

/**
 * Turns getsockopt's bytes into a value. Returns undefined when the kernel answered with
 * fewer bytes than the layout needs: such an option is absent, not guessed.
 */
export function decodeOption(
  decoding: OptionDecoding,
  bytes: Uint8Array,
  length: number,
): OptionValue | undefined {
  // A length past the buffer cannot come from the kernel (it writes at most what it is
  // given); were it to, nothing is read. Each read below checks `length` first, as the
  // shared view may reach further.
  if (length > bytes.byteLength) return undefined;
  const view = viewOf(bytes);
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
