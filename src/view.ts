/**
 * One look at the sockets as a request asks for it: collect what the output needs,
 * filter, and render as tables, JSON or a summary. The CLI takes one; watch mode takes
 * one per refresh.
 */
import type { CliRequest } from './args.js';
import { type CollectSettings, collectSockets } from './collect.js';
import { applyFilter, optionsNamedBy } from './filter.js';
import type { SocketRecord, TableName } from './model.js';
import { tableOf } from './model.js';
import { optionsNeeded } from './options/display.js';
import { type KeepaliveDefaults, readKeepaliveDefaults } from './procfs/sysctl.js';
import type { ChunkBytes } from './render/chunks.js';
import { stringifyJson, toJsonSocket, writeJsonSockets } from './render/json.js';
import { renderSummaryJson, renderSummaryText, summarize } from './render/summary.js';
import { renderTableLines } from './render/text.js';

export interface Snapshot {
  time: Date;
  /** The sockets that passed the filter, in table order. */
  sockets: SocketRecord[];
  keepalive: KeepaliveDefaults;
  warnings: string[];
}

/**
 * Only what the output needs is read: the text's Options column (or the knetstat set
 * for --summary), plus every option a --option filter names; --json carries them all.
 */
export function collectSettingsFor(request: CliRequest): CollectSettings {
  let options: Set<string> | undefined;
  if (request.summary) options = optionsNeeded({ kind: 'knetstat' });
  else if (!request.json) options = optionsNeeded(request.selection);
  if (options) for (const name of optionsNamedBy(request.filter)) options.add(name);
  return {
    tables: request.tables,
    source: request.source,
    options,
    parallel: request.helper ? 'auto' : 'off',
    bpf: request.bpf ? 'auto' : 'off',
    // No output shows tcp_info or the memory counters: only Diag and the buffer sizes,
    // which the parser takes from them.
    details: false,
  };
}

export function takeSnapshot(request: CliRequest): Snapshot {
  const collection = collectSockets(collectSettingsFor(request));
  const filtered = applyFilter(collection.sockets, request.filter);
  return {
    time: new Date(),
    sockets: filtered.sockets,
    keepalive: readKeepaliveDefaults(),
    warnings: [...collection.warnings, ...filtered.warnings],
  };
}

/**
 * The snapshot as text, in pieces of whole lines (each ending in "\n"): the tables, or
 * the summary. The CLI streams it, so that the whole text is never held at once.
 */
export function* renderTextDocument(
  request: CliRequest,
  snapshot: Snapshot,
  colour: boolean,
): Generator<string> {
  if (request.summary) {
    yield renderSummaryText(summarize(snapshot.sockets, request.tables, snapshot.keepalive));
    return;
  }
  const settings = {
    selection: request.selection,
    keepalive: snapshot.keepalive,
    showProcesses: request.showProcesses,
    colour,
  };
  // One pass sorts the sockets into their tables (a table not asked for has none).
  const rows = new Map<TableName, SocketRecord[]>(request.tables.map((table) => [table, []]));
  for (const socket of snapshot.sockets) rows.get(tableOf(socket.protocol, socket.family))?.push(socket);
  for (const [table, sockets] of rows) yield* renderTableLines(table, sockets, settings);
}

/** The whole text at once, for watch mode's frames. */
export function renderText(request: CliRequest, snapshot: Snapshot, colour: boolean): string {
  return [...renderTextDocument(request, snapshot, colour)].join('');
}

/** The snapshot as --json prints it, written into chunks (see writeChunks): an array of sockets, or the summary object. */
export function* writeJsonDocument(
  request: CliRequest,
  snapshot: Snapshot,
  chunk: ChunkBytes,
): Generator<void> {
  if (request.summary)
    chunk.text(renderSummaryJson(summarize(snapshot.sockets, request.tables, snapshot.keepalive)));
  else yield* writeJsonSockets(snapshot.sockets, chunk);
}

/** One NDJSON line of watch mode: the time and the sockets (or the summary). */
export function renderJsonLine(request: CliRequest, snapshot: Snapshot): string {
  const time = snapshot.time.toISOString();
  const document = request.summary
    ? { time, summary: summarize(snapshot.sockets, request.tables, snapshot.keepalive) }
    : { time, sockets: snapshot.sockets.map(toJsonSocket) };
  return `${stringifyJson(document)}\n`;
}

/** "7 sockets: tcp 4, udp 3" — for the status line of watch mode. */
export function describeCounts(tables: readonly TableName[], sockets: readonly SocketRecord[]): string {
  const counts = new Map<TableName, number>(tables.map((t) => [t, 0]));
  for (const s of sockets) {
    const table = tableOf(s.protocol, s.family);
    counts.set(table, (counts.get(table) ?? 0) + 1);
  }
  const parts = [...counts].map(([table, n]) => `${table} ${n}`);
  return `${sockets.length} socket${sockets.length === 1 ? '' : 's'}: ${parts.join(', ')}`;
}
