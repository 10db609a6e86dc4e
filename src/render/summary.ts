/**
 * `--summary`: counts instead of rows — per table and state, per Diag indicator, and per
 * value of each knetstat option as the Options column shows it (`SO_KEEPALIVE=0: 312
 * established`), so that a summary line and the rows it counts use the same words.
 */

import { STATE_ORDER } from '../filter.js';
import type { Protocol, SocketRecord, StateName, TableName } from '../model.js';
import { tableOf } from '../model.js';
import { KNETSTAT_OPTION_NAMES } from '../options/catalogue.js';
import { formatOptionsColumn } from '../options/display.js';
import type { KeepaliveDefaults } from '../procfs/sysctl.js';
import { unreadableMarker } from './text.js';

export type StateCounts = Partial<Record<StateName, number>>;

export interface TableSummary {
  total: number;
  states: StateCounts;
}

export interface Summary {
  total: number;
  tables: Partial<Record<TableName, TableSummary>>;
  /** Diag indicator → count (ESTABLISHED TCP only); `unknown` where tcp_info was missing. */
  diag: Record<string, number>;
  /** Per protocol: `NAME=VALUE` as the Options column shows it → counts per state. */
  options: Partial<Record<Protocol, Record<string, StateCounts>>>;
  /** Per protocol: why options are unknown (the column's marker) → counts per state. */
  optionsUnknown: Partial<Record<Protocol, Record<string, StateCounts>>>;
}

function bump(counts: StateCounts, state: StateName): void {
  counts[state] = (counts[state] ?? 0) + 1;
}

/** record[key], created empty when missing. */
function entryOf<V>(record: Record<string, V>, key: string, create: () => V): V {
  let value = record[key];
  if (value === undefined) {
    value = create();
    record[key] = value;
  }
  return value;
}

function sortStates(counts: StateCounts): StateCounts {
  const out: StateCounts = {};
  for (const state of STATE_ORDER) if (counts[state] !== undefined) out[state] = counts[state];
  return out;
}

function optionOrder(token: string): [number, number, string] {
  const at = token.indexOf('=');
  const name = token.slice(0, at);
  const value = token.slice(at + 1);
  const index = KNETSTAT_OPTION_NAMES.indexOf(name);
  return [index < 0 ? Number.MAX_SAFE_INTEGER : index, Number.parseFloat(value), value];
}

function compareTokens(a: string, b: string): number {
  const [ia, na, sa] = optionOrder(a);
  const [ib, nb, sb] = optionOrder(b);
  if (ia !== ib) return ia - ib;
  if (na !== nb && !Number.isNaN(na) && !Number.isNaN(nb)) return na - nb;
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function sortedRecord(record: Record<string, StateCounts>, compare?: (a: string, b: string) => number) {
  const out: Record<string, StateCounts> = {};
  for (const key of Object.keys(record).sort(compare)) out[key] = sortStates(record[key] as StateCounts);
  return out;
}

const DIAG_ORDER = ['>|', '|<', '>|<', '>#', 'unknown'];

export function summarize(
  sockets: readonly SocketRecord[],
  tables: readonly TableName[],
  keepalive: KeepaliveDefaults,
): Summary {
  const tableCounts = new Map<TableName, TableSummary>(tables.map((t) => [t, { total: 0, states: {} }]));
  const diag: Record<string, number> = {};
  const options: Record<string, Record<string, StateCounts>> = {};
  const unknown: Record<string, Record<string, StateCounts>> = {};
  for (const socket of sockets) {
    const table = tableOf(socket.protocol, socket.family);
    let entry = tableCounts.get(table);
    if (!entry) {
      entry = { total: 0, states: {} };
      tableCounts.set(table, entry);
    }
    entry.total++;
    bump(entry.states, socket.state);
    if (socket.protocol === 'tcp' && socket.state === 'ESTABLISHED') {
      const indicator = socket.diag === null ? 'unknown' : socket.diag;
      if (indicator !== '') diag[indicator] = (diag[indicator] ?? 0) + 1;
    }
    if (socket.minisocket) continue; // TIME_WAIT and requests have no options to count
    if (socket.options === null) {
      const marker = unreadableMarker(socket) || '[unknown]';
      const byMarker = entryOf(unknown, socket.protocol, () => ({}));
      bump(
        entryOf(byMarker, marker, () => ({})),
        socket.state,
      );
      continue;
    }
    const column = formatOptionsColumn(socket, { kind: 'knetstat' }, keepalive);
    const byToken = entryOf(options, socket.protocol, () => ({}));
    for (const token of column === '' ? [] : column.split(',')) {
      bump(
        entryOf(byToken, token, () => ({})),
        socket.state,
      );
    }
  }
  const summary: Summary = { total: sockets.length, tables: {}, diag: {}, options: {}, optionsUnknown: {} };
  for (const [table, entry] of [...tableCounts].sort(
    ([a], [b]) => ['tcp', 'tcp6', 'udp', 'udp6'].indexOf(a) - ['tcp', 'tcp6', 'udp', 'udp6'].indexOf(b),
  )) {
    summary.tables[table] = { total: entry.total, states: sortStates(entry.states) };
  }
  for (const indicator of DIAG_ORDER) if (diag[indicator]) summary.diag[indicator] = diag[indicator];
  for (const protocol of ['tcp', 'udp'] as const) {
    const o = options[protocol];
    if (o) summary.options[protocol] = sortedRecord(o, compareTokens);
    const u = unknown[protocol];
    if (u) summary.optionsUnknown[protocol] = sortedRecord(u);
  }
  return summary;
}

function describeStates(counts: StateCounts): string {
  return Object.entries(counts)
    .map(([state, n]) => `${n} ${state.toLowerCase()}`)
    .join(', ');
}

/** The summary as text; every line ends in "\n". */
export function renderSummaryText(summary: Summary): string {
  const lines: string[] = [`Sockets: ${summary.total}`];
  for (const [table, entry] of Object.entries(summary.tables)) {
    const states = describeStates(entry.states);
    lines.push(`  ${table.padEnd(5)} ${String(entry.total).padStart(6)}${states ? `  ${states}` : ''}`);
  }
  const hasTcp = Object.keys(summary.tables).some((t) => t.startsWith('tcp'));
  if (hasTcp) {
    const diagTotal = Object.values(summary.diag).reduce((a, b) => a + b, 0);
    lines.push(`Diag: ${diagTotal}`);
    for (const [indicator, n] of Object.entries(summary.diag)) {
      // The Diag column's `?` for unknown.
      const shown = indicator === 'unknown' ? '?' : indicator;
      lines.push(`  ${shown.padEnd(5)} ${String(n).padStart(6)} established`);
    }
  }
  for (const protocol of ['tcp', 'udp'] as const) {
    const o = summary.options[protocol];
    const u = summary.optionsUnknown[protocol];
    if (!o && !u) continue;
    lines.push(`Options of ${protocol.toUpperCase()} sockets:`);
    for (const [token, counts] of Object.entries(o ?? {}))
      lines.push(`  ${token}: ${describeStates(counts)}`);
    for (const [marker, counts] of Object.entries(u ?? {}))
      lines.push(`  ${marker}: ${describeStates(counts)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function renderSummaryJson(summary: Summary): string {
  return `${JSON.stringify(summary)}\n`;
}
