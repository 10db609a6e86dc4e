/**
 * knetstat's Options column: which options show, in what order, in what units.
 * See DESIGN.md, "knetstat's text format".
 */
import type { OptionValue, SocketOptions, SocketRecord } from '../model.js';
import type { KeepaliveDefaults } from '../procfs/sysctl.js';
import { OPTION_CATALOGUE } from './catalogue.js';

/** Which options the text shows: knetstat's, knetstat's plus ours, or a list the user named. */
export type OptionSelection =
  | { kind: 'knetstat' }
  | { kind: 'all' }
  | { kind: 'names'; names: readonly string[] };

const SOCK_SNDBUF_LOCK = 1;
const SOCK_RCVBUF_LOCK = 2;

/** The options a selection needs read (SO_BUF_LOCK decides whether buffers show). */
export function optionsNeeded(selection: OptionSelection): Set<string> | undefined {
  if (selection.kind === 'all') return undefined;
  if (selection.kind === 'names') return new Set(selection.names);
  return new Set(OPTION_CATALOGUE.filter((o) => o.set === 'knetstat').map((o) => o.name));
}

type Parts = string[];

// The Options column is built for every row: plain functions that push onto the row's
// list, rather than closures made anew for each row; each is handed the value, read
// by its name where the call is (o.SO_REUSEADDR, one lookup the engine keeps for all
// rows, their options objects sharing one shape), not looked up by a name it is given.

function show(out: Parts, name: string, value: OptionValue | undefined, suffix = ''): void {
  if (value !== undefined && value !== null) out.push(`${name}=${value}${suffix}`);
}

function showIfSet(out: Parts, name: string, value: OptionValue | undefined, suffix = ''): void {
  if (typeof value === 'number' && value !== 0) out.push(`${name}=${value}${suffix}`);
}

/** An override equal to the namespace's sysctl cannot be told apart from none: not shown. */
function showIfOverridden(
  out: Parts,
  name: string,
  value: OptionValue | undefined,
  sysctl: number | null,
): void {
  if (typeof value === 'number' && sysctl !== null && value !== sysctl) out.push(`${name}=${value}`);
}

/** A buffer size shows only when set explicitly (its SO_BUF_LOCK bit), halved as knetstat does. */
function showBuffer(
  out: Parts,
  name: string,
  value: OptionValue | undefined,
  lock: number,
  bit: number,
): void {
  if (lock & bit && typeof value === 'number') out.push(`${name}=${Math.floor(value / 2)}`);
}

function knetstatOptions(socket: SocketRecord, keepalive: KeepaliveDefaults): Parts {
  const o = socket.options ?? {};
  const out: Parts = [];
  const lock = typeof o.SO_BUF_LOCK === 'number' ? o.SO_BUF_LOCK : 0;

  show(out, 'SO_REUSEADDR', o.SO_REUSEADDR);
  show(out, 'SO_REUSEPORT', o.SO_REUSEPORT);
  if (socket.protocol === 'tcp') {
    show(out, 'SO_KEEPALIVE', o.SO_KEEPALIVE);
    showIfOverridden(out, 'TCP_KEEPIDLE', o.TCP_KEEPIDLE, keepalive.time);
    showIfOverridden(out, 'TCP_KEEPCNT', o.TCP_KEEPCNT, keepalive.probes);
    showIfOverridden(out, 'TCP_KEEPINTVL', o.TCP_KEEPINTVL, keepalive.interval);
    showIfSet(out, 'TCP_USER_TIMEOUT', o.TCP_USER_TIMEOUT);
  }
  showBuffer(out, 'SO_RCVBUF', o.SO_RCVBUF, lock, SOCK_RCVBUF_LOCK);
  showBuffer(out, 'SO_SNDBUF', o.SO_SNDBUF, lock, SOCK_SNDBUF_LOCK);
  showIfSet(out, 'SO_RCVTIMEO', o.SO_RCVTIMEO, 'ms');
  showIfSet(out, 'SO_SNDTIMEO', o.SO_SNDTIMEO, 'ms');
  if (typeof o.SO_LINGER === 'number') out.push(`SO_LINGER=${o.SO_LINGER}s`);
  if (socket.protocol === 'tcp') {
    show(out, 'TCP_NODELAY', o.TCP_NODELAY);
    // Shown like the flags, 0 included (DESIGN marks neither as "only when set"; the
    // module printed both unconditionally, TCP_FASTOPEN on listeners only).
    if (socket.state === 'LISTEN') show(out, 'TCP_FASTOPEN', o.TCP_FASTOPEN);
    show(out, 'TCP_DEFER_ACCEPT', o.TCP_DEFER_ACCEPT);
  } else {
    show(out, 'SO_BROADCAST', o.SO_BROADCAST);
  }
  return out;
}

/** Raw `NAME=value`, `off` for null; nothing for an option not read or an empty string. */
function showRaw(out: Parts, o: SocketOptions, name: string): void {
  const value = o[name];
  if (value === undefined || value === '') return;
  out.push(`${name}=${value === null ? 'off' : value}`);
}

/** What `-o all` adds after knetstat's set, in catalogue order. */
const EXTENDED_OPTION_NAMES: readonly string[] = OPTION_CATALOGUE.filter((o) => o.set === 'extended').map(
  (o) => o.name,
);

/** The Options column's text for one full socket whose options were read. */
export function formatOptionsColumn(
  socket: SocketRecord,
  selection: OptionSelection,
  keepalive: KeepaliveDefaults,
): string {
  const options = socket.options ?? {};
  if (selection.kind === 'names') {
    const parts: Parts = [];
    for (const name of selection.names) showRaw(parts, options, name);
    return parts.join(',');
  }
  const parts = knetstatOptions(socket, keepalive);
  if (selection.kind === 'all') for (const name of EXTENDED_OPTION_NAMES) showRaw(parts, options, name);
  return parts.join(',');
}
