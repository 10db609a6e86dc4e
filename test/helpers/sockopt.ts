/** For tests that set options on sockets of their own through libc.setsockopt. */
export const SOCK_STREAM = 1;
export const SOL_TCP = 6;

/** An int option value as setsockopt takes it (host order; the tests run on little-endian hosts). */
export function intValue(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, true);
  return bytes;
}
