/**
 * Reads each socket's options from its owner, in three steps: plan (here: decide what
 * each socket needs, open one pidfd per process, and lay the work out as job rows),
 * read (row-reader.ts: duplicate, prove identity, getsockopt, close: nothing but system
 * calls and their bytes), and finish (here: turn each row's values into the socket's
 * options, or its failure into optionsError). The rows are plain columns so that the
 * read step could run elsewhere; a worker thread was tried and gave nothing here (see
 * README, "What the time goes to"), a second process is the next thing to try.
 */

import { HashBuckets } from '../hash-buckets.js';
import { cutByWeight, type HelperProcess } from '../helper/parent.js';
import { loadValues, type ReadReply } from '../helper/protocol.js';
import type { OptionValue, SocketOptions, SocketRecord } from '../model.js';
import type { BpfPass, Settler } from './bpf-pass.js';
import type { OptionSpec, SockDiagSource } from './catalogue.js';
import { directFdAccess, type FdAccess, libcFdAccess, PidfdTable } from './fd-access.js';
import {
  allocateJobs,
  FIRST_JOB_ROOM,
  isKnown,
  type ReadJobs,
  reserveRow,
  SpecLists,
  sliceJobs,
  specKey,
  UNREADABLE_REASONS,
  type UnreadableReason,
} from './jobs.js';
import { OptionsTable } from './options-table.js';
import { RowReader } from './row-reader.js';

export { directFdAccess, type FdAccess, libcFdAccess } from './fd-access.js';
export type { UnreadableReason } from './jobs.js';

/**
 * The value getsockopt would return, as the sock_diag dump reported it, or undefined
 * when the dump did not carry it (then the option is read with getsockopt).
 */
export function valueFromSockDiag(source: SockDiagSource, socket: SocketRecord): OptionValue | undefined {
  const facts = socket.optionFacts;
  switch (source.fact) {
    case 'inetFlags':
      return facts?.inetFlags === undefined ? undefined : (facts.inetFlags >> source.bit) & 1;
    case 'boundInterface':
      // Bound to a device: its name needs getsockopt.
      return facts?.boundInterface === 0 ? '' : undefined;
    default:
      return facts?.[source.fact];
  }
}

/**
 * The value of option `spec` that the dump or the BPF pass gives, if any: the pass's
 * through `settler`, its way of settling `spec` from the socket's record (`record`).
 */
function knownValue(
  socket: SocketRecord,
  spec: OptionSpec,
  record: number,
  settler: Settler | null | undefined,
): OptionValue | undefined {
  const fromDump = spec.sockDiag ? valueFromSockDiag(spec.sockDiag, socket) : undefined;
  if (fromDump !== undefined || !settler) return fromDump;
  return settler(record);
}

export interface OptionReadSummary {
  read: number;
  /** Of those read, how many the BPF pass (with the dump) settled with no duplicate made. */
  settledWithoutDuplicate: number;
  unreadable: Record<UnreadableReason, number>;
}

export interface ReadOptionsSettings {
  /** Restrict the read to these option names (for output that needs fewer); undefined = all. */
  only?: ReadonlySet<string>;
  access?: FdAccess;
  /**
   * Why no socket may be duplicated on this host (see procfs/cgroups.ts): then every
   * socket's options stay unknown with this reason, and pidfd_getfd is never called.
   */
  refuseDuplication?: string;
  /** Values the BPF pass read (bpf-pass.ts): what it settles is not read again. */
  bpf?: BpfPass;
  /** Batch SOL_SOCKET calls and closes in an io_uring where the kernel allows (default true; not with `access`). */
  ioUring?: boolean;
}

/** Past this many remembered settlements, new ones are no longer remembered (SettledAlike). */
const MAX_REMEMBERED_SETTLEMENTS = 4096;

/**
 * Options objects of sockets the dump and the BPF pass settled entirely, by what settled
 * them: the spec list, the dump's facts object (shared by sockets whose facts are all
 * the same) and the values of the pass's record (its content class: the same for
 * records that differ only in their cookies). A socket with all three the same as an
 * earlier one's has the same options — they are worked out of nothing else — and takes
 * that object without its dozens of values being worked out again.
 */
class SettledAlike {
  private readonly kept = new HashBuckets<{
    specs: readonly OptionSpec[];
    facts: unknown;
    options: SocketOptions;
  }>(MAX_REMEMBERED_SETTLEMENTS, 'stop');

  constructor(private readonly bpf: BpfPass) {}

  find(specs: readonly OptionSpec[], facts: unknown, record: number): SocketOptions | undefined {
    const bucket = this.kept.get(this.bpf.contentClass(record));
    if (bucket)
      for (const earlier of bucket)
        if (earlier.specs === specs && earlier.facts === facts) return earlier.options;
    return undefined;
  }

  remember(specs: readonly OptionSpec[], facts: unknown, record: number, options: SocketOptions): void {
    this.kept.add(this.bpf.contentClass(record), { specs, facts, options });
  }
}

/** Fewer rows than this are not worth a round trip to the helper (unless told `any`). */
const HELPER_MIN_ROWS = 2000;
/**
 * This process's share of the option calls when a helper reads the rest. Half: on the
 * 2-CPU VM of bench/RESULTS.md, shares from 0.4 to 0.6 measured alike within the noise
 * (this process also finishes every row and renders, but the helper started later).
 */
const PARENT_READ_SHARE = 0.5;

export class OptionReader {
  private readonly access: FdAccess;
  private readonly only: ReadonlySet<string> | undefined;
  private readonly refuseDuplication: string | undefined;
  private readonly bpf: BpfPass | undefined;
  private readonly ioUring: boolean;
  private readonly pidfds: PidfdTable;
  private readonly specs: SpecLists;
  private readonly rows: RowReader;
  /** This collection's options objects, one per different set of values. */
  private readonly table = new OptionsTable();
  /** Sockets the dump and the pass settled, by what settled them (SettledAlike). */
  private readonly settledAlike: SettledAlike | undefined;
  private readonly values: Array<OptionValue | undefined> = [];
  /** Why the helper process could not read its share, when it could not. */
  helperProblem: string | undefined;
  readonly summary: OptionReadSummary = {
    read: 0,
    settledWithoutDuplicate: 0,
    unreadable: {
      refused: 0,
      detached: 0,
      'no-owner': 0,
      'not-permitted': 0,
      unsupported: 0,
      vanished: 0,
      reused: 0,
      failed: 0,
    },
  };

  constructor(settings: ReadOptionsSettings = {}) {
    this.ioUring = settings.ioUring ?? true;
    this.access = settings.access ?? (this.ioUring ? libcFdAccess : directFdAccess);
    this.only = settings.only;
    this.refuseDuplication = settings.refuseDuplication;
    this.bpf = settings.bpf;
    this.settledAlike = settings.bpf && new SettledAlike(settings.bpf);
    this.specs = new SpecLists(settings.only);
    this.rows = new RowReader(this.access, this.specs);
    this.pidfds = new PidfdTable(this.access);
  }

  /** Reads one socket's options (see readAll). */
  read(socket: SocketRecord): boolean {
    return this.readAll([socket]).length === 1;
  }

  /**
   * Fills each socket's `options`, or sets `options: null` and `optionsError`. Returns
   * the sockets that still exist: one that vanished during the scan (every owner closed
   * it or exited) is skipped quietly. With a helper process, the later rows are read
   * there while this process reads the first ones; if the helper fails, they are read
   * here after all (`helperProblem` says why).
   */
  readAll(
    sockets: readonly SocketRecord[],
    helper?: HelperProcess,
    helperRows: 'enough' | 'any' = 'enough',
  ): SocketRecord[] {
    const jobs = allocateJobs(FIRST_JOB_ROOM, FIRST_JOB_ROOM);
    const rowSockets: SocketRecord[] = [];
    for (const socket of sockets) if (this.plan(socket, jobs)) rowSockets.push(socket);

    const status = new Uint8Array(jobs.count);
    let cut = jobs.count;
    if (helper && jobs.count > 0 && (helperRows === 'any' || jobs.count >= HELPER_MIN_ROWS)) {
      cut = this.splitRows(jobs, PARENT_READ_SHARE);
      try {
        helper.requestRead(sliceJobs(jobs, cut, jobs.count), this.only ? [...this.only] : null, this.ioUring);
      } catch (error) {
        this.helperProblem = (error as Error).message;
        cut = jobs.count;
      }
    }
    // Each row is settled as soon as its values are in: no list of every socket's values
    // is ever held.
    this.readRows(jobs, 0, cut, rowSockets, status);
    if (cut < jobs.count && helper) {
      let reply: ReadReply | undefined;
      try {
        reply = helper.receiveRead(jobs.count - cut);
        for (let row = cut; row < jobs.count; row++) {
          const needed = this.specs.get(jobs.key[row] as number).length;
          if (reply.status[row - cut] === 0 && needed > reply.values.width)
            throw new Error(`the helper sent ${reply.values.width} values for a row of ${needed} options`);
        }
      } catch (error) {
        this.helperProblem = (error as Error).message;
        reply = undefined;
      }
      if (reply) {
        const values = this.values;
        for (let row = cut; row < jobs.count; row++) {
          const at = row - cut;
          const outcome = reply.status[at] as number;
          status[row] = outcome;
          const socket = rowSockets[row] as SocketRecord;
          if (outcome === 0) {
            loadValues(reply.values, at, this.specs.get(jobs.key[row] as number).length, values);
            this.settle(socket, jobs, row, 0, values, '');
          } else {
            this.settle(socket, jobs, row, outcome, values, reply.messages[at] as string);
          }
        }
      } else {
        this.readRows(jobs, cut, jobs.count, rowSockets, status);
      }
    }

    // A socket that vanished during the scan (every owner closed it or exited) is dropped.
    const vanished = 1 + UNREADABLE_REASONS.indexOf('vanished');
    const kept: SocketRecord[] = [];
    let row = 0;
    for (const socket of sockets) {
      if (rowSockets[row] === socket) {
        if (status[row++] === vanished) continue;
      }
      kept.push(socket);
    }
    return kept;
  }

  private readRows(
    jobs: ReadJobs,
    from: number,
    to: number,
    rowSockets: readonly SocketRecord[],
    status: Uint8Array,
  ): void {
    for (let row = from; row < to; row++) {
      const outcome = this.rows.readRow(jobs, row);
      status[row] = outcome;
      this.settle(rowSockets[row] as SocketRecord, jobs, row, outcome, this.rows.values, this.rows.message);
    }
  }

  /** Row `row`'s outcome onto its socket: its options, or why they are unknown. */
  private settle(
    socket: SocketRecord,
    jobs: ReadJobs,
    row: number,
    outcome: number,
    values: ReadonlyArray<OptionValue | undefined>,
    message: string,
  ): void {
    if (outcome === 0) {
      socket.options = this.finish(socket, jobs, row, values);
      delete socket.optionsError;
      this.summary.read++;
    } else {
      const reason = UNREADABLE_REASONS[outcome - 1];
      if (reason === undefined) throw new RangeError(`no reason numbered ${outcome}`);
      this.fail(socket, reason, message);
    }
  }

  /**
   * The row where this process stops and the helper starts: this process takes about
   * `share` of the calls (each row costs its pidfd_getfd and close, and a getsockopt per
   * option the dump did not give).
   */
  private splitRows(jobs: ReadJobs, share: number): number {
    const weights = new Float64Array(jobs.count);
    for (let row = 0; row < jobs.count; row++) {
      const specs = this.specs.get(jobs.key[row] as number);
      let calls = 2;
      for (let i = 0; i < specs.length; i++) if (!isKnown(jobs, row, i)) calls++;
      weights[row] = calls;
    }
    return cutByWeight(weights, share);
  }

  /**
   * Settles a socket that needs no duplicate (returns false), or adds its job row: the
   * spec list, the identity to check, the options the dump gave, and the owners with
   * their pidfds (returns true).
   */
  private plan(socket: SocketRecord, jobs: ReadJobs): boolean {
    if (socket.minisocket) {
      socket.options = null;
      socket.optionsError =
        socket.state === 'TIME_WAIT'
          ? 'TIME_WAIT entries have no options'
          : 'a pending connection request has no options yet';
      return false;
    }
    if (socket.inode === 0) {
      // No struct socket, hence no fd anywhere: a connection still in its listener's accept
      // queue, or one its process already closed (an orphan finishing its FIN exchange).
      // Nobody's privileges would make it readable, so it is not a failure to report.
      this.fail(socket, 'detached', 'no process holds it (not accepted yet, or closed by its process)');
      return false;
    }
    if (socket.processes.length === 0) {
      this.fail(
        socket,
        'no-owner',
        'no visible owner (a kernel socket, or a process this user may not inspect)',
      );
      return false;
    }
    if (this.refuseDuplication !== undefined) {
      this.fail(socket, 'refused', this.refuseDuplication);
      return false;
    }
    const key = specKey(socket.protocol, socket.family, socket.state === 'LISTEN');
    const specs = this.specs.get(key);
    // What the dump and the BPF pass already give. A socket the pass saw and that they
    // settle entirely is not duplicated: only one that knetstat could have duplicated
    // (an owner is visible, duplication is not refused, and collect.ts runs the pass
    // only where any process may be inspected), so that the output is the same.
    const record = this.bpf?.recordOf(socket) ?? -1;
    const earlier = record >= 0 ? this.settledAlike?.find(specs, socket.optionFacts, record) : undefined;
    if (earlier !== undefined) {
      this.settleWithoutDuplicate(socket, earlier);
      return false;
    }
    const settlers = record >= 0 ? this.bpf?.settlers(specs) : undefined;
    const values = this.values;
    let known = 0;
    for (let i = 0; i < specs.length; i++) {
      values[i] = knownValue(socket, specs[i] as OptionSpec, record, settlers?.[i]);
      if (values[i] !== undefined) known++;
    }
    if (record >= 0 && known === specs.length) {
      const options = this.optionsOf(specs, values);
      this.settledAlike?.remember(specs, socket.optionFacts, record, options);
      this.settleWithoutDuplicate(socket, options);
      return false;
    }
    reserveRow(jobs, socket.processes.length);
    const row = jobs.count++;
    jobs.key[row] = key;
    jobs.inode[row] = socket.inode;
    if (socket.cookie !== null) {
      jobs.cookie[row] = BigInt(socket.cookie);
      jobs.hasCookie[row] = 1;
    }
    for (let i = 0; i < specs.length; i++)
      if (values[i] !== undefined)
        jobs.known[row * 2 + (i >> 5)] = (jobs.known[row * 2 + (i >> 5)] as number) | (1 << (i & 31));
    let o = jobs.ownerStart[row] as number;
    for (const owner of socket.processes) {
      jobs.ownerPid[o] = owner.pid;
      jobs.ownerFd[o] = owner.fd;
      jobs.ownerPidfd[o] = this.pidfds.pidfdOf(owner.pid);
      o++;
    }
    jobs.ownerStart[row + 1] = o;
    return true;
  }

  /** The socket's options: the dump's and the pass's values, and the values read. */
  private finish(
    socket: SocketRecord,
    jobs: ReadJobs,
    row: number,
    read: ReadonlyArray<OptionValue | undefined>,
  ): SocketOptions {
    const specs = this.specs.get(jobs.key[row] as number);
    const record = this.bpf?.recordOf(socket) ?? -1;
    const settlers = record >= 0 ? this.bpf?.settlers(specs) : undefined;
    const values = this.values;
    for (let i = 0; i < specs.length; i++) {
      // null is a value (SO_LINGER off), not an absence: no ??.
      const known = knownValue(socket, specs[i] as OptionSpec, record, settlers?.[i]);
      values[i] = known !== undefined ? known : read[i];
    }
    return this.optionsOf(specs, values);
  }

  private settleWithoutDuplicate(socket: SocketRecord, options: SocketOptions): void {
    socket.options = options;
    delete socket.optionsError;
    this.summary.read++;
    this.summary.settledWithoutDuplicate++;
  }

  /**
   * An options object for `specs` with `values` (undefined: this kernel lacks the
   * option), shared with every socket of this collection with the same values
   * (options-table.ts).
   */
  private optionsOf(
    specs: readonly OptionSpec[],
    values: ReadonlyArray<OptionValue | undefined>,
  ): SocketOptions {
    let present = 0;
    for (let i = 0; i < specs.length; i++) if (values[i] !== undefined) present++;
    if (present === specs.length) return this.table.optionsOf(specs, values);
    // Some options are missing (this kernel lacks them): only the ones read.
    const entries: Array<[string, OptionValue]> = [];
    for (let i = 0; i < specs.length; i++) {
      if (values[i] !== undefined) entries.push([(specs[i] as OptionSpec).name, values[i] as OptionValue]);
    }
    return Object.freeze(Object.fromEntries(entries));
  }

  private fail(socket: SocketRecord, reason: UnreadableReason, message: string): void {
    socket.options = null;
    socket.optionsError = message;
    this.summary.unreadable[reason]++;
  }

  /** Closes every pidfd opened for this collection, and the io_uring. */
  close(): void {
    this.pidfds.close();
    this.rows.close();
  }
}
