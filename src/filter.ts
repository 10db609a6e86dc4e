/**
 * Row filters: parsing each flag's value (a bad one is a UsageError naming it) and
 * matching a socket. Pure: no I/O, so every rule is unit-tested. Different flags are
 * ANDed; the repeated values of one flag are ORed, except --option, whose expressions
 * must all hold.
 */
import type { OptionValue, Protocol, SocketRecord, StateName, TableName } from './model.js';
import { findOption, type OptionSpec } from './options/catalogue.js';
import { STATE_ABBREVIATIONS } from './states.js';
import { UsageError } from './sys/errors.js';

// The kernel's TCP states in its own order, from the one table that names them.
const TCP_STATES = Object.keys(STATE_ABBREVIATIONS) as readonly StateName[];
const UDP_STATES: readonly StateName[] = ['ESTABLISHED', 'UNCONN'];

/** Every state name, in the kernel's order (UDP's UNCONN last). */
export const STATE_ORDER: readonly StateName[] = [...TCP_STATES, 'UNCONN'];

/** `connected`: everything but LISTEN, CLOSE, TIME_WAIT (and UDP's unconnected state). */
const NOT_CONNECTED: ReadonlySet<StateName> = new Set<StateName>(['LISTEN', 'CLOSE', 'TIME_WAIT', 'UNCONN']);

/** knetstat's four-letter abbreviations, accepted as well as the JSON names. */
const ABBREVIATIONS: Readonly<Record<string, StateName>> = {
  ESTB: 'ESTABLISHED',
  SYNS: 'SYN_SENT',
  SYNR: 'SYN_RECV',
  FNW1: 'FIN_WAIT1',
  FNW2: 'FIN_WAIT2',
  TIMW: 'TIME_WAIT',
  CLSD: 'CLOSE',
  CLSW: 'CLOSE_WAIT',
  LACK: 'LAST_ACK',
  LSTN: 'LISTEN',
  CLSG: 'CLOSING',
};

export function statesOf(protocol: Protocol): readonly StateName[] {
  return protocol === 'tcp' ? TCP_STATES : UDP_STATES;
}

/** `--state` value → the states it stands for. Case-insensitive; `-` and `_` alike. */
export function parseState(value: string): StateName[] {
  const name = value.trim().toUpperCase().replaceAll('-', '_');
  if (name === 'CONNECTED') return STATE_ORDER.filter((s) => !NOT_CONNECTED.has(s));
  if ((STATE_ORDER as readonly string[]).includes(name)) return [name as StateName];
  const abbreviated = ABBREVIATIONS[name];
  if (abbreviated) return [abbreviated];
  throw new UsageError(
    `unknown state '${value}' in --state (expected one of ${STATE_ORDER.join(', ').toLowerCase()}, or connected)`,
  );
}

function parseDecimal(value: string, flag: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} needs ${what}, not '${value}'`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${flag} needs ${what} from ${min} to ${max}, not '${value}'`);
  return n;
}

export function parsePort(value: string, flag = '--port'): number {
  return parseDecimal(value, flag, 'a port number', 1, 65535);
}

export function parsePid(value: string): number {
  return parseDecimal(value, '--pid', 'a process id', 1, 2 ** 22);
}

/** Linux keeps a process name (comm) in 16 bytes with its NUL: a longer name never matches. */
const COMMAND_BYTES = 15;

export function parseCommand(value: string): string {
  if (value === '') throw new UsageError('--command needs a process name, not an empty string');
  if (Buffer.byteLength(value) > COMMAND_BYTES) {
    throw new UsageError(
      `--command '${value}' is longer than a process name can be (${COMMAND_BYTES} bytes, as in /proc/PID/comm)`,
    );
  }
  return value;
}

// ---- addresses ----

/** An address as 16 bytes (IPv4 as IPv4-mapped IPv6, so that one matches the other). */
type AddressBytes = Uint8Array;

function parseIPv4Bytes(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out: number[] = [];
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    out.push(n);
  }
  return out;
}

function mapped(v4: readonly number[]): AddressBytes {
  return Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4]);
}

function parseIPv6Bytes(text: string): AddressBytes | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const pieces = part.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i] as string;
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4Bytes(piece);
        if (!v4) return null;
        out.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return null;
      out.push(Number.parseInt(piece, 16));
    }
    return out;
  };
  const head = groupsOf(halves[0] as string);
  const tail = halves.length === 2 ? groupsOf(halves[1] as string) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

/** An address as knetstat prints it (dotted quad or %pI6c) → 16 bytes, or null. */
export function addressBytes(text: string): AddressBytes | null {
  const v4 = parseIPv4Bytes(text);
  if (v4) return mapped(v4);
  return parseIPv6Bytes(text);
}

/** `--local`/`--remote`: an address or network (empty = any) and an optional port. */
export interface EndpointPattern {
  /** The text given, for messages. */
  text: string;
  network: { bytes: AddressBytes; prefixLength: number } | null;
  /** null = any port; 0 = the `*` of an unbound or unconnected endpoint. */
  port: number | null;
}

/**
 * ADDR, ADDR:PORT, ADDR/LEN, ADDR/LEN:PORT, :PORT; IPv6 bare (`::1`, `fe80::/10`) or in
 * brackets when a port follows (`[::1]:443`, `[fe80::/10]:22`). PORT may be `*`, as
 * knetstat prints port 0.
 */
export function parseEndpointPattern(value: string, flag: string): EndpointPattern {
  const bad = (why: string) => new UsageError(`${flag} '${value}': ${why}`);
  let addressPart: string;
  let portPart: string | null = null;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(value);
  if (bracketed) {
    addressPart = bracketed[1] as string;
    portPart = bracketed[2] ?? null;
    if (addressPart === '') throw bad('empty address in brackets');
  } else if (value.includes('[') || value.includes(']')) {
    throw bad('brackets must enclose the whole address, as in [::1]:443');
  } else {
    const colons = value.split(':').length - 1;
    if (colons === 1) {
      const at = value.indexOf(':');
      addressPart = value.slice(0, at);
      portPart = value.slice(at + 1);
    } else {
      // No colon: an IPv4 address or network. Two or more: a bare IPv6 address, no port.
      addressPart = value;
    }
  }
  let port: number | null = null;
  if (portPart !== null) {
    if (portPart === '') throw bad(`a port is missing after ':'`);
    if (portPart === '*') port = 0;
    else if (/^\d+$/.test(portPart)) {
      port = Number(portPart);
      if (port < 1 || port > 65535) throw bad(`port ${portPart} is not from 1 to 65535`);
    } else throw bad(`'${portPart}' is not a port`);
  }
  if (addressPart === '') {
    if (port === null) throw bad('an address, a network or a :PORT is needed');
    return { text: value, network: null, port };
  }
  const slash = addressPart.indexOf('/');
  const addressText = slash < 0 ? addressPart : addressPart.slice(0, slash);
  const bytes = addressBytes(addressText);
  if (!bytes) throw bad(`'${addressText}' is not an IPv4 or IPv6 address`);
  const isV4 = parseIPv4Bytes(addressText) !== null;
  const maxLength = isV4 ? 32 : 128;
  let prefixLength = maxLength;
  if (slash >= 0) {
    const lengthText = addressPart.slice(slash + 1);
    if (!/^\d{1,3}$/.test(lengthText) || Number(lengthText) > maxLength) {
      throw bad(`prefix length '/${lengthText}' is not from 0 to ${maxLength}`);
    }
    prefixLength = Number(lengthText);
  }
  // IPv4 lives in the last 32 bits of its mapped form.
  return { text: value, network: { bytes, prefixLength: isV4 ? 96 + prefixLength : prefixLength }, port };
}

function inNetwork(address: AddressBytes, network: { bytes: AddressBytes; prefixLength: number }): boolean {
  let bits = network.prefixLength;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((address[i] as number) & mask) !== ((network.bytes[i] as number) & mask)) return false;
  }
  return true;
}

export function matchesEndpoint(address: string, port: number, pattern: EndpointPattern): boolean {
  if (pattern.port !== null && port !== pattern.port) return false;
  if (pattern.network === null) return true;
  const bytes = addressBytes(address);
  return bytes !== null && inNetwork(bytes, pattern.network);
}

// ---- options ----

export type OptionOperator = 'set' | '=' | '!=' | '>' | '<' | '>=' | '<=';

/** One `--option` expression. Values compare with the JSON's (the kernel's units). */
export interface OptionPredicate {
  text: string;
  name: string;
  spec: OptionSpec;
  operator: OptionOperator;
  /**
   * An integer (a bigint: SO_MAX_PACING_RATE's "none" is 2^64-1), a name (string
   * options), or null for `off` (SO_LINGER off).
   */
  value: bigint | string | null;
}

const NUMERIC_DECODINGS = new Set(['int', 'timeval', 'linger', 'u64']);
/** The text's unit suffixes, accepted so that a value can be copied from the Options column. */
const UNIT_SUFFIXES: Readonly<Record<string, string>> = { ms: 'ms', s: 's', us: 'us' };

export function parseOptionPredicate(expression: string): OptionPredicate {
  const bad = (why: string) => new UsageError(`--option '${expression}': ${why}`);
  const match = /^([A-Za-z][A-Za-z0-9_]*)(?:(!=|>=|<=|=|>|<)(.*))?$/.exec(expression.trim());
  if (!match) throw bad('expected NAME, NAME=VALUE, NAME!=VALUE, NAME>N or NAME<N');
  const name = (match[1] as string).toUpperCase();
  const spec = findOption(name);
  if (!spec) throw bad(`unknown option name '${match[1]}'`);
  if (match[2] === undefined) return { text: expression, name, spec, operator: 'set', value: null };
  const operator = match[2] as OptionOperator;
  const raw = (match[3] as string).trim();
  if (raw === '') throw bad('a value is missing after the operator');
  const numeric = NUMERIC_DECODINGS.has(spec.decoding);
  if (!numeric) {
    if (operator !== '=' && operator !== '!=') throw bad(`${name} is a name, compared with = or != only`);
    if (!/^[A-Za-z0-9_.\-/]+$/.test(raw)) throw bad(`'${raw}' is not a valid ${name} value`);
    return { text: expression, name, spec, operator, value: raw };
  }
  if (raw.toLowerCase() === 'off') {
    if (spec.decoding !== 'linger') throw bad(`'off' applies to SO_LINGER only`);
    if (operator !== '=' && operator !== '!=') throw bad(`'off' is compared with = or != only`);
    return { text: expression, name, spec, operator, value: null };
  }
  const suffix = UNIT_SUFFIXES[spec.unit];
  const digits = suffix && raw.endsWith(suffix) ? raw.slice(0, -suffix.length) : raw;
  if (!/^-?\d+$/.test(digits)) throw bad(`'${raw}' is not a number`);
  return { text: expression, name, spec, operator, value: BigInt(digits) };
}

/**
 * Whether a socket's options satisfy a predicate. An option the socket does not carry
 * (it does not apply, or the kernel lacks it) satisfies none; unknown options are
 * handled by the caller.
 */
export function matchesOption(options: Readonly<Record<string, OptionValue>>, p: OptionPredicate): boolean {
  if (!(p.name in options)) return false;
  const raw = options[p.name] as OptionValue;
  const actual = NUMERIC_DECODINGS.has(p.spec.decoding) ? asComparable(raw) : raw;
  switch (p.operator) {
    case 'set':
      return actual !== null && actual !== 0n && actual !== 0 && actual !== '';
    case '=':
      return actual === p.value;
    case '!=':
      return actual !== p.value;
    default: {
      if (typeof actual !== 'bigint' || typeof p.value !== 'bigint') return false;
      if (p.operator === '>') return actual > p.value;
      if (p.operator === '<') return actual < p.value;
      if (p.operator === '>=') return actual >= p.value;
      return actual <= p.value;
    }
  }
}

/** Integers (and the decimal strings that hold a u64 too big for a number) as bigint. */
function asComparable(value: OptionValue): bigint | string | null {
  if (typeof value === 'number') return Number.isInteger(value) ? BigInt(value) : String(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  return value;
}

// ---- the whole filter ----

export interface SocketFilter {
  /** TCP LISTEN and UDP UNCONN sockets, as `ss -l` and `netstat -l` list them. */
  listening: boolean;
  /** Any of these; empty = any state. */
  states: readonly StateName[];
  /** Local or remote port, any of these. */
  ports: readonly number[];
  local: readonly EndpointPattern[];
  remote: readonly EndpointPattern[];
  pids: readonly number[];
  commands: readonly string[];
  /** All of these. */
  options: readonly OptionPredicate[];
  /** Only rows with a Diag indicator. */
  diag: boolean;
}

export const NO_FILTER: SocketFilter = {
  listening: false,
  states: [],
  ports: [],
  local: [],
  remote: [],
  pids: [],
  commands: [],
  options: [],
  diag: false,
};

export function isListening(socket: Pick<SocketRecord, 'protocol' | 'state'>): boolean {
  return socket.protocol === 'tcp' ? socket.state === 'LISTEN' : socket.state === 'UNCONN';
}

export function matchesFilter(socket: SocketRecord, filter: SocketFilter): boolean {
  if (filter.listening && !isListening(socket)) return false;
  if (filter.states.length > 0 && !filter.states.includes(socket.state)) return false;
  if (filter.diag && !socket.diag) return false;
  if (
    filter.ports.length > 0 &&
    !filter.ports.some((p) => socket.local.port === p || socket.remote.port === p)
  )
    return false;
  if (
    filter.local.length > 0 &&
    !filter.local.some((p) => matchesEndpoint(socket.local.address, socket.local.port, p))
  )
    return false;
  if (
    filter.remote.length > 0 &&
    !filter.remote.some((p) => matchesEndpoint(socket.remote.address, socket.remote.port, p))
  )
    return false;
  if (filter.pids.length > 0 && !socket.processes.some((o) => filter.pids.includes(o.pid))) return false;
  if (filter.commands.length > 0 && !socket.processes.some((o) => filter.commands.includes(o.command)))
    return false;
  if (filter.options.length > 0) {
    if (socket.options === null) return false;
    const options = socket.options;
    if (!filter.options.every((p) => matchesOption(options, p))) return false;
  }
  return true;
}

export interface FilterResult {
  sockets: SocketRecord[];
  /** Why rows may be missing that the filter could not judge (options or Diag unknown). */
  warnings: string[];
}

/** Whether a filter lets every socket through (no flag narrowed it). */
export function filtersNothing(filter: SocketFilter): boolean {
  return (
    !filter.listening &&
    !filter.diag &&
    filter.states.length === 0 &&
    filter.ports.length === 0 &&
    filter.local.length === 0 &&
    filter.remote.length === 0 &&
    filter.pids.length === 0 &&
    filter.commands.length === 0 &&
    filter.options.length === 0
  );
}

/** Applies a filter and says how many sockets it could not judge for want of data. */
export function applyFilter(sockets: readonly SocketRecord[], filter: SocketFilter): FilterResult {
  // The usual listing: no pass over tens of thousands of sockets to keep them all.
  if (filtersNothing(filter)) return { sockets: [...sockets], warnings: [] };
  const kept: SocketRecord[] = [];
  let optionsUnknown = 0;
  let diagUnknown = 0;
  for (const socket of sockets) {
    if (matchesFilter(socket, filter)) {
      kept.push(socket);
      continue;
    }
    // Left out although its options were never read: say so rather than pretend it failed the test.
    if (filter.options.length > 0 && socket.options === null && !socket.minisocket) {
      if (matchesFilter(socket, { ...filter, options: [] })) optionsUnknown++;
    } else if (filter.diag && socket.diag === null && matchesFilter(socket, { ...filter, diag: false })) {
      diagUnknown++;
    }
  }
  const warnings: string[] = [];
  if (optionsUnknown > 0)
    warnings.push(
      `--option: ${optionsUnknown} socket${optionsUnknown === 1 ? '' : 's'} left out because ${optionsUnknown === 1 ? 'its' : 'their'} options are unknown`,
    );
  if (diagUnknown > 0)
    warnings.push(
      `--diag: ${diagUnknown} socket${diagUnknown === 1 ? '' : 's'} left out because Diag is unknown (no tcp_info)`,
    );
  return { sockets: kept, warnings };
}

/** The options a filter needs read, so that the collector reads them even if not shown. */
export function optionsNamedBy(filter: SocketFilter): string[] {
  return [...new Set(filter.options.map((p) => p.name))];
}

/**
 * Rejects combinations that no socket can ever match (e.g. `--listening --state
 * established`, `--diag udp`, `--option TCP_NODELAY udp`), naming the flags involved.
 */
export function checkSatisfiable(filter: SocketFilter, tables: readonly TableName[]): void {
  const involved: string[] = [];
  let combos: Array<{ table: TableName; protocol: Protocol; state: StateName }> = tables.flatMap((table) => {
    const protocol: Protocol = table.startsWith('tcp') ? 'tcp' : 'udp';
    return statesOf(protocol).map((state) => ({ table, protocol, state }));
  });
  const narrow = (flag: string, keep: (c: (typeof combos)[number]) => boolean) => {
    combos = combos.filter(keep);
    involved.push(flag);
    if (combos.length === 0) {
      const tableNote = tables.length < 4 ? ` in ${tables.join(', ')}` : '';
      throw new UsageError(`no socket can match ${involved.join(' with ')}${tableNote}`);
    }
  };
  if (filter.listening) narrow('--listening', (c) => isListening(c));
  if (filter.states.length > 0)
    narrow(`--state ${[...new Set(filter.states)].join(',').toLowerCase()}`, (c) =>
      filter.states.includes(c.state),
    );
  if (filter.diag) narrow('--diag', (c) => c.protocol === 'tcp' && c.state === 'ESTABLISHED');
  if (filter.pids.length > 0 || filter.commands.length > 0)
    narrow(filter.pids.length > 0 ? '--pid' : '--command', (c) => c.state !== 'TIME_WAIT');
  for (const p of filter.options) {
    narrow(
      `--option ${p.text}`,
      (c) =>
        c.state !== 'TIME_WAIT' &&
        p.spec.protocols.includes(c.protocol) &&
        (p.spec.families === undefined || p.spec.families.includes(c.table.endsWith('6') ? 6 : 4)) &&
        (!p.spec.listenOnly || c.state === 'LISTEN'),
    );
  }
}
