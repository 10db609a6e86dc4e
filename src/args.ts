/** Command-line arguments → a typed request. Every bad value is a UsageError (exit 2). */
import { parseArgs } from 'node:util';
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

function parseSelection(value: string): OptionSelection {
  if (value === 'knetstat' || value === 'all') return { kind: value };
  const names = value.split(',').map((n) => n.trim().toUpperCase());
  for (const name of names) {
    if (name === '' || !findOption(name)) throw new UsageError(`unknown option name in --options: '${name}'`);
  }
  return { kind: 'names', names };
}

export function parseCliArguments(argv: readonly string[]): CliRequest {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    // parseArgs' messages are long; keep the part that names the argument.
    const message = (error as Error).message.split('. ')[0] ?? String(error);
    throw new UsageError(message.replace(/^Unknown option/, 'unknown flag'));
  }
  const { values, positionals } = parsed;
  const tables: TableName[] = [];
  for (const name of positionals) {
    const table = TABLE_ALIASES[name.toLowerCase()];
    if (!table) throw new UsageError(`unknown table '${name}' (expected tcp, tcp6, udp or udp6)`);
    if (!tables.includes(table)) tables.push(table);
  }
  const source = values.source ?? 'auto';
  if (source !== 'auto' && source !== 'netlink' && source !== 'proc') {
    throw new UsageError(`--source must be netlink or proc, not '${source}'`);
  }
  return {
    help: values.help ?? false,
    version: values.version ?? false,
    tables: tables.length > 0 ? TABLES.filter((t) => tables.includes(t)) : [...TABLES],
    json: values.json ?? false,
    source,
    selection: parseSelection(values.options ?? 'knetstat'),
    showProcesses: values.processes ?? false,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'V' },
      json: { type: 'boolean', short: 'j' },
      source: { type: 'string' },
      options: { type: 'string', short: 'o' },
      processes: { type: 'boolean', short: 'p' },
    },
  });
}
