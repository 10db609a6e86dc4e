/**
 * The tests' own reading of /proc/net/{tcp,tcp6,udp,udp6} and of knetstat's text rows,
 * written apart from src/ (no import from it) so that a bug there cannot hide itself by
 * being on both sides of a comparison. Addresses are compared as bytes: the oracle turns
 * the kernel's hex words into bytes, and the knetstat side turns its printed address back
 * into bytes with the small parser below.
 */
import { endianness } from 'node:os';

export type TableName = 'tcp' | 'tcp6' | 'udp' | 'udp6';

/** The kernel's TCP state numbers (include/net/tcp_states.h) as knetstat abbreviates them. */
const TCP_STATES: Readonly<Record<number, string>> = {
  1: 'ESTB',
  2: 'SYNS',
  3: 'SYNR',
  4: 'FNW1',
  5: 'FNW2',
  6: 'TIMW',
  7: 'CLSD',
  8: 'CLSW',
  9: 'LACK',
  10: 'LSTN',
  11: 'CLSG',
  12: 'SYNR',
};

/** Names knetstat's JSON gives the same numbers (UDP: 7 is UNCONN, 1 ESTABLISHED). */
const TCP_STATE_NAMES: Readonly<Record<number, string>> = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING',
  12: 'SYN_RECV',
};

export interface OracleRow {
  /** Address bytes as lowercase hex, then ':' and the decimal port. */
  local: string;
  remote: string;
  /** knetstat's four letters for TCP; 'UNCONN' or 'ESTB' style is not used for UDP: see stateName. */
  state: string;
  /** The state as knetstat's JSON names it. */
  stateName: string;
  recvQ: number;
  sendQ: number;
  uid: number;
  inode: number;
}

function hexWordsToBytes(hex: string): Buffer {
  if (hex.length % 8 !== 0) throw new Error(`oracle: odd address ${hex}`);
  const bytes = Buffer.alloc(hex.length / 2);
  for (let i = 0; i < hex.length / 8; i++) {
    // The kernel prints each 32-bit word of the address with %08X, i.e. in host order.
    const word = Number.parseInt(hex.slice(i * 8, i * 8 + 8), 16);
    if (endianness() === 'LE') bytes.writeUInt32LE(word, i * 4);
    else bytes.writeUInt32BE(word, i * 4);
  }
  return bytes;
}

function endpointKey(field: string): string {
  const [address, port] = field.split(':');
  if (address === undefined || port === undefined) throw new Error(`oracle: bad endpoint ${field}`);
  return `${hexWordsToBytes(address).toString('hex')}:${Number.parseInt(port, 16)}`;
}

/** Parses the text of /proc/net/<table> (header line first). */
export function parseProcNet(table: TableName, text: string): OracleRow[] {
  const udp = table.startsWith('udp');
  return text
    .split('\n')
    .slice(1)
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const f = line.trim().split(/\s+/);
      const state = Number.parseInt(f[3] ?? '', 16);
      const [tx, rx] = (f[4] ?? '').split(':');
      const name = udp ? (state === 1 ? 'ESTABLISHED' : 'UNCONN') : (TCP_STATE_NAMES[state] ?? `?${state}`);
      return {
        local: endpointKey(f[1] ?? ''),
        remote: endpointKey(f[2] ?? ''),
        state: udp ? '' : (TCP_STATES[state] ?? `?${state}`),
        stateName: name,
        sendQ: Number.parseInt(tx ?? '', 16),
        recvQ: Number.parseInt(rx ?? '', 16),
        uid: Number(f[7]),
        inode: Number(f[9]),
      };
    });
}

/** Text address (dotted quad or IPv6, compressed or with a dotted tail) → bytes as hex. */
export function addressToHex(address: string): string {
  if (!address.includes(':')) {
    const parts = address.split('.').map(Number);
    if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255)))
      throw new Error(`bad IPv4 ${address}`);
    return Buffer.from(parts).toString('hex');
  }
  let text = address;
  let tail = '';
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail = addressToHex(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - restGroups.length;
  if (rest === undefined ? missing !== 0 : missing < 1) throw new Error(`bad IPv6 ${address}`);
  const groups = [...headGroups, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...restGroups];
  const hex = groups.map((g) => Number.parseInt(g, 16).toString(16).padStart(4, '0')).join('');
  return tail ? hex.slice(0, 24) + tail : hex;
}

/** knetstat's `ADDRESS:PORT` (or `ADDRESS:*`) → the oracle's key. */
export function endpointTextToKey(endpoint: string): string {
  const colon = endpoint.lastIndexOf(':');
  const port = endpoint.slice(colon + 1);
  return `${addressToHex(endpoint.slice(0, colon))}:${port === '*' ? 0 : Number(port)}`;
}

export interface TextRow {
  recvQ: number;
  sendQ: number;
  local: string;
  remote: string;
  /** TCP only: the four letters. */
  state: string;
  /** TCP full sockets only: the Diag field, trimmed (undefined for TIME_WAIT/SYN_RECV rows). */
  diag?: string;
  /** What follows the Diag field (TCP) or the remote endpoint (UDP). */
  options: string;
  line: string;
}

const TCP_ROW = /^ *(\d+) +(\d+) (\S+) +(\S+) +(\S{4}) (?:(.{4}) (.*))?$/;
const UDP_ROW = /^ *(\d+) +(\d+) (\S+) +(\S+) +(.*)$/;

/**
 * Splits one knetstat table (header line first) into rows. Endpoints are `padEnd(23)` plus
 * one space, so a run of spaces separates them; Diag is exactly four columns.
 */
export function parseKnetstatTable(text: string, protocol: 'tcp' | 'udp'): TextRow[] {
  const lines = text.split('\n').filter((l) => l !== '');
  return lines.slice(1).map((line) => {
    const m = (protocol === 'tcp' ? TCP_ROW : UDP_ROW).exec(line);
    if (!m) throw new Error(`not a knetstat ${protocol} row: ${JSON.stringify(line)}`);
    if (protocol === 'udp') {
      return {
        recvQ: Number(m[1]),
        sendQ: Number(m[2]),
        local: m[3] as string,
        remote: m[4] as string,
        state: '',
        options: m[5] as string,
        line,
      };
    }
    return {
      recvQ: Number(m[1]),
      sendQ: Number(m[2]),
      local: m[3] as string,
      remote: m[4] as string,
      state: m[5] as string,
      ...(m[6] === undefined ? {} : { diag: m[6].trim() }),
      options: m[7] ?? '',
      line,
    };
  });
}

/**
 * Splits knetstat's default output (several tables one after another, each beginning with
 * its header) into the text of each table.
 */
export function splitTables(output: string): string[] {
  const tables: string[] = [];
  for (const line of output.split('\n')) {
    if (line.startsWith('Recv-Q Send-Q')) tables.push(`${line}\n`);
    else if (line !== '') tables[tables.length - 1] += `${line}\n`;
  }
  return tables;
}
