/**
 * Reading knetstat's output back in tests: each row as one comparable key,
 * `PROTOCOL LOCAL REMOTE STATE`, from the text tables and from --json alike.
 */

import type { JsonSocket } from '../../src/render/json.js';
import { STATE_ABBREVIATIONS } from '../../src/states.js';

function endpoint(e: { address: string; port: number }): string {
  return `${e.address}:${e.port === 0 ? '*' : e.port}`;
}

/** A socket of `--json`, typed by the library's own schema. */
export type JsonRow = JsonSocket;

export function jsonKey(row: JsonRow): string {
  const state =
    row.protocol === 'tcp' ? STATE_ABBREVIATIONS[row.state as keyof typeof STATE_ABBREVIATIONS] : row.state;
  return `${row.protocol} ${endpoint(row.local)} ${endpoint(row.remote)} ${state}`;
}

export function jsonKeys(stdout: string): string[] {
  return (JSON.parse(stdout) as JsonRow[]).map(jsonKey).sort();
}

/** Keys of the text tables' rows; UDP rows carry their state as the JSON has it (unknown here). */
export function textKeys(stdout: string): string[] {
  const keys: string[] = [];
  let protocol: 'tcp' | 'udp' | null = null;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('Recv-Q')) {
      protocol = line.includes(' Stat ') ? 'tcp' : 'udp';
      continue;
    }
    if (line.trim() === '') continue;
    if (protocol === null) throw new Error(`a row before any header: ${line}`);
    const [, , local, remote, state] = line.trim().split(/\s+/);
    keys.push(`${protocol} ${local} ${remote} ${protocol === 'tcp' ? state : 'udp'}`);
  }
  return keys.sort();
}

/** A JSON key with UDP's state replaced as textKeys has it, so that both compare. */
export function asTextKey(key: string): string {
  return key.startsWith('udp ') ? key.replace(/ (UNCONN|ESTABLISHED)$/, ' udp') : key;
}
