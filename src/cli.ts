#!/usr/bin/env node
/** The command: arguments → a snapshot (or a watch of them) → output; exit codes. Thin on purpose. */
import { readFileSync } from 'node:fs';
import { type CliRequest, parseCliArguments } from './args.js';
import { HELP } from './help.js';
import { type ChunkSink, writeChunks, writeInChunks } from './render/chunks.js';
import { escapeControlCharacters, shouldUseColour } from './render/text.js';
import { UsageError } from './sys/errors.js';

// The collector (and with it koffi's native library) is loaded only once the arguments
// are good: --help, --version and usage errors answer at once.
const loadView = () => import('./view.js');

function version(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return packageJson.version;
}

interface Output extends ChunkSink {
  write(data: string | Uint8Array): boolean;
}

/** Writes to stdout; a reader that went away (EPIPE, e.g. `| head`) ends us quietly. */
function createOutput(): Output {
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
    write(data: string | Uint8Array) {
      return closed ? true : process.stdout.write(data);
    },
    get pendingBytes() {
      return process.stdout.writableLength;
    },
    get closed() {
      return closed;
    },
    drained() {
      if (closed) return Promise.resolve();
      return new Promise((resolve) => {
        const done = () => {
          process.stdout.off('drain', done);
          process.stdout.off('close', done);
          resolve();
        };
        process.stdout.once('drain', done);
        process.stdout.once('close', done);
      });
    },
  };
}

function warn(message: string): void {
  process.stderr.write(`knetstat: ${message}\n`);
}

async function watch(request: CliRequest, output: Output, seconds: number): Promise<void> {
  const [{ describeCounts, renderJsonLine, renderText, takeSnapshot }, { runWatch }] = await Promise.all([
    loadView(),
    import('./watch.js'),
  ]);
  // --json always streams NDJSON, even on a terminal: it is meant for a program.
  const terminal = process.stdout.isTTY && !request.json;
  const colour = terminal && shouldUseColour(process.stdout);
  return runWatch({
    seconds,
    terminal: terminal ? { output: process.stdout, input: process.stdin, colour } : null,
    take() {
      const snapshot = takeSnapshot(request);
      const counts = describeCounts(request.tables, snapshot.sockets);
      const frame = { time: snapshot.time, counts, warnings: snapshot.warnings, lines: [], styledLines: [] };
      if (terminal) {
        const lines = renderText(request, snapshot, false).trimEnd().split('\n');
        const styledLines = colour ? renderText(request, snapshot, true).trimEnd().split('\n') : lines;
        return { ...frame, lines, styledLines, stream: '' };
      }
      if (request.json) return { ...frame, stream: renderJsonLine(request, snapshot) };
      const status = `knetstat ${snapshot.time.toTimeString().slice(0, 8)} · ${counts} · every ${seconds}s`;
      return { ...frame, stream: `${status}\n${renderText(request, snapshot, false)}\n` };
    },
    write: (text) => output.write(text),
    closed: () => output.closed,
    drained: () => output.drained(),
    warn,
  });
}

/**
 * A usage error as one inert line. parseArgs explains some errors in several sentences,
 * one per line: the first says what is wrong. A bad argument is echoed back in the
 * message, so its control characters (a newline, an escape sequence) are shown escaped.
 */
function usageLine(message: string): string {
  return escapeControlCharacters(message.split('.\n')[0] ?? message);
}

export async function main(argv: readonly string[]): Promise<void> {
  let request: CliRequest;
  try {
    request = parseCliArguments(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      warn(usageLine(error.message));
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
  if (request.watch !== null) {
    await watch(request, output, request.watch);
    return;
  }
  const { writeJsonDocument, renderTextDocument, takeSnapshot } = await loadView();
  const snapshot = takeSnapshot(request);
  if (request.json) await writeChunks((chunk) => writeJsonDocument(request, snapshot, chunk), output);
  else await writeInChunks(renderTextDocument(request, snapshot, shouldUseColour(process.stdout)), output);
  for (const warning of snapshot.warnings) warn(warning);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  warn(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
});
