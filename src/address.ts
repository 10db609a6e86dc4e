/**
 * Addresses as the kernel prints them: IPv4 as a dotted quad (%pI4) and IPv6 as %pI6c,
 * RFC 5952 style: lowercase hex, no leading zeros, the longest run of two or more zero
 * groups (the first of equal runs) as "::", and IPv4-mapped and ISATAP addresses with
 * their last 32 bits as a dotted quad.
 */

/** `bytes` holds 4 bytes in network order. */
export function formatIPv4(bytes: Uint8Array): string {
  return formatIPv4At(bytes, 0);
}

/** The 4 bytes at `at`: a sock_diag datagram is read in place, with no view per address. */
export function formatIPv4At(bytes: Uint8Array, at: number): string {
  return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
}

function group(bytes: Uint8Array, at: number, index: number): number {
  return ((bytes[at + index * 2] ?? 0) << 8) | (bytes[at + index * 2 + 1] ?? 0);
}

function isV4Mapped(bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < 10; i++) if (bytes[at + i] !== 0) return false;
  return bytes[at + 10] === 0xff && bytes[at + 11] === 0xff;
}

function isIsatap(bytes: Uint8Array, at: number): boolean {
  // (s6_addr32[2] | htonl(0x02000000)) == htonl(0x02005efe)
  return (
    ((bytes[at + 8] ?? 0) | 0x02) === 0x02 &&
    bytes[at + 9] === 0x00 &&
    bytes[at + 10] === 0x5e &&
    bytes[at + 11] === 0xfe
  );
}

/** `bytes` holds 16 bytes in network order. */
export function formatIPv6(bytes: Uint8Array): string {
  return formatIPv6At(bytes, 0);
}

/** The 16 bytes at `at`. */
export function formatIPv6At(bytes: Uint8Array, at: number): string {
  const embedsIPv4 = isV4Mapped(bytes, at) || isIsatap(bytes, at);
  const groups = embedsIPv4 ? 6 : 8;
  let longest = 1;
  let runStart = -1;
  for (let i = 0; i < groups; i++) {
    let run = 0;
    while (i + run < groups && group(bytes, at, i + run) === 0) run++;
    if (run > longest) {
      longest = run;
      runStart = i;
    }
  }
  let out = '';
  let needColon = false;
  for (let i = 0; i < groups; i++) {
    if (i === runStart) {
      if (needColon || i === 0) out += ':';
      out += ':';
      needColon = false;
      i += longest - 1;
      continue;
    }
    if (needColon) out += ':';
    out += group(bytes, at, i).toString(16);
    needColon = true;
  }
  if (embedsIPv4) {
    if (needColon) out += ':';
    out += formatIPv4At(bytes, at + 12);
  }
  return out;
}

/** knetstat's endpoint: ADDRESS:PORT, or ADDRESS:* for port 0. */
export function formatEndpoint(address: string, port: number): string {
  return `${address}:${port === 0 ? '*' : port}`;
}
