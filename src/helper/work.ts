/**
 * What the helper process does for each request (see child.ts): the same scan and row
 * reading as the parent's, answered as protocol.ts's columns.
 */
import { directFdAccess, libcFdAccess, PidfdTable } from '../options/fd-access.js';
import { SpecLists } from '../options/jobs.js';
import { RowReader } from '../options/row-reader.js';
import { type OwnerScan, scanProcesses } from '../procfs/owners.js';
import {
  allocateValueColumns,
  HelperFailedError,
  PROTOCOL_FINGERPRINT,
  type ReadReply,
  type ReadRequest,
  type ScanReply,
  type ScanRequest,
  storeValues,
} from './protocol.js';

/** Refuses a request from a parent of another build (see PROTOCOL_FINGERPRINT). */
export function checkFingerprint(request: { fingerprint?: unknown }): void {
  if (request.fingerprint !== PROTOCOL_FINGERPRINT)
    throw new HelperFailedError(
      `the helper is another build than knetstat (protocol ${String(request.fingerprint)}, helper ${PROTOCOL_FINGERPRINT})`,
    );
}

/** The socket fds of the processes asked for, as the reply's columns. */
export function scan(request: ScanRequest): ScanReply {
  checkFingerprint(request);
  const result: OwnerScan = { owners: new Map(), unreadableProcesses: 0 };
  scanProcesses(request.procRoot, Array.from(request.pids), new Set(request.wanted), result);
  let entries = 0;
  for (const owners of result.owners.values()) entries += owners.length;
  const pid = new Int32Array(entries);
  const fd = new Int32Array(entries);
  const inode = new Float64Array(entries);
  const commandOf = new Map<number, string>();
  let i = 0;
  for (const [socketInode, owners] of result.owners) {
    for (const owner of owners) {
      pid[i] = owner.pid;
      fd[i] = owner.fd;
      inode[i] = socketInode;
      commandOf.set(owner.pid, owner.command);
      i++;
    }
  }
  return {
    type: 'scanned',
    pid,
    fd,
    inode,
    commandPid: Int32Array.from(commandOf.keys()),
    commands: Array.from(commandOf.values()),
    unreadableProcesses: result.unreadableProcesses,
  };
}

/** Reads the rows asked for, with this process's own pidfds and io_uring. */
export function read(request: ReadRequest): ReadReply {
  checkFingerprint(request);
  const access = request.ioUring ? libcFdAccess : directFdAccess;
  const specs = new SpecLists(request.only === null ? undefined : new Set(request.only));
  const jobs = request.jobs;
  const pidfds = new PidfdTable(access);
  const rows = new RowReader(access, specs);
  try {
    for (let o = 0; o < jobs.ownerPid.length; o++)
      jobs.ownerPidfd[o] = pidfds.pidfdOf(jobs.ownerPid[o] as number);
    let width = 0;
    for (let row = 0; row < jobs.count; row++)
      width = Math.max(width, specs.get(jobs.key[row] as number).length);
    const status = new Uint8Array(jobs.count);
    const messages: string[] = [];
    const values = allocateValueColumns(jobs.count, width);
    for (let row = 0; row < jobs.count; row++) {
      const outcome = rows.readRow(jobs, row);
      status[row] = outcome;
      if (outcome === 0) {
        storeValues(values, row, rows.values);
        messages.push('');
      } else {
        messages.push(rows.message);
      }
    }
    return { type: 'values', status, messages, values };
  } finally {
    rows.close();
    pidfds.close();
  }
}
