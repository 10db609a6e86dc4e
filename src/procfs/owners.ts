/**
 * Socket inode → the processes holding it, from the `socket:[INODE]` links under
 * /proc/PID/fd. /proc lists thread-group leaders only, so each process is seen once;
 * a process that exits or that we may not read is skipped.
 *
 * This is one readlink per open fd on the host, most of the scan's cost: each is a
 * readlinkat(2) relative to the process's fd directory into one reused buffer, and the
 * inode is parsed from the bytes. The fd names come from getdents64 into another reused
 * buffer and go to readlinkat as bytes, so an fd that is not a wanted socket allocates
 * nothing (readdirSync made, and sorted, a string per fd).
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
/** An fd number (at most 10 digits) and its NUL. */
const NAME_BUFFER_SIZE = 16;
/** getdents64 records for 2,000 to 2,700 fds per call (24 or 32 bytes each). */
const DIRENT_BUFFER_SIZE = 64 * 1024;

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

/**
 * The fd number named by the NUL-terminated bytes at `source[at]`, copied with their NUL
 * into `name` for readlinkat; -1 for a name that is not an fd number ("." and "..").
 */
function fdNameAt(source: Uint8Array, at: number, name: Uint8Array): number {
  let fd = 0;
  let i = 0;
  for (; source[at + i] !== 0; i++) {
    const byte = source[at + i] as number;
    if (byte < 48 || byte > 57 || i === name.length - 1) return -1;
    name[i] = byte;
    fd = fd * 10 + byte - 48;
  }
  if (i === 0) return -1;
  name[i] = 0;
  return fd;
}

/**
 * Appends `owner` to the inode's owners. getdents64 lists a process's fds in numeric
 * order, while readdirSync listed them sorted as strings ("10" before "9") and the
 * output kept that order; it shows only where one process holds a socket on several fds.
 */
export function addOwner(owners: Map<number, SocketOwner[]>, inode: number, owner: SocketOwner): void {
  const list = owners.get(inode);
  if (!list) owners.set(inode, [owner]);
  else insertOwner(list, owner);
}

/** Adds `owner` to a socket's list of owners, in the order /proc lists them (by pid, then fd as named). */
export function insertOwner(list: SocketOwner[], owner: SocketOwner): void {
  let at = list.length;
  while (at > 0) {
    const before = list[at - 1] as SocketOwner;
    if (before.pid !== owner.pid || String(before.fd) < String(owner.fd)) break;
    at--;
  }
  if (at === list.length) list.push(owner);
  else list.splice(at, 0, owner);
}

function isDecimal(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * The PIDs under `procRoot`, in the order /proc lists them (ascending): the order owners
 * are reported in. Empty when /proc cannot be read.
 */
export function listProcessIds(procRoot = '/proc'): number[] {
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of entries) if (isDecimal(entry)) pids.push(Number(entry));
  return pids;
}

/** Every socket owner of the host (or only the `wanted` inodes'). */
export function scanSocketOwners(procRoot = '/proc', wanted?: ReadonlySet<number>): OwnerScan {
  const scan: OwnerScan = { owners: new Map(), unreadableProcesses: 0 };
  scanProcesses(procRoot, listProcessIds(procRoot), wanted, scan);
  return scan;
}

/**
 * Adds the socket fds of `pids` (in that order) to `scan`: each `socket:[N]` link whose
 * inode is wanted (every one without `wanted`) becomes an owner of N.
 */
export function scanProcesses(
  procRoot: string,
  pids: readonly number[],
  wanted: ReadonlySet<number> | undefined,
  scan: OwnerScan,
): void {
  const owners = scan.owners;
  const link = new Uint8Array(LINK_BUFFER_SIZE);
  const name = new Uint8Array(NAME_BUFFER_SIZE);
  const dirents = new Uint8Array(DIRENT_BUFFER_SIZE);
  for (const pid of pids) {
    let directoryFd: number;
    try {
      directoryFd = libc.openDirectory(`${procRoot}/${pid}/fd`);
    } catch (error) {
      if (isSystemCallError(error, 'EACCES', 'EPERM')) scan.unreadableProcesses++;
      continue; // exited meanwhile, or a kernel thread's empty fd table
    }
    try {
      let command: string | undefined;
      listing: for (;;) {
        const filled = libc.getdents64(directoryFd, dirents);
        if (filled <= 0) {
          if (filled === -constants.errno.EACCES) scan.unreadableProcesses++;
          break; // the end, or the process exited meanwhile
        }
        let recordLength: number;
        for (let record = 0; record < filled; record += recordLength) {
          const reclen = record + libc.DIRENT64_RECLEN_OFFSET;
          recordLength = (dirents[reclen] as number) | ((dirents[reclen + 1] as number) << 8);
          const fd = fdNameAt(dirents, record + libc.DIRENT64_NAME_OFFSET, name);
          if (fd < 0) continue;
          const length = libc.readlinkAt(directoryFd, name, link);
          if (length < 0) {
            // EACCES: the directory could be listed (CAP_DAC_READ_SEARCH) but not its links
            // (the ptrace check): the process is unreadable, not empty.
            if (length === -constants.errno.EACCES) {
              scan.unreadableProcesses++;
              break listing;
            }
            continue; // closed meanwhile
          }
          const inode = socketInodeOfLink(link, length);
          if (inode < 0 || (wanted && !wanted.has(inode))) continue;
          command ??= readCommand(pid, procRoot);
          addOwner(owners, inode, { pid, fd, command });
        }
      }
    } finally {
      libc.close(directoryFd);
    }
  }
}
