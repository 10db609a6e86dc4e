#!/usr/bin/env node
/** The command: arguments → collectSockets → a renderer. Thin on purpose. */
import { readFileSync } from 'node:fs';
import { parseCliArguments } from './args.js';
import { collectSockets } from './collect.js';
import { HELP } from './help.js';
import type { TableName } from './model.js';
import { tableOf } from './model.js';
import { optionsNeeded } from './options/display.js';
import { readKeepaliveDefaults } from './procfs/sysctl.js';
import { renderJson } from './render/json.js';
import { escapeControlCharacters, renderTable } from './render/text.js';
import { UsageError } from './sys/errors.js';

function version(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return packageJson.version;
}

/** Writes to stdout; a reader that went away (EPIPE, e.g. `| head`) ends us quietly. */
function createOutput(): { write(text: string): void } {
  let closed = false;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      closed = true;
      process.exitCode = process.exitCode ?? 0;
      return;
    }
    throw error;
  });
  return {
    write(text: string) {
      if (!closed) process.stdout.write(text);
    },
  };
}

/**
 * A usage error as one inert line. parseArgs explains some errors in several sentences,
 * one per line: the first says what is wrong. A bad argument is echoed back in the
 * message, so its control characters (a newline, an escape sequence) are shown escaped.
 */
function usageLine(message: string): string {
  return escapeControlCharacters(message.split('.\n')[0] ?? message);
}

export function main(argv: readonly string[]): void {
  let request: ReturnType<typeof parseCliArguments>;
  try {
    request = parseCliArguments(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`knetstat: ${usageLine(error.message)}\n`);
      process.exitCode = 2;
      return;
    }
    throw error;
  }
  const output = createOutput();
  if (request.help) {
    output.write(HELP);
    return;
  }
  if (request.version) {
    output.write(`knetstat ${version()}\n`);
    return;
  }
  const collection = collectSockets({
    tables: request.tables,
    source: request.source,
    options: request.json ? undefined : optionsNeeded(request.selection),
  });
  if (request.json) {
    for (const chunk of renderJson(collection.sockets)) output.write(chunk);
  } else {
    const keepalive = readKeepaliveDefaults();
    const settings = { selection: request.selection, keepalive, showProcesses: request.showProcesses };
    for (const table of request.tables) {
      const rows = collection.sockets.filter((s) => tableOf(s.protocol, s.family) === (table as TableName));
      output.write(renderTable(table, rows, settings));
    }
  }
  for (const warning of collection.warnings) process.stderr.write(`knetstat: ${warning}\n`);
}

try {
  main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`knetstat: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
}
