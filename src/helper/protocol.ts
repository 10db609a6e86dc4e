/**
 * What knetstat and its helper process say to each other: one message per frame, a
 * 4-byte length (little-endian) then the message as v8.serialize writes it, over two
 * plain pipes that both sides read and write synchronously (never through libuv: each
 * side is in the middle of synchronous work when it talks). The helper's ends block;
 * the parent's are non-blocking and every wait of the parent's has a deadline (Wait),
 * so that a helper that stops answering cannot stall knetstat.
 *
 * The conversation is strictly request, reply: scan (the helper's share of /proc),
 * then read (its share of the option rows), each answered once; the parent closing
 * its pipe ends it.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readSync, writeSync } from 'node:fs';
import { deserialize, serialize } from 'node:v8';
import type { OptionValue } from '../model.js';
import { OPTION_CATALOGUE } from '../options/catalogue.js';
import { type ReadJobs, UNREADABLE_REASONS } from '../options/jobs.js';
import { builtFile } from '../sys/built-file.js';
import { SystemCallError } from '../sys/errors.js';
import * as libc from '../sys/libc.js';

/** Bumped when a message changes shape. */
const PROTOCOL_VERSION = 2;

export { builtFile };

/**
 * The build this process was loaded from: dist/build-id.json, a hash of the compiled
 * files that scripts/finish-build.mjs writes. Read once, at load, so that a dist/
 * replaced later (an upgrade under a running `knetstat -w`) reads as another build.
 */
function loadedBuildId(): string {
  try {
    const { id } = JSON.parse(readFileSync(builtFile('build-id.json'), 'utf8')) as { id?: unknown };
    return typeof id === 'string' ? id : 'unknown';
  } catch {
    return 'unknown'; // compiled without scripts/finish-build.mjs
  }
}

export const BUILD_ID = loadedBuildId();

/**
 * What parent and helper must agree on: values cross by their place in a spec list and
 * outcomes by their index in UNREADABLE_REASONS, so both must run the same build. The
 * build id covers that; the catalogue and the outcomes are in too, for a build made
 * without an id. Every request carries it.
 */
export function fingerprintOf(buildId: string): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        PROTOCOL_VERSION,
        buildId,
        UNREADABLE_REASONS,
        OPTION_CATALOGUE.map((o) => [
          o.name,
          o.level,
          o.optname,
          o.decoding,
          o.protocols,
          o.families,
          o.listenOnly,
          o.sockDiag,
        ]),
      ]),
    )
    .digest('hex')
    .slice(0, 16);
}

export const PROTOCOL_FINGERPRINT = fingerprintOf(BUILD_ID);

/** Parent → helper: find the fds of these processes that hold one of the `wanted` sockets. */
export interface ScanRequest {
  type: 'scan';
  fingerprint: string;
  procRoot: string;
  pids: Int32Array;
  /** Socket inode numbers (sock_diag's idiag_inode is 32 bits). */
  wanted: Uint32Array;
}

/** Helper → parent: every `socket:[N]` fd of the processes, in scan order. */
export interface ScanReply {
  type: 'scanned';
  pid: Int32Array;
  fd: Int32Array;
  inode: Float64Array;
  /** The command of each process that holds a socket: `commands[i]` is `commandPid[i]`'s. */
  commandPid: Int32Array;
  commands: string[];
  unreadableProcesses: number;
}

/** Parent → helper: read these option rows (jobs.ts), pidfds left to the helper. */
export interface ReadRequest {
  type: 'read';
  fingerprint: string;
  /** The option names to read, or null for the whole catalogue. */
  only: string[] | null;
  ioUring: boolean;
  jobs: ReadJobs;
}

/** Helper → parent: each row's outcome (row-reader.ts's number), and its words or values. */
export interface ReadReply {
  type: 'values';
  status: Uint8Array;
  /** Why a row was not read; '' for one that was. */
  messages: string[];
  values: ValueColumns;
}

/** Helper → parent: the request failed there; the parent does the work itself. */
export interface ErrorReply {
  type: 'error';
  message: string;
}

export type HelperRequest = ScanRequest | ReadRequest;
export type HelperReply = ScanReply | ReadReply | ErrorReply;

const KIND_ABSENT = 0;
const KIND_NULL = 1;
const KIND_NUMBER = 2;
const KIND_STRING = 3;

/**
 * Option values of many rows, `width` per row, as columns that serialize as a few
 * blocks of bytes rather than a JS value each.
 */
export interface ValueColumns {
  width: number;
  kinds: Uint8Array;
  numbers: Float64Array;
  strings: string[];
}

export function allocateValueColumns(rows: number, width: number): ValueColumns {
  return {
    width,
    kinds: new Uint8Array(rows * width),
    numbers: new Float64Array(rows * width),
    strings: [],
  };
}

/** Stores row `row`'s values (at most `width`; undefined = absent). */
export function storeValues(
  columns: ValueColumns,
  row: number,
  values: ReadonlyArray<OptionValue | undefined>,
): void {
  if (values.length > columns.width) throw new RangeError('more values than the columns hold');
  const at = row * columns.width;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value === undefined) columns.kinds[at + i] = KIND_ABSENT;
    else if (value === null) columns.kinds[at + i] = KIND_NULL;
    else if (typeof value === 'number') {
      columns.kinds[at + i] = KIND_NUMBER;
      columns.numbers[at + i] = value;
    } else {
      columns.kinds[at + i] = KIND_STRING;
      columns.numbers[at + i] = columns.strings.length;
      columns.strings.push(value);
    }
  }
}

/**
 * Why `columns` could not have come from storeValues for `rows` rows, or null: lengths,
 * kinds and string indexes are checked before any value is used.
 */
export function checkValueColumns(columns: ValueColumns, rows: number): string | null {
  if (!Number.isInteger(columns.width) || columns.width < 0) return 'a bad value width';
  const cells = rows * columns.width;
  if (!(columns.kinds instanceof Uint8Array) || columns.kinds.length !== cells) return 'a bad kind list';
  if (!(columns.numbers instanceof Float64Array) || columns.numbers.length !== cells)
    return 'a bad number list';
  if (!Array.isArray(columns.strings)) return 'a bad string list';
  for (let i = 0; i < cells; i++) {
    const kind = columns.kinds[i] as number;
    if (kind > KIND_STRING) return `a value of unknown kind ${kind}`;
    if (kind === KIND_STRING) {
      const at = columns.numbers[i] as number;
      if (
        !Number.isInteger(at) ||
        at < 0 ||
        at >= columns.strings.length ||
        typeof columns.strings[at] !== 'string'
      )
        return 'a string value that is not in the string list';
    }
  }
  return null;
}

/** Row `row`'s first `count` values into `into`. */
export function loadValues(
  columns: ValueColumns,
  row: number,
  count: number,
  into: Array<OptionValue | undefined>,
): void {
  if (count > columns.width) throw new RangeError('more values asked for than the columns hold');
  const at = row * columns.width;
  into.length = count;
  for (let i = 0; i < count; i++) {
    const kind = columns.kinds[at + i];
    if (kind === KIND_NUMBER) into[i] = columns.numbers[at + i] as number;
    else if (kind === KIND_NULL) into[i] = null;
    else if (kind === KIND_STRING) into[i] = columns.strings[columns.numbers[at + i] as number];
    else into[i] = undefined;
  }
}

const HEADER_SIZE = 4;
/** Far more than any real message (a few MB at 100k sockets): a corrupt length stops here. */
export const MAX_FRAME_SIZE = 1 << 30;

/** The frame of one message: its length, then its bytes. */
export function encodeFrame(message: HelperRequest | HelperReply): Buffer {
  const body = serialize(message);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + body.length);
  frame.writeUInt32LE(body.length, 0);
  body.copy(frame, HEADER_SIZE);
  return frame;
}

/** The other side did not take or give a message by the deadline. */
export class DeadlineError extends Error {}

/**
 * How long the parent waits: until `deadline` (a performance.now() time) for the first
 * bytes to move, and while bytes keep moving, `progressMs` past the last of them, so
 * that a large message is not cut off by a deadline set for its first byte.
 */
export interface Wait {
  deadline: number;
  progressMs: number;
}

const EINTR = 4;
/** poll(2) takes a signed 32-bit timeout in milliseconds. */
const LONGEST_POLL_MS = 0x7fffffff;

/**
 * Waits until `fd` is ready for `events` (or hung up) until the wait's deadline; a
 * DeadlineError after it. Past the deadline it still looks once without waiting, so
 * that what is already there (after this process was stopped and continued, say)
 * is taken rather than thrown away.
 */
function waitUntilReady(fd: number, events: number, wait: Wait): void {
  for (;;) {
    const left = Math.ceil(wait.deadline - performance.now());
    const ready = libc.pollOne(fd, events, Math.min(Math.max(left, 0), LONGEST_POLL_MS));
    if (ready > 0) return;
    if (ready < 0 && ready !== -EINTR) throw new SystemCallError('poll', -ready);
    if (ready === 0 && left <= 0) throw new DeadlineError('the other side did not answer in time');
  }
}

/** Bytes moved: the wait goes on at least `progressMs` from now. */
function progressed(wait: Wait | undefined): void {
  if (wait) wait.deadline = Math.max(wait.deadline, performance.now() + wait.progressMs);
}

function isWouldBlock(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'EAGAIN';
}

/**
 * Writes all of `bytes` to `fd` (a pipe may take a large write in parts). Without a
 * wait `fd` is blocking and this waits as long as the reader does; with one, `fd` is
 * non-blocking (libc.setNonBlocking) and a reader that stops taking bytes ends the wait
 * with a DeadlineError.
 */
export function writeAll(fd: number, bytes: Uint8Array, wait?: Wait): void {
  let written = 0;
  while (written < bytes.length) {
    if (wait) waitUntilReady(fd, libc.POLLOUT, wait);
    try {
      written += writeSync(fd, bytes, written, bytes.length - written);
    } catch (error) {
      if (!wait || !isWouldBlock(error)) throw error;
      continue;
    }
    progressed(wait);
  }
}

export function writeMessage(fd: number, message: HelperRequest | HelperReply, wait?: Wait): void {
  writeAll(fd, encodeFrame(message), wait);
}

/** Fills `buffer` from `fd` (see writeAll for `wait`); whether the pipe ended first, having read nothing or only part. */
function readFully(fd: number, buffer: Uint8Array, wait: Wait | undefined): 'full' | 'eof' | 'short' {
  let filled = 0;
  while (filled < buffer.length) {
    if (wait) waitUntilReady(fd, libc.POLLIN, wait);
    let got: number;
    try {
      got = readSync(fd, buffer, filled, buffer.length - filled, null);
    } catch (error) {
      if (!wait || !isWouldBlock(error)) throw error;
      continue;
    }
    if (got === 0) return filled === 0 ? 'eof' : 'short';
    filled += got;
    progressed(wait);
  }
  return 'full';
}

/** A frame that is cut short or does not decode: the other side failed mid-message. */
export class BrokenFrameError extends Error {}

/**
 * The next message from `fd`, or null when the pipe ended cleanly between messages.
 * Throws BrokenFrameError for a frame cut short or one that does not decode, and
 * DeadlineError when a `wait` (see writeAll) ends first.
 */
export function readMessage(fd: number, wait?: Wait): unknown {
  const header = Buffer.alloc(HEADER_SIZE);
  const start = readFully(fd, header, wait);
  if (start === 'eof') return null;
  if (start === 'short') throw new BrokenFrameError('the pipe ended inside a frame header');
  const length = header.readUInt32LE(0);
  if (length > MAX_FRAME_SIZE) throw new BrokenFrameError(`a frame of ${length} bytes is not believable`);
  const body = Buffer.allocUnsafe(length);
  if (readFully(fd, body, wait) !== 'full') throw new BrokenFrameError('the pipe ended inside a frame');
  try {
    return deserialize(body);
  } catch (error) {
    throw new BrokenFrameError(`a frame did not decode: ${(error as Error).message}`);
  }
}

/** The message if it is an object whose `type` is `type`, else a BrokenFrameError. */
export function expectType<T extends { type: string }>(message: unknown, type: T['type']): T {
  if (typeof message !== 'object' || message === null || !('type' in message))
    throw new BrokenFrameError('a message without a type');
  const got = (message as { type: unknown }).type;
  if (got === 'error' && type !== 'error')
    throw new HelperFailedError(String((message as { message?: unknown }).message));
  if (got !== type) throw new BrokenFrameError(`expected a ${type} message, got ${String(got)}`);
  return message as T;
}

/** The helper reported that it could not do what was asked. */
export class HelperFailedError extends Error {}
