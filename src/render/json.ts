/** `--json`: one array, one object per socket, in the order of the text tables (DESIGN.md). */
import type { SocketOwner, SocketRecord } from '../model.js';
import { ChunkBytes } from './chunks.js';

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
 * Past this many, a recurring value's JSON (an options object, an address, a command) is
 * no longer kept: sockets share an options object where all their options are the same
 * (options/options-table.ts) and each shared one is encoded once; a host whose sockets
 * all differ keeps no copy of them.
 */
const MAX_KEPT = 4096;

/** The UTF-8 of JSON texts that recur in a listing, each made once (up to MAX_KEPT of a kind). */
class KeptJson {
  private readonly kept = new Map<unknown, Uint8Array>();

  constructor(private readonly make: (value: never) => string) {}

  /** `value`'s bytes: made by `make`, kept where there is room. */
  of(value: unknown): Uint8Array {
    let bytes = this.kept.get(value);
    if (bytes === undefined) {
      bytes = Buffer.from(this.make(value as never), 'utf8');
      if (this.kept.size < MAX_KEPT) this.kept.set(value, bytes);
    }
    return bytes;
  }
}

const ascii = (text: string): Uint8Array => Buffer.from(text, 'latin1');
/** A JSON value as stringifyJson writes it; undefined as null. */
const jsonOf = (value: unknown): string => (value === undefined ? 'null' : stringifyJson(value));

const OPEN = ascii('[');
const NEXT = ascii(',');
const PORT = ascii(',"port":');
const REMOTE = ascii('},"remote":{"address":');
const RECV_Q = ascii('},"recvQ":');
const SEND_Q = ascii(',"sendQ":');
const INODE = ascii(',"inode":');
const UID = ascii(',"uid":');
const DIAG = ascii(',"diag":');
const PROCESSES = ascii(',"processes":[');
const FIRST_PID = ascii('{"pid":');
const NEXT_PID = ascii(',{"pid":');
const FD = ascii(',"fd":');
const COMMAND = ascii(',"command":');
const OPTIONS = ascii('],"options":');
const NO_OPTIONS_KEY = ascii(']');
const OPTIONS_ERROR = ascii(',"optionsError":');
const END_OWNER = ascii('}');
const END_SOCKET = ascii('}\n');
const END = ascii(']\n');
const EMPTY = ascii('[]\n');

/** Each socket's opening, up to its local address: by protocol, family and state, a few of each. */
class Openings {
  private readonly byProtocol = new Map<unknown, Map<unknown, KeptJson>>();

  of(socket: SocketRecord): Uint8Array {
    const { protocol, family } = socket;
    let byFamily = this.byProtocol.get(protocol);
    if (byFamily === undefined) {
      byFamily = new Map();
      this.byProtocol.set(protocol, byFamily);
    }
    let byState = byFamily.get(family);
    if (byState === undefined) {
      byState = new KeptJson(
        (state: unknown) =>
          `{"protocol":${jsonOf(protocol)},"family":${jsonOf(family)},"state":${jsonOf(state)},"local":{"address":`,
      );
      byFamily.set(family, byState);
    }
    return byState.of(socket.state);
  }
}

/**
 * The JSON array, one socket per line, written into `chunk` (yielding whenever it is
 * full: see writeChunks). Each socket's line is exactly stringifyJson(toJsonSocket(socket))
 * for a record as collected — its endpoints and owners written field by field, in the
 * schema's order — but made of pieces encoded once per listing: the keys, each
 * socket's opening up to its address (by protocol, family and state), addresses,
 * commands, Diag, and each shared options object. Only the numbers are written per
 * socket, as digits: no string is made per socket.
 */
export function* writeJsonSockets(sockets: readonly SocketRecord[], chunk: ChunkBytes): Generator<void> {
  if (sockets.length === 0) {
    chunk.bytes(EMPTY);
    return;
  }
  const openings = new Openings();
  const strings = new KeptJson(jsonOf);
  const optionsJson = new KeptJson(jsonOf);
  for (let i = 0; i < sockets.length; i++) {
    const socket = sockets[i] as SocketRecord;
    chunk.bytes(i === 0 ? OPEN : NEXT);
    chunk.bytes(openings.of(socket));
    const { local, remote, processes, options } = socket;
    chunk.bytes(strings.of(local.address));
    chunk.bytes(PORT);
    chunk.decimal(local.port);
    chunk.bytes(REMOTE);
    chunk.bytes(strings.of(remote.address));
    chunk.bytes(PORT);
    chunk.decimal(remote.port);
    chunk.bytes(RECV_Q);
    chunk.decimal(socket.recvQ);
    chunk.bytes(SEND_Q);
    chunk.decimal(socket.sendQ);
    chunk.bytes(INODE);
    chunk.decimal(socket.inode);
    chunk.bytes(UID);
    chunk.decimal(socket.uid);
    chunk.bytes(DIAG);
    chunk.bytes(strings.of(socket.diag));
    chunk.bytes(PROCESSES);
    for (let k = 0; k < processes.length; k++) {
      const owner = processes[k] as SocketOwner;
      chunk.bytes(k === 0 ? FIRST_PID : NEXT_PID);
      chunk.decimal(owner.pid);
      chunk.bytes(FD);
      chunk.decimal(owner.fd);
      chunk.bytes(COMMAND);
      chunk.bytes(strings.of(owner.command));
      chunk.bytes(END_OWNER);
    }
    // A record made by hand may lack `options`: JSON.stringify leaves such a key out.
    if (options === undefined) chunk.bytes(NO_OPTIONS_KEY);
    else {
      chunk.bytes(OPTIONS);
      chunk.bytes(optionsJson.of(options));
    }
    if (socket.optionsError !== undefined) {
      chunk.bytes(OPTIONS_ERROR);
      chunk.text(stringifyJson(socket.optionsError));
    }
    chunk.bytes(END_SOCKET);
    if (chunk.full) yield;
  }
  chunk.bytes(END);
}

/**
 * The JSON array (writeJsonSockets) as text, in pieces of about a chunk, each ending
 * where a socket's line does: for a library caller that wants strings.
 */
export function* renderJson(sockets: readonly SocketRecord[]): Generator<string> {
  const chunk = new ChunkBytes();
  const text = (bytes: Uint8Array) =>
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  for (const _ of writeJsonSockets(sockets, chunk)) yield text(chunk.take());
  if (chunk.length > 0) yield text(chunk.take());
}
