/**
 * The work of reading options, as plain columns (that another process could be handed):
 * one row per socket that has an owner to duplicate it from, and for each row the
 * owners to try (with the pidfd already opened), the identity to check, and which of
 * its options the sock_diag reply already gave (those are not read again).
 */

import type { Family, Protocol } from '../model.js';
import { FIELD_READ_TCP_OPTIONS } from './bpf-tcp.js';
import { BPF_READABLE_TCP_OPTIONS, type OptionSpec, optionsFor, SOL_SOCKET } from './catalogue.js';

/** Why the options of a socket are unknown. */
export type UnreadableReason =
  | 'refused'
  | 'detached'
  | 'no-owner'
  | 'not-permitted'
  | 'unsupported'
  | 'vanished'
  | 'reused'
  | 'failed';

/** A row's outcome as a number: 0 = read, 1 + index into this list = not read, why. */
export const UNREADABLE_REASONS: readonly UnreadableReason[] = [
  'refused',
  'detached',
  'no-owner',
  'not-permitted',
  'unsupported',
  'vanished',
  'reused',
  'failed',
];

export const MAX_OPTIONS_PER_SOCKET = 63;

/**
 * The system calls reading a connected TCP socket's options takes outside the io_uring
 * batch (pidfd_getfd, the batch itself, and each option at another level than
 * SOL_SOCKET that the dump does not give), for `only` or the whole catalogue: what a
 * helper process could take half of. With `bpf`, what the BPF pass leaves on a typical
 * socket (none at all when it settles every option asked for).
 */
export function plainCallsPerSocket(only: ReadonlySet<string> | undefined, bpf = false): number {
  let plain = 0;
  let remaining = 0;
  for (const o of optionsFor('tcp', 4, false)) {
    if (only && !only.has(o.name)) continue;
    if (o.sockDiag || (bpf && BPF_SETTLED.has(o.name))) continue;
    remaining++;
    if (o.level !== SOL_SOCKET) plain++;
  }
  // pidfd_getfd and the batch, where anything is left to read at all.
  return remaining === 0 ? 0 : plain + 2;
}

/**
 * Options the BPF pass settles on a typical TCP socket of a kernel like the bench's:
 * those bpf_getsockopt reads, those its fields stand in for, and SO_SNDLOWAT, which is 1
 * on every socket.
 */
export const BPF_SETTLED: ReadonlySet<string> = new Set([
  ...BPF_READABLE_TCP_OPTIONS,
  ...FIELD_READ_TCP_OPTIONS,
  'SO_SNDLOWAT',
]);

/** Which spec list a socket uses: by protocol, family and whether it listens. */
export function specKey(protocol: Protocol, family: Family, listening: boolean): number {
  return (protocol === 'tcp' ? 4 : 0) + (family === 6 ? 2 : 0) + (listening ? 1 : 0);
}

/** The options read for each spec key, restricted to `only` when given; built once per list. */
export class SpecLists {
  private readonly lists: Array<OptionSpec[] | undefined> = [];
  constructor(readonly only: ReadonlySet<string> | undefined) {}

  get(key: number): OptionSpec[] {
    let specs = this.lists[key];
    if (!specs) {
      const protocol: Protocol = key & 4 ? 'tcp' : 'udp';
      const family: Family = key & 2 ? 6 : 4;
      specs = optionsFor(protocol, family, (key & 1) === 1).filter(
        (o) => !this.only || this.only.has(o.name),
      );
      this.lists[key] = specs;
    }
    return specs;
  }
}

export interface ReadJobs {
  count: number;
  key: Uint8Array;
  inode: Float64Array;
  /** sock_diag's cookie where `hasCookie`; the inode is checked otherwise. */
  cookie: BigUint64Array;
  hasCookie: Uint8Array;
  /** Two words per row: bit i set = option i of the row's list came with the dump. */
  known: Uint32Array;
  /** Row r's owners are ownerStart[r] .. ownerStart[r + 1] - 1. */
  ownerStart: Int32Array;
  ownerPid: Int32Array;
  /** The owner's pidfd, or the negated errno of its pidfd_open. */
  ownerPidfd: Int32Array;
  ownerFd: Int32Array;
}

export function allocateJobs(rows: number, owners: number): ReadJobs {
  return {
    count: 0,
    key: new Uint8Array(rows),
    inode: new Float64Array(rows),
    cookie: new BigUint64Array(rows),
    hasCookie: new Uint8Array(rows),
    known: new Uint32Array(rows * 2),
    ownerStart: new Int32Array(rows + 1),
    ownerPid: new Int32Array(owners),
    ownerPidfd: new Int32Array(owners),
    ownerFd: new Int32Array(owners),
  };
}

/** Rows and owners a job list starts with room for; it doubles as rows are added (reserveRow). */
export const FIRST_JOB_ROOM = 256;

/**
 * Room in `jobs` for one more row with `owners` owners, its arrays doubled where they are
 * full. Jobs grow as rows are added rather than being made for every socket: where the
 * BPF pass settles nearly every socket there are few rows, and room for all of them would
 * be fresh memory (1.5 MB at 36k sockets), costly to touch on the VM of bench/RESULTS.md.
 */
export function reserveRow(jobs: ReadJobs, owners: number): void {
  const rows = jobs.key.length;
  if (jobs.count + 1 > rows) {
    const room = Math.max(2 * rows, FIRST_JOB_ROOM);
    jobs.key = grown(jobs.key, new Uint8Array(room));
    jobs.inode = grown(jobs.inode, new Float64Array(room));
    jobs.cookie = grown(jobs.cookie, new BigUint64Array(room));
    jobs.hasCookie = grown(jobs.hasCookie, new Uint8Array(room));
    jobs.known = grown(jobs.known, new Uint32Array(room * 2));
    jobs.ownerStart = grown(jobs.ownerStart, new Int32Array(room + 1));
  }
  const needed = (jobs.ownerStart[jobs.count] as number) + owners;
  if (needed > jobs.ownerPid.length) {
    const room = Math.max(2 * jobs.ownerPid.length, needed, FIRST_JOB_ROOM);
    jobs.ownerPid = grown(jobs.ownerPid, new Int32Array(room));
    jobs.ownerPidfd = grown(jobs.ownerPidfd, new Int32Array(room));
    jobs.ownerFd = grown(jobs.ownerFd, new Int32Array(room));
  }
}

type JobColumn = Uint8Array | Uint32Array | Int32Array | Float64Array | BigUint64Array;

/** `room`, a column of the same kind, with `old`'s contents at its start. */
function grown<T extends JobColumn>(old: T, room: T): T {
  (room as { set(source: T): void }).set(old);
  return room;
}

export function isKnown(jobs: ReadJobs, row: number, option: number): boolean {
  return ((jobs.known[row * 2 + (option >> 5)] as number) & (1 << (option & 31))) !== 0;
}

/** Rows `from` .. `to` - 1 as jobs of their own (copies; owner indexes start at 0). */
export function sliceJobs(jobs: ReadJobs, from: number, to: number): ReadJobs {
  const firstOwner = jobs.ownerStart[from] as number;
  const endOwner = jobs.ownerStart[to] as number;
  const ownerStart = jobs.ownerStart.slice(from, to + 1);
  for (let i = 0; i < ownerStart.length; i++) ownerStart[i] = (ownerStart[i] as number) - firstOwner;
  return {
    count: to - from,
    key: jobs.key.slice(from, to),
    inode: jobs.inode.slice(from, to),
    cookie: jobs.cookie.slice(from, to),
    hasCookie: jobs.hasCookie.slice(from, to),
    known: jobs.known.slice(from * 2, to * 2),
    ownerStart,
    ownerPid: jobs.ownerPid.slice(firstOwner, endOwner),
    ownerPidfd: jobs.ownerPidfd.slice(firstOwner, endOwner),
    ownerFd: jobs.ownerFd.slice(firstOwner, endOwner),
  };
}
