/**
 * Socket inode → the processes holding it, from the `socket:[INODE]` links under
 * /proc/PID/fd. /proc lists thread-group leaders only, so each process is seen once;
 * a process that exits or that we may not read is skipped.
 *
 * This is one readlink per open fd on the host, the scan's whole cost: each is a
 * readlinkat(2) relative to the process's fd directory into one reused buffer, and the
 * inode is parsed from the bytes, so an fd that is not a wanted socket allocates nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { SocketOwner } from '../model.js';
import { isSystemCallError } from '../sys/errors.js';
import * as libc from '../sys/libc.js';

/** "socket:[" */
const SOCKET_LINK_PREFIX = [0x73, 0x6f, 0x63, 0x6b, 0x65, 0x74, 0x3a, 0x5b];
const CLOSING_BRACKET = 0x5d;
/** "socket:[" + a 64-bit inode + "]" fits; anything longer is not a socket link. */
const LINK_BUFFER_SIZE = 32;

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

/** The inode of a `socket:[N]` link of `length` bytes, or -1 for any other target. */
export function socketInodeOfLink(link: Uint8Array, length: number): number {
  if (length <= SOCKET_LINK_PREFIX.length + 1 || link[length - 1] !== CLOSING_BRACKET) return -1;
  for (let i = 0; i < SOCKET_LINK_PREFIX.length; i++) if (link[i] !== SOCKET_LINK_PREFIX[i]) return -1;
  let inode = 0;
  for (let i = SOCKET_LINK_PREFIX.length; i < length - 1; i++) {
    const digit = (link[i] as number) - 48;
    if (digit < 0 || digit > 9) return -1;
    inode = inode * 10 + digit;
  }
  return inode;
}

function isDecimal(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
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
  const link = new Uint8Array(LINK_BUFFER_SIZE);
  for (const entry of entries) {
    if (!isDecimal(entry)) continue;
    const pid = Number(entry);
    const fdDirectory = `${procRoot}/${entry}/fd`;
    let directoryFd: number;
    let fds: string[];
    try {
      directoryFd = libc.openDirectory(fdDirectory);
    } catch (error) {
      if (isSystemCallError(error, 'EACCES', 'EPERM')) unreadableProcesses++;
      continue; // exited meanwhile, or a kernel thread's empty fd table
    }
    try {
      try {
        fds = readdirSync(fdDirectory);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EACCES') unreadableProcesses++;
        continue;
      }
      let command: string | undefined;
      for (const fdName of fds) {
        const length = libc.readlinkAt(directoryFd, fdName, link);
        if (length < 0) {
          // EACCES: the directory could be listed (CAP_DAC_READ_SEARCH) but not its links
          // (the ptrace check): the process is unreadable, not empty.
          if (length === -constants.errno.EACCES) {
            unreadableProcesses++;
            break;
          }
          continue; // closed meanwhile
        }
        const inode = socketInodeOfLink(link, length);
        if (inode < 0 || (wanted && !wanted.has(inode))) continue;
        if (!isDecimal(fdName)) continue;
        command ??= readCommand(pid, procRoot);
        const owner: SocketOwner = { pid, fd: Number(fdName), command };
        const list = owners.get(inode);
        if (list) list.push(owner);
        else owners.set(inode, [owner]);
      }
    } finally {
      libc.close(directoryFd);
    }
  }
  return { owners, unreadableProcesses };
}
