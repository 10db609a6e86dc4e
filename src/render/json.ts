/** `--json`: one array, one object per socket, in the order of the text tables (DESIGN.md). */
import type { SocketRecord } from '../model.js';

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

/** The JSON array, one socket per line so that large outputs stream and diff well. */
export function* renderJson(sockets: readonly SocketRecord[]): Generator<string> {
  if (sockets.length === 0) {
    yield '[]\n';
    return;
  }
  for (let i = 0; i < sockets.length; i++) {
    const socket = sockets[i] as SocketRecord;
    yield `${i === 0 ? '[' : ','}${stringifyJson(toJsonSocket(socket))}\n`;
  }
  yield ']\n';
}
