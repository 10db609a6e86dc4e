/**
 * knetstat's tables, byte for byte: `%6d %6d `, endpoints padded to 23 columns, the
 * four-letter state, Diag padded to 4, then the Options. See DESIGN.md.
 */
import * as util from 'node:util';
import { formatEndpoint } from '../address.js';
import type { SocketOptions, SocketOwner, SocketRecord, TableName } from '../model.js';
import { formatOptionsColumn, type OptionSelection } from '../options/display.js';
import type { KeepaliveDefaults } from '../procfs/sysctl.js';
import { STATE_ABBREVIATIONS } from '../states.js';

export const TCP_HEADER = 'Recv-Q Send-Q Local Address           Foreign Address         Stat Diag Options';
export const UDP_HEADER = 'Recv-Q Send-Q Local Address           Foreign Address         Options';

export interface TextRenderSettings {
  selection: OptionSelection;
  keepalive: KeepaliveDefaults;
  /** Adds a PID/Program column before Options. */
  showProcesses?: boolean;
  /** Colours Diag indicators (a TTY without NO_COLOR only; see shouldUseColour). */
  colour?: boolean;
}

/**
 * Colour only on a terminal, never with NO_COLOR set (no-color.org) or TERM=dumb, and
 * only where util.styleText exists (Node 20.12+; a namespace import, so that an older
 * Node still loads this module).
 */
export function shouldUseColour(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (!stream.isTTY) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return typeof util.styleText === 'function';
}

type Style = Parameters<typeof util.styleText>[0];

/** styleText without its own stream check: the caller has decided (shouldUseColour). */
export function style(format: Style, text: string): string {
  return util.styleText(format, text, { validateStream: false });
}

const DIAG_STYLES: Readonly<Record<string, Style>> = {
  '>|<': 'red',
  '>|': 'yellow',
  '|<': 'yellow',
  '>#': 'magenta',
  '?': 'dim',
};

function formatDiag(diag: string, colour: boolean): string {
  const padded = diag.padEnd(4);
  const format = DIAG_STYLES[diag];
  if (!colour || !format) return padded;
  return style(format, diag) + padded.slice(diag.length);
}

export function tableHeader(table: TableName, showProcesses = false): string {
  const header = table.startsWith('tcp') ? TCP_HEADER : UDP_HEADER;
  return showProcesses
    ? header.replace(/Options$/, `${'PID/Program'.padEnd(PROCESS_COLUMN_WIDTH)} Options`)
    : header;
}

const PROCESS_COLUMN_WIDTH = 20;

function pad6(value: number): string {
  return String(value).padStart(6);
}

function padEndpoint(address: string, port: number): string {
  return formatEndpoint(address, port).padEnd(23);
}

/**
 * Control characters (C0, DEL, C1) shown as \xNN and the bidirectional controls that
 * reorder what follows as \u{NNNN}: a process can name itself anything, including a
 * terminal escape sequence. A backslash is doubled so that an escape cannot be faked.
 */
export function escapeControlCharacters(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\\]/g, (c) => {
    if (c === '\\') return '\\\\';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

function formatOwner(owner: SocketOwner): string {
  return `${owner.pid}/${escapeControlCharacters(owner.command).replaceAll(',', '\\x2c')}`;
}

/** `pid/comm` per owner, joined with commas; a comma inside a name is escaped too. */
export function formatProcesses(socket: SocketRecord): string {
  const owners = socket.processes;
  if (owners.length === 0) return '-';
  // Most sockets have one owner (a process holding it twice is shown once).
  if (owners.length === 1) return formatOwner(owners[0] as SocketOwner);
  return [...new Set(owners.map(formatOwner))].join(',');
}

const UNREADABLE_MARKERS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^not permitted/, '[not permitted]'],
  [/^not read: this host has cgroup v1/, '[not read: cgroup v1]'],
  [/^no visible owner/, '[no owner]'],
  [/^no process holds it/, '[no owner]'],
  [/not available/, '[unsupported]'],
  [/now holds another file/, '[fd reused]'],
  [/closed during the scan/, '[closed]'],
];

/** What the Options column shows when the options could not be read. */
export function unreadableMarker(socket: SocketRecord): string {
  if (socket.options !== null) return '';
  const why = socket.optionsError ?? '';
  for (const [pattern, marker] of UNREADABLE_MARKERS) if (pattern.test(why)) return marker;
  return socket.optionsError === undefined ? '' : '[unreadable]';
}

/** Past this many options objects per kind of socket, a new one's column is not kept. */
const MAX_KEPT_COLUMNS = 4096;

/**
 * The Options column of each options object met in one rendering. Sockets share one
 * object where all their options are the same (options/options-table.ts), so a column
 * is built once per object, not per row. It depends on the object, the protocol and
 * whether the socket listens (TCP_FASTOPEN shows on listeners only): one map for each.
 */
export class OptionsColumns {
  private readonly kept: Array<Map<SocketOptions, string>> = [new Map(), new Map(), new Map(), new Map()];

  constructor(private readonly settings: TextRenderSettings) {}

  of(socket: SocketRecord, options: SocketOptions): string {
    const kept = this.kept[(socket.protocol === 'tcp' ? 2 : 0) + (socket.state === 'LISTEN' ? 1 : 0)] as Map<
      SocketOptions,
      string
    >;
    let column = kept.get(options);
    if (column === undefined) {
      column = formatOptionsColumn(socket, this.settings.selection, this.settings.keepalive);
      if (kept.size < MAX_KEPT_COLUMNS) kept.set(options, column);
    }
    return column;
  }
}

export function formatRow(
  socket: SocketRecord,
  settings: TextRenderSettings,
  columns: OptionsColumns = new OptionsColumns(settings),
): string {
  let line = `${pad6(socket.recvQ)} ${pad6(socket.sendQ)} ${padEndpoint(socket.local.address, socket.local.port)} ${padEndpoint(socket.remote.address, socket.remote.port)} `;
  if (socket.protocol === 'tcp') {
    line += `${STATE_ABBREVIATIONS[socket.state as keyof typeof STATE_ABBREVIATIONS]} `;
    // knetstat ends TIME_WAIT and request rows here; -p still says that no process holds them.
    if (socket.minisocket) return settings.showProcesses ? `${line}${''.padEnd(4)} -` : line;
    line += `${formatDiag(socket.diag ?? '?', settings.colour ?? false)} `;
  }
  if (settings.showProcesses) line += `${formatProcesses(socket).padEnd(PROCESS_COLUMN_WIDTH)} `;
  line += socket.options === null ? unreadableMarker(socket) : columns.of(socket, socket.options);
  return line;
}

/**
 * One table, in pieces of whole lines: its header, then its rows, each line ending in
 * "\n", about ROWS_PIECE characters of rows a piece — one piece per row would cost a
 * generator step each, tens of thousands of them.
 */
export function* renderTableLines(
  table: TableName,
  sockets: readonly SocketRecord[],
  settings: TextRenderSettings,
): Generator<string> {
  yield `${tableHeader(table, settings.showProcesses)}\n`;
  const columns = new OptionsColumns(settings);
  let piece = '';
  for (const socket of sockets) {
    piece += `${formatRow(socket, settings, columns)}\n`;
    if (piece.length >= ROWS_PIECE) {
      yield piece;
      piece = '';
    }
  }
  if (piece !== '') yield piece;
}

const ROWS_PIECE = 16 * 1024;

/** One table as one string: its header, then its rows, each line ending in "\n". */
export function renderTable(
  table: TableName,
  sockets: readonly SocketRecord[],
  settings: TextRenderSettings,
): string {
  return [...renderTableLines(table, sockets, settings)].join('');
}
