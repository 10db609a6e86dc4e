/**
 * The /proc/PID/fd owner scan: the `socket:[N]` link parser, and a scan over a fake
 * /proc built of real directories and symlinks (readlinkat reads them as it reads /proc).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanSocketOwners, socketInodeOfLink } from '../../src/procfs/owners.js';

const bytes = (text: string) => new TextEncoder().encode(text);
const inodeOf = (text: string) => {
  const b = bytes(text);
  return socketInodeOfLink(b, b.byteLength);
};

describe('socketInodeOfLink', () => {
  it.each([
    ['socket:[12345]', 12345],
    ['socket:[0]', 0],
    ['socket:[4294967295]', 4294967295],
  ])('%s → %i', (link, inode) => {
    expect(inodeOf(link)).toBe(inode);
  });

  it.each([
    'pipe:[12345]',
    'socket:[]',
    'socket:[12a4]',
    'socket:[123',
    'socket:123]',
    'Socket:[1]',
    '/tmp/socket:[1]',
    'anon_inode:[eventfd]',
    '',
  ])('%j is not a socket link', (link) => {
    expect(inodeOf(link)).toBe(-1);
  });

  it('reads only the bytes readlink returned, not what follows in the buffer', () => {
    const buffer = bytes('socket:[42]99]');
    expect(socketInodeOfLink(buffer, 'socket:[42]'.length)).toBe(42);
    expect(socketInodeOfLink(buffer, 'socket:[42]9'.length)).toBe(-1);
  });
});

describe('scanSocketOwners over a fake /proc', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'knetstat-proc-'));
    const process = (pid: number, command: string, fds: Record<string, string>) => {
      mkdirSync(join(root, String(pid), 'fd'), { recursive: true });
      writeFileSync(join(root, String(pid), 'comm'), `${command}\n`);
      for (const [fd, target] of Object.entries(fds)) symlinkSync(target, join(root, String(pid), 'fd', fd));
    };
    process(100, 'server', { '0': '/dev/null', '3': 'socket:[555]', '4': 'pipe:[7]', '5': 'socket:[556]' });
    process(200, 'worker', { '7': 'socket:[555]', '8': 'socket:[999]' });
    process(300, 'idle', {});
    // One socket on two fds of one process (dup), and more fds than one getdents64 call returns.
    const many: Record<string, string> = { '9': 'socket:[777]', '10': 'socket:[777]' };
    for (let fd = 11; fd < 4000; fd++) many[String(fd)] = `socket:[${100_000 + fd}]`;
    process(400, 'busy', many);
    mkdirSync(join(root, 'self'));
    writeFileSync(join(root, 'uptime'), '1 1\n');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('maps each socket inode to every process and fd holding it', () => {
    const { owners, unreadableProcesses } = scanSocketOwners(root);
    expect(unreadableProcesses).toBe(0);
    expect(owners.get(555)).toEqual([
      { pid: 100, fd: 3, command: 'server' },
      { pid: 200, fd: 7, command: 'worker' },
    ]);
    expect(owners.get(556)).toEqual([{ pid: 100, fd: 5, command: 'server' }]);
    expect(owners.get(999)).toEqual([{ pid: 200, fd: 8, command: 'worker' }]);
    expect([...owners.keys()].filter((inode) => inode < 100_000).sort()).toEqual([555, 556, 777, 999]);
  });

  it('lists the fds of one process holding a socket twice in the order of their names as strings', () => {
    expect(scanSocketOwners(root).owners.get(777)).toEqual([
      { pid: 400, fd: 10, command: 'busy' },
      { pid: 400, fd: 9, command: 'busy' },
    ]);
  });

  it('reads a directory too large for one getdents64 call to its end', () => {
    const { owners } = scanSocketOwners(root);
    for (let fd = 11; fd < 4000; fd++)
      expect(owners.get(100_000 + fd)).toEqual([{ pid: 400, fd, command: 'busy' }]);
  });

  it('keeps only the wanted inodes when given a set', () => {
    const { owners } = scanSocketOwners(root, new Set([556, 12345]));
    expect([...owners.keys()]).toEqual([556]);
  });

  it('returns nothing for a /proc that is not there', () => {
    expect(scanSocketOwners(join(root, 'missing')).owners.size).toBe(0);
  });
});
