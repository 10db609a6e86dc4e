/** Command-line arguments → a typed request. Every bad value is a UsageError (exit 2). */
import { parseArgs } from 'node:util';
import {
  checkSatisfiable,
  parseCommand,
  parseEndpointPattern,
  parseOptionPredicate,
  parsePid,
  parsePort,
  parseState,
  type SocketFilter,
} from './filter.js';
import type { Source, TableName } from './model.js';
import { TABLES } from './model.js';
import { findOption } from './options/catalogue.js';
import type { OptionSelection } from './options/display.js';
import { UsageError } from './sys/errors.js';

export interface CliRequest {
  help: boolean;
  version: boolean;
  tables: TableName[];
  json: boolean;
  source: Source | 'auto';
  selection: OptionSelection;
  showProcesses: boolean;
  filter: SocketFilter;
  summary: boolean;
  /** Seconds between refreshes with -w/--watch, or null for one snapshot. */
  watch: number | null;
  /** false with --no-helper: one process does all the work, whatever the host. */
  helper: boolean;
  /** false with --no-bpf: every option is read with getsockopt, no BPF program is loaded. */
  bpf: boolean;
}

const TABLE_ALIASES: Readonly<Record<string, TableName>> = {
  tcp: 'tcp',
  tcp6: 'tcp6',
  udp: 'udp',
  udp6: 'udp6',
  tcpstat: 'tcp',
  tcp6stat: 'tcp6',
  udpstat: 'udp',
  udp6stat: 'udp6',
};

export const DEFAULT_WATCH_SECONDS = 2;
const MIN_WATCH_SECONDS = 0.1;
// setTimeout holds at most 2^31-1 ms; a day is far more than anyone watches for.
const MAX_WATCH_SECONDS = 86_400;

/** Every flag; help.ts and man/knetstat.1 document each (a test checks). */
export const CLI_FLAGS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
  json: { type: 'boolean', short: 'j' },
  source: { type: 'string' },
  options: { type: 'string', short: 'o' },
  processes: { type: 'boolean', short: 'p' },
  listening: { type: 'boolean', short: 'l' },
  state: { type: 'string', multiple: true },
  port: { type: 'string', multiple: true },
  local: { type: 'string', multiple: true },
  remote: { type: 'string', multiple: true },
  pid: { type: 'string', multiple: true },
  command: { type: 'string', multiple: true },
  option: { type: 'string', multiple: true },
  diag: { type: 'boolean' },
  summary: { type: 'boolean' },
  watch: { type: 'boolean', short: 'w' },
  'no-helper': { type: 'boolean' },
  'no-bpf': { type: 'boolean' },
} as const;

/** Flags that take a value, so that the value after them is never read as a flag. */
const VALUE_FLAGS = new Set(
  Object.entries(CLI_FLAGS).flatMap(([name, spec]) =>
    spec.type === 'string' ? [`--${name}`, ...('short' in spec ? [`-${spec.short}`] : [])] : [],
  ),
);
/** A group of boolean short flags ending in w, e.g. `-w` or `-lpw`. */
const WATCH_GROUP = /^-[hVjplw]*w$/;

function parseWatchSeconds(value: string): number {
  const seconds = Number(value);
  if (
    !/^[+-]?(\d+\.?\d*|\.\d+)$/.test(value) ||
    !(seconds >= MIN_WATCH_SECONDS && seconds <= MAX_WATCH_SECONDS)
  ) {
    throw new UsageError(
      `--watch needs a number of seconds from ${MIN_WATCH_SECONDS} to ${MAX_WATCH_SECONDS}, not '${value}'`,
    );
  }
  return seconds;
}

function looksLikeNumber(token: string | undefined): token is string {
  return token !== undefined && /^[+-]?\.?\d/.test(token);
}

/**
 * parseArgs has no flag with an optional value, so `-w [SECONDS]` is taken out first:
 * `-w`, `--watch`, `-w 5`, `-w5`, `--watch=5`, `-lw 5`. A number right after -w is its
 * interval (no table name starts with a digit); a negative one is an error, not a flag.
 */
export function extractWatch(argv: readonly string[]): { rest: string[]; watch: number | null } {
  const rest: string[] = [];
  let watch: number | null = null;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (VALUE_FLAGS.has(token)) {
      rest.push(token);
      if (i + 1 < argv.length) rest.push(argv[++i] as string);
      continue;
    }
    if (token === '--watch' || WATCH_GROUP.test(token)) {
      rest.push(token);
      watch = DEFAULT_WATCH_SECONDS;
      const next = argv[i + 1];
      if (looksLikeNumber(next)) {
        watch = parseWatchSeconds(next);
        i++;
      }
      continue;
    }
    if (token.startsWith('--watch=')) {
      rest.push('--watch');
      watch = parseWatchSeconds(token.slice('--watch='.length));
      continue;
    }
    const attached = /^-w(.+)$/.exec(token);
    if (attached && looksLikeNumber(attached[1])) {
      rest.push('-w');
      watch = parseWatchSeconds(attached[1] as string);
      continue;
    }
    rest.push(token);
  }
  return { rest, watch };
}

function parseSelection(value: string): OptionSelection {
  if (value === 'knetstat' || value === 'all') return { kind: value };
  const names = value.split(',').map((n) => n.trim().toUpperCase());
  for (const name of names) {
    if (name === '' || !findOption(name)) throw new UsageError(`unknown option name in --options: '${name}'`);
  }
  return { kind: 'names', names };
}

function parse(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], allowPositionals: true, strict: true, options: CLI_FLAGS });
  } catch (error) {
    // parseArgs' messages are long; keep the part that names the argument.
    const message = (error as Error).message.split('. ')[0] ?? String(error);
    throw new UsageError(message.replace(/^Unknown option/, 'unknown flag'));
  }
}

function parseTables(positionals: readonly string[]): TableName[] {
  const tables: TableName[] = [];
  for (const name of positionals) {
    const table = TABLE_ALIASES[name.toLowerCase()];
    if (!table) throw new UsageError(`unknown table '${name}' (expected tcp, tcp6, udp or udp6)`);
    if (!tables.includes(table)) tables.push(table);
  }
  return tables.length > 0 ? TABLES.filter((t) => tables.includes(t)) : [...TABLES];
}

type Values = ReturnType<typeof parse>['values'];

function parseFilter(values: Values): SocketFilter {
  return {
    listening: values.listening ?? false,
    states: [...new Set((values.state ?? []).flatMap(parseState))],
    ports: (values.port ?? []).map((p) => parsePort(p)),
    local: (values.local ?? []).map((v) => parseEndpointPattern(v, '--local')),
    remote: (values.remote ?? []).map((v) => parseEndpointPattern(v, '--remote')),
    pids: (values.pid ?? []).map(parsePid),
    commands: (values.command ?? []).map(parseCommand),
    options: (values.option ?? []).map(parseOptionPredicate),
    diag: values.diag ?? false,
  };
}

/** Combinations that make no sense are refused rather than silently ignored. */
function checkCombinations(request: CliRequest, values: Values): void {
  if (request.summary && request.showProcesses) {
    throw new UsageError('--summary shows counts, not rows: -p/--processes has no column to add');
  }
  if (request.summary && values.options !== undefined) {
    throw new UsageError("--summary counts knetstat's options: -o/--options does not apply");
  }
  if (request.json && values.options !== undefined) {
    throw new UsageError(
      "-o/--options chooses the text's Options column; --json always carries every option read",
    );
  }
  if (request.filter.diag && request.source === 'proc') {
    throw new UsageError('--diag needs tcp_info, which --source proc does not have');
  }
  checkSatisfiable(request.filter, request.tables);
}

export function parseCliArguments(argv: readonly string[]): CliRequest {
  const { rest, watch } = extractWatch(argv);
  const { values, positionals } = parse(rest);
  const source = values.source ?? 'auto';
  if (source !== 'auto' && source !== 'netlink' && source !== 'proc') {
    throw new UsageError(`--source must be netlink or proc, not '${source}'`);
  }
  const request: CliRequest = {
    help: values.help ?? false,
    version: values.version ?? false,
    tables: parseTables(positionals),
    json: values.json ?? false,
    source,
    selection: parseSelection(values.options ?? 'knetstat'),
    showProcesses: values.processes ?? false,
    filter: parseFilter(values),
    summary: values.summary ?? false,
    watch: values.watch ? (watch ?? DEFAULT_WATCH_SECONDS) : null,
    helper: !(values['no-helper'] ?? false),
    bpf: !(values['no-bpf'] ?? false),
  };
  if (!request.help && !request.version) checkCombinations(request, values);
  return request;
}
