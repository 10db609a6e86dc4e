/**
 * The owner scan by a BPF iterator (iter/task_file): every open file of every process,
 * walked by the kernel in one pass, instead of a readlinkat per fd under /proc/PID/fd. For
 * each socket file of a process (its thread-group leader's file table, which is what
 * /proc/PID/fd lists) the program writes the pid, the fd and the socket's inode — what
 * the `socket:[INODE]` links say. Commands are read from /proc/PID/comm as the /proc scan
 * does, once per process that holds a wanted socket.
 *
 * Used only where its pids are the ones /proc shows: knetstat in the initial pid
 * namespace (the iterator reports the kernel's own pids), with /proc as the proc root.
 * Nothing is written anywhere: the program reads fields the verifier checks against the
 * kernel's types.
 */

import { readlinkSync } from 'node:fs';
import type { SocketRecord } from '../model.js';
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import { IdIndex } from '../options/id-index.js';
import { Assembler, runIteratorProgram } from '../sys/bpf.js';
import { type Btf, BtfKind } from '../sys/btf.js';
import { insertOwner, readCommand } from './owners.js';

/** The initial pid namespace's inode number (PROC_PID_INIT_INO), the same on every kernel. */
const INITIAL_PID_NAMESPACE = 'pid:[4026531836]';
const S_IFMT = 0o170000;
const S_IFSOCK = 0o140000;
/** pid, fd (u32 each), inode (u64). */
const RECORD = 16;

/** Whether this process sees the kernel's own pids (the iterator's) in /proc. */
export function inInitialPidNamespace(): boolean {
  try {
    return readlinkSync('/proc/self/ns/pid') === INITIAL_PID_NAMESPACE;
  } catch {
    return false;
  }
}

export interface PreparedOwnerProgram {
  readonly program: Uint8Array;
  readonly attachBtfId: number;
}

/** The iter/task_file program against this kernel's types. */
export function prepareOwnerProgram(btf: Btf): PreparedOwnerProgram {
  const pid = btf.field('task_struct', ['pid']);
  const tgid = btf.field('task_struct', ['tgid']);
  const inode = btf.field('file', ['f_inode']);
  const mode = btf.field('inode', ['i_mode']);
  const ino = btf.field('inode', ['i_ino']);
  if (pid.size !== 4 || tgid.size !== 4 || inode.size !== 8 || mode.size !== 2 || ino.size !== 8)
    throw new Error('task_struct, file or inode fields are not the sizes this program reads');
  const a = new Assembler();
  const done = a.label();
  const record = -RECORD;
  a.move(6, 1); // r6 = struct bpf_iter__task_file *ctx
  a.load(8, 7, 6, 0); // r7 = ctx->meta
  a.load(8, 8, 6, 8); // r8 = ctx->task
  a.jumpIfEqual(8, 0, done); // the end of the iteration
  a.load(8, 9, 6, 24); // r9 = ctx->file
  a.jumpIfEqual(9, 0, done);
  // Threads with a file table of their own are not what /proc/PID/fd lists.
  a.load(4, 2, 8, pid.offset).load(4, 3, 8, tgid.offset).jumpIfRegistersDiffer(2, 3, done);
  a.load(8, 1, 9, inode.offset); // r1 = file->f_inode
  a.jumpIfEqual(1, 0, done);
  a.load(2, 2, 1, mode.offset).andImmediate(2, S_IFMT).jumpIfNotEqual(2, S_IFSOCK, done);
  a.load(8, 2, 1, ino.offset).store(8, 10, record + 8, 2);
  a.store(4, 10, record, 3); // the pid (tgid)
  a.load(4, 2, 6, 16).store(4, 10, record + 4, 2); // ctx->fd
  a.load(8, 1, 7, 0); // meta->seq
  a.move(2, 10).addImmediate(2, record).moveImmediate(3, RECORD).call(127); // bpf_seq_write
  a.bind(done);
  a.moveImmediate(0, 0).exit();
  return { program: a.bytes(), attachBtfId: btf.find('bpf_iter_task_file', BtfKind.Function) };
}

/**
 * Adds to each socket of `sockets` with an inode its owners (`processes`), in the order
 * the /proc scan would (by pid, then fd). Throws a BpfError where the kernel refuses the
 * program.
 */
export function scanOwnersWithBpf(prepared: PreparedOwnerProgram, sockets: readonly SocketRecord[]): void {
  // Inode → the socket: an index in typed arrays, not a Set and a Map of tens of
  // thousands of numbers. A socket listed twice (an interrupted dump) shares the first
  // one's owners, as it did when owners were kept by inode.
  const bySocket = new IdIndex(sockets.length);
  const repeats: number[] = [];
  sockets.forEach((socket, i) => {
    if (socket.inode === 0) return;
    if (bySocket.get(socket.inode) >= 0) repeats.push(i);
    else bySocket.set(socket.inode, i);
  });
  const expected = RECORD * (sockets.length + (sockets.length >> 4) + 256);
  const bytes = runIteratorProgram(prepared.program, prepared.attachBtfId, 'knetstat_owners', expected);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const commands = new Map<number, string>();
  const [low, high] = hostIsLittleEndian ? [8, 12] : [12, 8];
  for (let at = 0; at + RECORD <= bytes.byteLength; at += RECORD) {
    // The u64 inode as two words: no bigint per socket.
    const inode =
      view.getUint32(at + high, hostIsLittleEndian) * 4294967296 +
      view.getUint32(at + low, hostIsLittleEndian);
    const socket = sockets[bySocket.get(inode)];
    if (socket === undefined) continue;
    const pid = view.getUint32(at, hostIsLittleEndian);
    let command = commands.get(pid);
    if (command === undefined) {
      command = readCommand(pid);
      commands.set(pid, command);
    }
    const owner = { pid, fd: view.getUint32(at + 4, hostIsLittleEndian), command };
    // A first owner makes a list of one: pushed onto the empty list, it would get room
    // for 16, 150 bytes a socket that most sockets never use.
    if (socket.processes.length === 0) socket.processes = [owner];
    else insertOwner(socket.processes, owner);
  }
  for (const i of repeats) {
    const socket = sockets[i] as SocketRecord;
    socket.processes = (sockets[bySocket.get(socket.inode)] as SocketRecord).processes;
  }
}
