/**
 * The /proc/net/{tcp,tcp6,udp,udp6} fallback, for hosts where sock_diag is refused.
 * Each line: `sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode ...`,
 * addresses as the kernel's %08X of each 32-bit word in host order.
 */
import { readFileSync } from 'node:fs';
import { formatIPv4, formatIPv6 } from '../address.js';
import type { Endpoint, Family, Protocol } from '../model.js';
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import { ProtocolError } from '../sys/errors.js';

export interface ProcNetEntry {
  family: Family;
  state: number;
  local: Endpoint;
  remote: Endpoint;
  sendQ: number;
  recvQ: number;
  uid: number;
  inode: number;
}

const HEX = /^[0-9A-Fa-f]+$/;

function parseHex(text: string | undefined, what: string, maxDigits: number): number {
  if (text === undefined || text.length === 0 || text.length > maxDigits || !HEX.test(text)) {
    throw new ProtocolError(`/proc/net: bad ${what} ${JSON.stringify(text)}`);
  }
  return Number.parseInt(text, 16);
}

function parseDecimal(text: string | undefined, what: string): number {
  if (text === undefined || !/^\d{1,20}$/.test(text))
    throw new ProtocolError(`/proc/net: bad ${what} ${JSON.stringify(text)}`);
  return Number(text);
}

function parseAddress(hex: string, family: Family): string {
  const words = family === 4 ? 1 : 4;
  if (hex.length !== words * 8 || !HEX.test(hex))
    throw new ProtocolError(`/proc/net: bad address ${JSON.stringify(hex)}`);
  const bytes = new Uint8Array(words * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < words; i++) {
    view.setUint32(i * 4, Number.parseInt(hex.slice(i * 8, i * 8 + 8), 16), hostIsLittleEndian);
  }
  return family === 4 ? formatIPv4(bytes) : formatIPv6(bytes);
}

function parseEndpoint(text: string | undefined, family: Family): Endpoint {
  const colon = text?.indexOf(':') ?? -1;
  if (text === undefined || colon < 0)
    throw new ProtocolError(`/proc/net: bad endpoint ${JSON.stringify(text)}`);
  return {
    address: parseAddress(text.slice(0, colon), family),
    port: parseHex(text.slice(colon + 1), 'port', 4),
  };
}

/** Parses one table's text. The first line is the header and is skipped. */
export function parseProcNetTable(text: string, family: Family): ProcNetEntry[] {
  const entries: ProcNetEntry[] = [];
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]?.trim();
    if (!line) continue;
    const fields = line.split(/\s+/);
    const [local, remote, state, queues, , , uid, , inode] = fields.slice(1);
    const [sendQ, recvQ] = (queues ?? '').split(':');
    entries.push({
      family,
      local: parseEndpoint(local, family),
      remote: parseEndpoint(remote, family),
      state: parseHex(state, 'state', 2),
      sendQ: parseHex(sendQ, 'tx_queue', 8),
      recvQ: parseHex(recvQ, 'rx_queue', 8),
      uid: parseDecimal(uid, 'uid'),
      inode: parseDecimal(inode, 'inode'),
    });
  }
  return entries;
}

export function procNetPath(protocol: Protocol, family: Family, procRoot = '/proc'): string {
  return `${procRoot}/net/${protocol}${family === 6 ? '6' : ''}`;
}

/**
 * The count after `label: inuse` in a /proc/net/sockstat file (e.g. "TCP: inuse 12 orphan
 * 0 ..."), or 0 where there is no such line.
 */
export function parseSockstatInUse(text: string, label: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${label}: `));
  const match = line ? /\binuse (\d+)/.exec(line) : null;
  return match ? Number(match[1]) : 0;
}

/**
 * About how many TCP sockets this network namespace holds (hashed ones, IPv4 and IPv6),
 * from sockstat before any dump: enough to decide whether a BPF pass is worth starting
 * early. 0 where sockstat cannot be read.
 */
export function tcpSocketsInUse(procRoot = '/proc'): number {
  let total = 0;
  for (const [file, label] of [
    ['sockstat', 'TCP'],
    ['sockstat6', 'TCP6'],
  ] as const) {
    try {
      total += parseSockstatInUse(readFileSync(`${procRoot}/net/${file}`, 'latin1'), label);
    } catch {
      // No IPv6, or no /proc/net: no estimate from it.
    }
  }
  return total;
}
