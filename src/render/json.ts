/** `--json`: one array, one object per socket, in the order of the text tables (DESIGN.md). */
import type { SocketOptions, SocketRecord } from '../model.js';

export interface JsonSocket {
  protocol: SocketRecord['protocol'];
  family: SocketRecord['family'];
  state: SocketRecord['state'];
  local: SocketRecord['local'];
  remote: SocketRecord['remote'];
  recvQ: number;
  sendQ: number;
  inode: number;
  uid: number;
  diag: SocketRecord['diag'];
  processes: SocketRecord['processes'];
  options: SocketRecord['options'];
  optionsError?: string;
}

export function toJsonSocket(socket: SocketRecord): JsonSocket {
  const out: JsonSocket = {
    protocol: socket.protocol,
    family: socket.family,
    state: socket.state,
    local: socket.local,
    remote: socket.remote,
    recvQ: socket.recvQ,
    sendQ: socket.sendQ,
    inode: socket.inode,
    uid: socket.uid,
    diag: socket.diag,
    processes: socket.processes,
    options: socket.options,
  };
  if (socket.optionsError !== undefined) out.optionsError = socket.optionsError;
  return out;
}

/**
 * Whether a JSON text may hold DEL or a C1 control character. Almost none does, and this is
 * asked of every socket: its UTF-8 length equals its length only when every character is
 * below U+0080, which Buffer.byteLength tells with a native scan about four times faster
 * than a regular expression; DEL, the one ASCII character to escape, is then a
 * single-character search.
 */
function mayHoldDelOrC1(json: string): boolean {
  return Buffer.byteLength(json, 'utf8') !== json.length || json.includes('\u007f');
}

/**
 * JSON.stringify, with DEL and the C1 control characters (U+007F–U+009F) escaped too: JSON allows
 * them raw, but some terminals act on them, and a process name may hold them.
 */
export function stringifyJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (!mayHoldDelOrC1(json)) return json;
  return json.replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Past this many options objects, a new one's JSON is no longer kept: sockets share an
 * object where all their options are the same (options/options-table.ts), and each
 * shared one is written once; a host whose sockets all differ keeps no copy of them.
 */
const MAX_KEPT_OPTIONS_JSON = 4096;

/**
 * One socket's JSON: exactly stringifyJson(toJsonSocket(socket)), with the options
 * object's part written once per object (`written`) rather than once per socket that
 * shares it.
 */
function socketJson(socket: SocketRecord, written: Map<SocketOptions, string>): string {
  const whole = toJsonSocket(socket);
  // A record made by hand may lack `options`: JSON.stringify leaves such a key out.
  if (whole.options === undefined) return stringifyJson(whole);
  const { options, optionsError, ...rest } = whole;
  const head = stringifyJson(rest);
  let optionsJson = 'null';
  if (options !== null) {
    const kept = written.get(options);
    if (kept !== undefined) optionsJson = kept;
    else {
      optionsJson = stringifyJson(options);
      if (written.size < MAX_KEPT_OPTIONS_JSON) written.set(options, optionsJson);
    }
  }
  const error = optionsError === undefined ? '' : `,"optionsError":${stringifyJson(optionsError)}`;
  return `${head.slice(0, -1)},"options":${optionsJson}${error}}`;
}

/** The JSON array, one socket per line so that large outputs stream and diff well. */
export function* renderJson(sockets: readonly SocketRecord[]): Generator<string> {
  if (sockets.length === 0) {
    yield '[]\n';
    return;
  }
  const written = new Map<SocketOptions, string>();
  for (let i = 0; i < sockets.length; i++) {
    const socket = sockets[i] as SocketRecord;
    yield `${i === 0 ? '[' : ','}${socketJson(socket, written)}\n`;
  }
  yield ']\n';
}
