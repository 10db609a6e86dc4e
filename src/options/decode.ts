import type { OptionValue } from '../model.js';
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import type { OptionDecoding } from './catalogue.js';

const UNLIMITED_U64 = 0xffffffffffffffffn;

// The reader decodes every option out of slots of a few reused memory blocks (the plain
// calls' and the io_uring's): one view per block, not one per call; reads add the slot's
// offset.
const views = new Map<ArrayBufferLike, DataView>();

function viewOf(bytes: Uint8Array): DataView {
  let view = views.get(bytes.buffer);
  if (!view) {
    // Blocks come and go with readers; the few live ones are all that is kept.
    if (views.size > 8) views.clear();
    view = new DataView(bytes.buffer);
    views.set(bytes.buffer, view);
  }
  return view;
}

/** A struct __kernel_sock_timeval as the milliseconds knetstat reports (0: no timeout). */
export function timevalMilliseconds(seconds: bigint, microseconds: bigint): number {
  return Number(seconds) * 1000 + Math.floor(Number(microseconds) / 1000);
}

/** An unsigned long as knetstat reports it: a number, or "18446744073709551615" for the unlimited ~0. */
export function u64Value(value: bigint): number | string {
  return value === UNLIMITED_U64 ? String(value) : Number(value);
}

/** A struct linger as knetstat reports it: null when off, else the seconds. */
export function lingerValue(onoff: number, seconds: number): number | null {
  return onoff === 0 ? null : seconds;
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
  const at = bytes.byteOffset;
  switch (decoding) {
    case 'int':
      if (length >= 4) return view.getInt32(at, hostIsLittleEndian);
      // A few options (e.g. IP_TOS, IP_TTL asked with a short buffer) may answer one byte.
      return length === 1 ? view.getUint8(at) : undefined;
    case 'timeval': {
      if (length < 16) return undefined;
      return timevalMilliseconds(
        view.getBigInt64(at, hostIsLittleEndian),
        view.getBigInt64(at + 8, hostIsLittleEndian),
      );
    }
    case 'linger': {
      if (length < 8) return undefined;
      return lingerValue(view.getInt32(at, hostIsLittleEndian), view.getInt32(at + 4, hostIsLittleEndian));
    }
    case 'string': {
      const end = bytes.subarray(0, length).indexOf(0);
      return Buffer.from(bytes.buffer, bytes.byteOffset, end < 0 ? length : end).toString('latin1');
    }
    case 'u64': {
      if (length < 8) return length >= 4 ? view.getUint32(at, hostIsLittleEndian) : undefined;
      return u64Value(view.getBigUint64(at, hostIsLittleEndian));
    }
    case 'txtime':
      if (length < 8) return undefined;
      return `${view.getInt32(at, hostIsLittleEndian)}/${view.getUint32(at + 4, hostIsLittleEndian)}`;
  }
}
