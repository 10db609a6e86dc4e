/**
 * Socket inode → the processes holding it, from the `socket:[INODE]` links under
 * /proc/PID/fd. /proc lists thread-group leaders only, so each process is seen once;
 * a process that exits or that we may not read is skipped.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import type { SocketOwner } from '../model.js';

const SOCKET_LINK_PREFIX = 'socket:[';

/** Control characters and invalid UTF-8 in a command name stay visible but inert. */
export function readCommand(pid: number, procRoot = '/proc'): string {
  try {
    const raw = readFileSync(`${procRoot}/${pid}/comm`, 'utf8');
    return raw.endsWith('\n') ? raw.slice(0, -1) : raw;
  } catch {
    return '?';
  }
}

export interface OwnerScan {
  owners: Map<number, SocketOwner[]>;
  /** Processes whose fd table we could not read (EACCES); they may hold sockets too. */
  unreadableProcesses: number;
}

export function scanSocketOwners(procRoot = '/proc', wanted?: ReadonlySet<number>): OwnerScan {
  const owners = new Map<number, SocketOwner[]>();
  let unreadableProcesses = 0;
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return { owners, unreadableProcesses };
  }
  for (const entry of entries) {
    const first = entry.charCodeAt(0);
    if (first < 48 || first > 57) continue;
    const pid = Number(entry);
    const fdDirectory = `${procRoot}/${entry}/fd`;
    let fds: string[];
    try {
      fds = readdirSync(fdDirectory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EACCES') unreadableProcesses++;
      continue;
    }
    let command: string | undefined;
    for (const fdName of fds) {
      let target: string;
      try {
        target = readlinkSync(`${fdDirectory}/${fdName}`);
      } catch (error) {
        // EACCES: the directory could be listed (CAP_DAC_READ_SEARCH) but not its links
        // (the ptrace check): the process is unreadable, not empty.
        if ((error as NodeJS.ErrnoException).code === 'EACCES') {
          unreadableProcesses++;
          break;
        }
        continue; // closed meanwhile
      }
      if (!target.startsWith(SOCKET_LINK_PREFIX)) continue;
      const inode = Number(target.slice(SOCKET_LINK_PREFIX.length, -1));
      if (wanted && !wanted.has(inode)) continue;
      command ??= readCommand(pid, procRoot);
      const owner: SocketOwner = { pid, fd: Number(fdName), command };
      const list = owners.get(inode);
      if (list) list.push(owner);
      else owners.set(inode, [owner]);
    }
  }
  return { owners, unreadableProcesses };
}
