/**
 * The helper process: knetstat starts one for large listings so that a second CPU does
 * part of the work — after the dump, half the /proc scan, then half the option rows,
 * while the parent does the rest (parent.ts, collect.ts). It runs the
 * same code as the parent (work.ts) with its own pidfds and io_uring, and says only what
 * the parent asked (protocol.ts), reading requests on fd 3 and answering on fd 4.
 */
import {
  HelperFailedError,
  type ReadRequest,
  readMessage,
  type ScanRequest,
  writeMessage,
} from './protocol.js';
import { read, scan } from './work.js';

const REQUESTS = 3;
const REPLIES = 4;

function serve(): void {
  for (;;) {
    const request = readMessage(REQUESTS) as ScanRequest | ReadRequest | null;
    if (request === null) return; // the parent is done
    if (request.type === 'scan') writeMessage(REPLIES, scan(request));
    else if (request.type === 'read') writeMessage(REPLIES, read(request));
    else throw new HelperFailedError(`unknown request ${String((request as { type: unknown }).type)}`);
  }
}

// Ctrl-C, and a closing terminal's SIGHUP, reach the whole process group. The parent
// decides what happens then (watch mode finishes its collection and exits cleanly); the
// helper ends when the parent closes its pipe or exits.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

try {
  serve();
} catch (error) {
  // The parent does this share itself; it only needs to know why.
  try {
    writeMessage(REPLIES, { type: 'error', message: (error as Error).message ?? String(error) });
  } catch {
    // The parent is gone.
  }
  process.exitCode = 1;
}
