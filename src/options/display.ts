/**
 * knetstat's Options column: which options show, in what order, in what units.
 * See DESIGN.md, "knetstat's text format".
 */
import type { SocketRecord } from '../model.js';
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

function knetstatOptions(socket: SocketRecord, keepalive: KeepaliveDefaults): string[] {
  const o = socket.options ?? {};
  const out: string[] = [];
  const show = (name: string, suffix = '') => {
    const value = o[name];
    if (value !== undefined && value !== null) out.push(`${name}=${value}${suffix}`);
  };
  const showIfSet = (name: string, suffix = '') => {
    const value = o[name];
    if (typeof value === 'number' && value !== 0) out.push(`${name}=${value}${suffix}`);
  };
  // An override equal to the namespace's sysctl cannot be told apart from none: not shown.
  const showIfOverridden = (name: string, sysctl: number | null) => {
    const value = o[name];
    if (typeof value === 'number' && sysctl !== null && value !== sysctl) out.push(`${name}=${value}`);
  };
  const lock = typeof o.SO_BUF_LOCK === 'number' ? o.SO_BUF_LOCK : 0;
  const showBuffer = (name: string, bit: number) => {
    const value = o[name];
    if (lock & bit && typeof value === 'number') out.push(`${name}=${Math.floor(value / 2)}`);
  };

  show('SO_REUSEADDR');
  show('SO_REUSEPORT');
  if (socket.protocol === 'tcp') {
    show('SO_KEEPALIVE');
    showIfOverridden('TCP_KEEPIDLE', keepalive.time);
    showIfOverridden('TCP_KEEPCNT', keepalive.probes);
    showIfOverridden('TCP_KEEPINTVL', keepalive.interval);
    showIfSet('TCP_USER_TIMEOUT');
  }
  showBuffer('SO_RCVBUF', SOCK_RCVBUF_LOCK);
  showBuffer('SO_SNDBUF', SOCK_SNDBUF_LOCK);
  showIfSet('SO_RCVTIMEO', 'ms');
  showIfSet('SO_SNDTIMEO', 'ms');
  if (typeof o.SO_LINGER === 'number') out.push(`SO_LINGER=${o.SO_LINGER}s`);
  if (socket.protocol === 'tcp') {
    show('TCP_NODELAY');
    // Shown like the flags, 0 included (DESIGN marks neither as "only when set"; the
    // module printed both unconditionally, TCP_FASTOPEN on listeners only).
    if (socket.state === 'LISTEN') show('TCP_FASTOPEN');
    show('TCP_DEFER_ACCEPT');
  } else {
    show('SO_BROADCAST');
  }
  return out;
}

function rawOption(name: string, value: unknown): string | null {
  if (value === undefined || value === '') return null;
  return `${name}=${value === null ? 'off' : value}`;
}

/** The Options column's text for one full socket whose options were read. */
export function formatOptionsColumn(
  socket: SocketRecord,
  selection: OptionSelection,
  keepalive: KeepaliveDefaults,
): string {
  const options = socket.options ?? {};
  if (selection.kind === 'names') {
    return selection.names
      .map((name) => rawOption(name, options[name]))
      .filter((s) => s !== null)
      .join(',');
  }
  const parts = knetstatOptions(socket, keepalive);
  if (selection.kind === 'all') {
    for (const spec of OPTION_CATALOGUE) {
      if (spec.set !== 'extended') continue;
      const part = rawOption(spec.name, options[spec.name]);
      if (part) parts.push(part);
    }
  }
  return parts.join(',');
}
