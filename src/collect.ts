/**
 * The pipeline: enumerate (sock_diag, or /proc/net as a fallback) → attribute owners
 * (/proc/PID/fd) → read options (pidfd_getfd + getsockopt) → derive Diag.
 */
import { existsSync, readFileSync } from 'node:fs';
import { HelperProcess, helperWorthwhile, mayInspectAnyProcess, splitProcesses } from './helper/parent.js';
import type { ScanReply } from './helper/protocol.js';
import type {
  Collection,
  DiagIndicator,
  Family,
  HelperUse,
  Protocol,
  SocketRecord,
  Source,
  TableName,
} from './model.js';
import { TABLES } from './model.js';
import type { InetDiagMessage } from './netlink/inet-diag.js';
import { type DumpRequest, dumpInetSocketsAs, NetlinkSocket } from './netlink/sock-diag.js';
import {
  BPF_MIN_TCP_SOCKETS,
  type BpfPass,
  mayLoadBpf,
  PendingBpfPass,
  runBpfPass,
  startBpfPass,
} from './options/bpf-pass.js';
import { BPF_SETTLED, plainCallsPerSocket } from './options/jobs.js';
import type { FdAccess } from './options/reader.js';
import { OptionReader, type OptionReadSummary } from './options/reader.js';
import {
  inInitialPidNamespace,
  type PreparedOwnerProgram,
  prepareOwnerProgram,
  scanOwnersWithBpf,
} from './procfs/bpf-owners.js';
import { CAP_DAC_READ_SEARCH, hasCapabilities } from './procfs/capabilities.js';
import { readRetaggingControllers } from './procfs/cgroups.js';
import { parseProcNetTable, procNetPath, tcpSocketsInUse } from './procfs/net.js';
import { addOwner, listProcessIds, type OwnerScan, scanProcesses } from './procfs/owners.js';
import { stateName, TCP_STATE_NEW_SYN_RECV, TCP_STATE_TIME_WAIT } from './states.js';
import { forgetKernelBtf, KERNEL_BTF, kernelBtf } from './sys/btf.js';
import { ProtocolError, SystemCallError } from './sys/errors.js';

export interface CollectSettings {
  /** Which tables; default all four, in the order tcp, tcp6, udp, udp6. */
  tables?: readonly TableName[];
  /** 'auto' (default) uses netlink and falls back to /proc/net when it is refused. */
  source?: Source | 'auto';
  /** Fill `processes` from /proc/PID/fd (default true; needed for options). */
  owners?: boolean;
  /**
   * Which options to read: undefined = the whole catalogue, a set = only those names,
   * false = none (options stay null with no error).
   */
  options?: ReadonlySet<string> | false;
  /**
   * Batch each socket's SOL_SOCKET getsockopt calls and close in one io_uring_enter
   * (Linux 6.7+; default true, and plain system calls where io_uring is refused).
   */
  ioUring?: boolean;
  /**
   * A helper process doing half the /proc scan and option reads on the second CPU:
   * 'auto' (default) where there is one and enough sockets to repay its start, 'on'
   * always (tests), 'off' never. The output is the same either way.
   */
  parallel?: 'auto' | 'on' | 'off';
  /**
   * Read most TCP options in one pass of a BPF iterator before duplicating any socket
   * (options/bpf-pass.ts): 'auto' (default) with the privilege to load it and at least
   * BPF_MIN_TCP_SOCKETS TCP sockets, 'on' whatever their number (tests), 'off' never.
   * The output is the same either way.
   */
  bpf?: 'auto' | 'on' | 'off';
  /**
   * Keep each socket's tcp_info and memory counters in `tcpInfo` and `memInfo` (default
   * true). The CLI, which shows neither, sets false: `diag` and the buffer sizes are
   * taken from them while parsing either way.
   */
  details?: boolean;
  /** For tests: the helper's command line instead of Node running dist/helper/child.js. */
  helperCommand?: readonly string[];
  /** For tests: HELPER_PATIENCE_MS, how long past its due a helper may keep this process waiting. */
  helperPatienceMs?: number;
  /** For tests: another /proc, or injected system calls. */
  procRoot?: string;
  fdAccess?: FdAccess;
}

function tableParts(table: TableName): { protocol: Protocol; family: Family } {
  return { protocol: table.startsWith('tcp') ? 'tcp' : 'udp', family: table.endsWith('6') ? 6 : 4 };
}

/**
 * The owners of a socket none has been found for yet, shared by every record until the
 * owner scan gives it a list of its own; collectSockets hands each socket still without
 * owners a list of its own at the end. Most sockets get owners, and an empty list made
 * for each of them first would be 36,000 objects at 36,000 sockets, carried into the
 * old generation only to be dropped.
 */
const NO_OWNERS_YET: SocketRecord['processes'] = Object.freeze([]) as unknown as SocketRecord['processes'];

function newRecord(
  protocol: Protocol,
  family: Family,
  stateNumber: number,
  fields: Pick<
    SocketRecord,
    | 'local'
    | 'remote'
    | 'recvQ'
    | 'sendQ'
    | 'inode'
    | 'cookie'
    | 'uid'
    | 'tcpInfo'
    | 'memInfo'
    | 'optionFacts'
  > & {
    /** The Diag indicator from tcp_info (InetDiagMessage.windowDiag); null without one. */
    windowDiag: DiagIndicator | null;
  },
): SocketRecord | null {
  const state = stateName(protocol, stateNumber);
  if (state === null) return null;
  const minisocket =
    protocol === 'tcp' &&
    (stateNumber === TCP_STATE_TIME_WAIT ||
      stateNumber === TCP_STATE_NEW_SYN_RECV ||
      (state === 'SYN_RECV' && fields.inode === 0));
  // Every field written here, in one order: all records share one compact shape.
  return {
    protocol,
    family,
    state,
    local: fields.local,
    remote: fields.remote,
    recvQ: fields.recvQ,
    sendQ: fields.sendQ,
    inode: fields.inode,
    cookie: fields.cookie,
    uid: fields.uid,
    minisocket,
    // Mini-sockets carry no tcp_info; their Diag is simply empty, as is that of any
    // socket but an ESTABLISHED TCP one.
    diag: minisocket || protocol !== 'tcp' || state !== 'ESTABLISHED' ? '' : fields.windowDiag,
    tcpInfo: fields.tcpInfo,
    memInfo: fields.memInfo,
    optionFacts: minisocket ? undefined : fields.optionFacts,
    processes: NO_OWNERS_YET,
    options: null,
  };
}

/**
 * A socket's record, made from its sock_diag message as it is read (so that the message
 * dies young). One function for every table (see MessageConverter).
 */
function recordOfMessage(m: InetDiagMessage, request: DumpRequest): SocketRecord | null {
  const { protocol, family } = request;
  return newRecord(protocol, family, m.state, {
    local: m.local,
    remote: m.remote,
    recvQ: m.recvQ,
    // For a listener sock_diag reports the maximum backlog here; /proc/net/tcp and
    // knetstat show 0.
    sendQ: protocol === 'tcp' && m.state === 10 ? 0 : m.sendQ,
    inode: m.inode,
    cookie: m.cookie,
    uid: m.uid,
    tcpInfo: protocol === 'tcp' ? m.tcpInfo : null,
    windowDiag: protocol === 'tcp' ? m.windowDiag : null,
    memInfo: m.memInfo,
    optionFacts: m.optionFacts,
  });
}

function enumerateNetlink(
  table: TableName,
  warnings: string[],
  optionFacts: boolean,
  details: boolean,
): SocketRecord[] {
  const { protocol, family } = tableParts(table);
  const { items: records, interrupted } = dumpInetSocketsAs(
    () => new NetlinkSocket(),
    { protocol, family, optionFacts, details },
    recordOfMessage,
  );
  if (interrupted)
    warnings.push(
      `the ${table} table kept changing during the dump; the listing may miss or repeat a socket`,
    );
  return records;
}

function enumerateProc(table: TableName, procRoot: string): SocketRecord[] {
  const { protocol, family } = tableParts(table);
  let text: string;
  try {
    text = readFileSync(procNetPath(protocol, family, procRoot), 'utf8');
  } catch (error) {
    // No IPv6 on this host: the table is simply empty, as the module's would be absent.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const records: SocketRecord[] = [];
  for (const entry of parseProcNetTable(text, family)) {
    const record = newRecord(protocol, family, entry.state, {
      local: entry.local,
      remote: entry.remote,
      recvQ: entry.recvQ,
      sendQ: entry.sendQ,
      inode: entry.inode,
      cookie: null,
      uid: entry.uid,
      tcpInfo: null,
      windowDiag: null,
      memInfo: null,
      optionFacts: undefined,
    });
    if (record) records.push(record);
  }
  return records;
}

/** Errors that mean "this sandbox does not let us use sock_diag", as opposed to a bug. */
const NETLINK_REFUSALS = new Set([
  'EPERM',
  'EACCES',
  'EPROTONOSUPPORT',
  'EAFNOSUPPORT',
  'ENOENT',
  'EOPNOTSUPP',
]);

function optionsWarning(summary: OptionReadSummary, unreadableProcesses: number): string | null {
  const u = summary.unreadable;
  const fixable = u['not-permitted'] + (unreadableProcesses > 0 ? u['no-owner'] : 0);
  // Sockets closed during the scan are dropped quietly, not counted; sockets no process
  // holds (accept queue, orphans) are marked but are nothing anyone could fix.
  const total = Object.values(u).reduce((a, b) => a + b, 0) - u.vanished - u.detached;
  if (total === 0) return null;
  const parts: string[] = [];
  if (u.refused)
    parts.push(`${u.refused} not read to keep them unchanged (cgroup v1 net_cls/net_prio in use)`);
  if (u['not-permitted']) parts.push(`${u['not-permitted']} not permitted`);
  if (u['no-owner']) parts.push(`${u['no-owner']} with no visible owner`);
  if (u.unsupported) parts.push(`${u.unsupported} unsupported (pidfd_getfd needs Linux 5.6)`);
  if (u.reused) parts.push(`${u.reused} whose fd was reused during the scan`);
  if (u.failed) parts.push(`${u.failed} failed`);
  // Listing another user's /proc/PID/fd needs CAP_DAC_READ_SEARCH (the directory is mode
  // 0500 and checked like any other); duplicating its fds needs CAP_SYS_PTRACE.
  // Root can still be refused (a process of another user namespace, a sandbox's init):
  // then telling root to become root would be no help.
  const asRoot = process.geteuid?.() === 0;
  const fix =
    fixable === 0
      ? ''
      : asRoot
        ? '; some processes refuse inspection even to root (another user namespace, or a sandbox)'
        : '; run as root or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH to see them';
  return `options unknown for ${total} socket${total === 1 ? '' : 's'}: ${parts.join(', ')}${fix}`;
}

/** The sockets of the tables asked for, from sock_diag or /proc/net. */
function enumerate(
  settings: CollectSettings,
  procRoot: string,
  warnings: string[],
): { sockets: SocketRecord[]; source: Source } {
  const tables = settings.tables ?? TABLES;
  let source: Source = settings.source === 'proc' ? 'proc' : 'netlink';
  const byTable = new Map<TableName, SocketRecord[]>();
  for (const table of TABLES) {
    if (!tables.includes(table)) continue;
    if (source === 'netlink') {
      try {
        byTable.set(
          table,
          enumerateNetlink(table, warnings, settings.options !== false, settings.details !== false),
        );
        continue;
      } catch (error) {
        const refused =
          error instanceof SystemCallError && error.syscall === 'socket' && NETLINK_REFUSALS.has(error.code);
        if (!refused || settings.source === 'netlink') throw error;
        warnings.push(
          `sock_diag netlink is not available (${error.message}); reading /proc/net instead, without tcp_info (Diag unknown)`,
        );
        source = 'proc';
        byTable.clear();
        for (const earlier of TABLES) {
          if (earlier === table) break;
          if (tables.includes(earlier)) byTable.set(earlier, enumerateProc(earlier, procRoot));
        }
      }
    }
    byTable.set(table, enumerateProc(table, procRoot));
  }
  // concat copies each table's array whole; flatMap went element by element (8 ms against
  // 1 for 36,000 sockets).
  const none: SocketRecord[] = [];
  return { sockets: none.concat(...TABLES.map((t) => byTable.get(t) ?? none)), source };
}

/**
 * This process's share of the host's processes, the helper's share (which it is already
 * scanning), and the helper; or no helper, and this process scans them all.
 */
interface WorkSplit {
  helper: HelperProcess | undefined;
  ownPids: number[];
  helperPids: number[];
}

/**
 * This process's share of the /proc scan (by open fds) when a helper does the rest.
 * Both scan after the dump, as one process would, so that every socket the dump lists
 * is looked for in every process after it was listed.
 */
const PARENT_SCAN_SHARE = 0.5;

/**
 * Starts the helper where settings and host call for one, so that Node is up in it by
 * the time this process has dumped sock_diag, and cuts the process list between them.
 */
function startHelper(
  settings: CollectSettings,
  procRoot: string,
  onFailure: (error: unknown) => void,
): WorkSplit {
  const parallel = settings.parallel ?? 'auto';
  // Without a helper, the one list of processes is taken after the dump (see "later").
  const none: WorkSplit = { helper: undefined, ownPids: [], helperPids: [] };
  // Injected system calls (tests) exist only in this process.
  if (parallel === 'off' || settings.fdAccess !== undefined) return none;
  if (parallel === 'auto') {
    // Owners alone are not worth a helper; options are, when there are enough calls.
    const calls = settings.options === false ? 0 : plainCallsPerSocket(settings.options, bpfLikely(settings));
    if (!helperWorthwhile(procRoot, calls)) return none;
  }
  let helper: HelperProcess;
  try {
    helper = HelperProcess.start(settings.helperCommand, settings.helperPatienceMs);
  } catch (error) {
    onFailure(error);
    return none;
  }
  const pids = listProcessIds(procRoot);
  const cut = splitProcesses(procRoot, pids, PARENT_SCAN_SHARE);
  return { helper, ownPids: pids.slice(0, cut), helperPids: pids.slice(cut) };
}

/** Whether the BPF pass will probably settle most options (decided before the dump: see bpfPass). */
function bpfLikely(settings: CollectSettings): boolean {
  return (
    (settings.bpf ?? 'auto') !== 'off' &&
    settings.fdAccess === undefined &&
    bpfCanSettle(settings.options) &&
    existsSync(KERNEL_BTF) &&
    mayLoadBpf()
  );
}

/** Whether the pass can settle any of the options asked for (for `-o TCP_CONGESTION`, which the dump gives, it cannot). */
function bpfCanSettle(only: ReadonlySet<string> | false | undefined): boolean {
  if (only === false) return false;
  if (only === undefined) return true;
  for (const name of only) if (BPF_SETTLED.has(name)) return true;
  return false;
}

/**
 * The BPF pass over the dump's TCP sockets where settings and host allow, or undefined.
 * It settles a socket only where knetstat could have duplicated it (see OptionReader),
 * so it runs only where this process may inspect any process. In 'auto', a pass that
 * could not run for want of privilege, BTF, or a field in the kernel's types is silent
 * (getsockopt reads everything, as before); any other failure, or any failure of a pass
 * asked for with 'on', is a warning.
 */
function bpfPass(
  settings: CollectSettings,
  source: Source,
  sockets: readonly SocketRecord[],
  warnings: string[],
  early: PendingBpfPass | Error | undefined,
): BpfPass | undefined {
  const only = settings.options;
  if (only === false || !optionsPassAllowed(settings, source)) return undefined;
  let pass: BpfPass | Error;
  if (early !== undefined) {
    pass = early instanceof Error ? early : early.finish();
  } else {
    let tcp = 0;
    for (const s of sockets) if (s.protocol === 'tcp' && !s.minisocket) tcp++;
    if (!enoughForOptionsPass(settings, tcp)) return undefined;
    pass = runBpfPass(only, tcp);
  }
  if (!(pass instanceof Error)) return pass;
  reportBpfFailure(pass, settings.bpf, 'the BPF pass', 'options were read with getsockopt instead', warnings);
  return undefined;
}

/**
 * Whether the options pass may run for these settings over sockets from `source`,
 * whatever their number: the rule before the dump and after it.
 */
function optionsPassAllowed(settings: CollectSettings, source: Source | 'auto' | undefined): boolean {
  // Sockets from /proc/net have no cookie to find their records by.
  if ((settings.bpf ?? 'auto') === 'off' || settings.fdAccess !== undefined || source === 'proc')
    return false;
  return bpfCanSettle(settings.options);
}

/**
 * Whether `tcp` TCP sockets call for the pass: always with 'on'; in 'auto', enough of
 * them, the privilege to load it, and any process inspectable (see bpfPass).
 */
function enoughForOptionsPass(settings: CollectSettings, tcp: number): boolean {
  if (settings.bpf === 'on') return true;
  return tcp >= BPF_MIN_TCP_SOCKETS && mayLoadBpf() && mayInspectAnyProcess();
}

/**
 * The options pass started before the dump, on a thread (options/bpf-pass.ts,
 * startBpfPass), where it will be wanted whatever the dump finds: under the conditions
 * bpfPass checks after it, with sockstat's count of TCP sockets standing in for the
 * dump's. Where sockstat counts too few, bpfPass decides after the dump as before.
 */
function startBpfPassEarly(
  settings: CollectSettings,
  tables: readonly TableName[],
  procRoot: string,
): PendingBpfPass | Error | undefined {
  const only = settings.options;
  if (only === false || !optionsPassAllowed(settings, settings.source)) return undefined;
  if (!tables.some((table) => table.startsWith('tcp'))) return undefined;
  const tcp = tcpSocketsInUse(procRoot);
  if (!enoughForOptionsPass(settings, tcp)) return undefined;
  return startBpfPass(only, tcp);
}

/**
 * A BPF pass that could not run: silent in 'auto' for want of privilege, BTF or a type
 * in the kernel's BTF (the old path does the same work), a warning otherwise.
 */
function reportBpfFailure(
  error: unknown,
  mode: CollectSettings['bpf'],
  what: string,
  instead: string,
  warnings: string[],
): void {
  const code = (error as { code?: unknown }).code;
  const quiet = code === 'ENOENT' || code === 'EPERM' || error instanceof ProtocolError;
  if (!quiet || mode === 'on') warnings.push(`${what} failed (${(error as Error).message}); ${instead}`);
}

/**
 * The /proc scan for owners, shared with the helper where there is one (after the dump,
 * so that, as with one process, every listed socket is looked for in every process after
 * it was listed), then the processes started since the list was taken.
 */
function scanProcFds(
  procRoot: string,
  split: WorkSplit,
  wanted: ReadonlySet<number>,
  scan: OwnerScan,
  helperFailed: (error: unknown) => void,
): void {
  const helper = split.helper;
  let helperScans = false;
  if (helper) {
    try {
      helper.requestScan(procRoot, split.helperPids, wanted);
      helperScans = true;
    } catch (error) {
      helperFailed(error);
    }
  }
  scanProcesses(procRoot, split.ownPids, wanted, scan);
  let helperScanned = false;
  if (helper && helperScans) {
    try {
      addHelperOwners(scan, helper.receiveScan(split.helperPids), wanted);
      helperScanned = true;
    } catch (error) {
      helperFailed(error);
    }
  }
  if (!helperScanned) scanProcesses(procRoot, split.helperPids, wanted, scan);
  // Every process without a helper; with one, those started since the list was taken,
  // whose sockets the dump may hold.
  const listed = new Set(split.ownPids);
  for (const pid of split.helperPids) listed.add(pid);
  const later = listProcessIds(procRoot).filter((pid) => !listed.has(pid));
  scanProcesses(procRoot, later, wanted, scan);
}

/**
 * The owner scan by a BPF iterator (procfs/bpf-owners.ts) where settings and host allow
 * — the same conditions as the options pass, and knetstat seeing the kernel's own pids
 * in /proc — filling each socket's `processes`; false where the /proc scan must do it
 * (quietly in 'auto' for want of privilege, BTF or a kernel type, with a warning
 * otherwise).
 */
function bpfOwners(
  settings: CollectSettings,
  procRoot: string,
  sockets: readonly SocketRecord[],
  warnings: string[],
): boolean {
  const mode = settings.bpf ?? 'auto';
  if (mode === 'off' || settings.fdAccess !== undefined || procRoot !== '/proc') return false;
  // It finds what a /proc scan by this process would only where that scan could read
  // every process's fd table (CAP_DAC_READ_SEARCH) and its pids are the kernel's.
  const seesAll = hasCapabilities(CAP_DAC_READ_SEARCH) && mayInspectAnyProcess();
  if (
    mode === 'auto' &&
    (sockets.length < BPF_MIN_TCP_SOCKETS || !mayLoadBpf() || !seesAll || !inInitialPidNamespace())
  )
    return false;
  try {
    if (!inInitialPidNamespace())
      throw new Error('its pids are not the ones /proc shows here (another pid namespace)');
    if (!mayLoadBpf()) throw new Error('needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN');
    if (!seesAll)
      throw new Error('needs CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, to see what a /proc scan would');
    preparedOwners ??= prepareOwnerProgram(kernelBtf());
    scanOwnersWithBpf(preparedOwners, sockets);
    return true;
  } catch (error) {
    // The /proc scan starts from no owners, whatever the pass added before it failed.
    for (const socket of sockets) if (socket.processes.length > 0) socket.processes = [];
    reportBpfFailure(error, mode, 'the BPF owner scan', '/proc was scanned instead', warnings);
    return false;
  }
}

/** The owner program, built once per process from the kernel's BTF. */
let preparedOwners: PreparedOwnerProgram | undefined;

/** The helper's scan, in its order after this process's own: owners of wanted inodes only. */
function addHelperOwners(scan: OwnerScan, reply: ScanReply, wanted: ReadonlySet<number>): void {
  scan.unreadableProcesses += reply.unreadableProcesses;
  const commands = new Map<number, string>();
  for (let i = 0; i < reply.commandPid.length; i++)
    commands.set(reply.commandPid[i] as number, reply.commands[i] as string);
  for (let i = 0; i < reply.pid.length; i++) {
    const inode = reply.inode[i] as number;
    if (!wanted.has(inode)) continue;
    const pid = reply.pid[i] as number;
    addOwner(scan.owners, inode, { pid, fd: reply.fd[i] as number, command: commands.get(pid) ?? '?' });
  }
}

/** Collects the sockets of the tables asked for, with owners and options as asked. */
export function collectSockets(settings: CollectSettings = {}): Collection {
  const procRoot = settings.procRoot ?? '/proc';
  const warnings: string[] = [];
  const wantOwners = settings.owners !== false || settings.options !== false;
  let helperUse: HelperUse = 'none';
  const bpfUse = { owners: false, options: false };
  const settled = { count: 0 };
  const helperFailed = (error: unknown): void => {
    if (helperUse === 'failed') return;
    helperUse = 'failed';
    const reason = error instanceof Error ? error.message : String(error);
    warnings.push(`the helper process failed (${reason}); this process did its share instead`);
  };
  // The helper starts first, so that Node is up in it while this process dumps sock_diag.
  const split = wantOwners ? startHelper(settings, procRoot, helperFailed) : undefined;
  const helper = split?.helper;
  if (helper) helperUse = 'used';
  // The options pass, where it is sure to be wanted, runs in the kernel on the second CPU
  // while this thread dumps sock_diag.
  const early = wantOwners ? startBpfPassEarly(settings, settings.tables ?? TABLES, procRoot) : undefined;
  try {
    const enumerated = enumerate(settings, procRoot, warnings);
    let sockets = enumerated.sockets;
    if (split) {
      const scan: OwnerScan = { owners: new Map(), unreadableProcesses: 0 };
      if (bpfOwners(settings, procRoot, sockets, warnings)) {
        bpfUse.owners = true;
      } else {
        const wanted = new Set<number>();
        for (const s of sockets) if (s.inode !== 0) wanted.add(s.inode);
        scanProcFds(procRoot, split, wanted, scan, helperFailed);
        for (const s of sockets) {
          const owners = scan.owners.get(s.inode);
          if (owners) s.processes = owners;
        }
      }
      if (settings.options !== false) {
        const pass = bpfPass(settings, enumerated.source, sockets, warnings, early);
        bpfUse.options = pass !== undefined;
        sockets = readOptions(
          settings,
          procRoot,
          sockets,
          scan,
          warnings,
          helperUse === 'used' ? helper : undefined,
          helperFailed,
          pass,
          settled,
        );
      }
    }
    for (const socket of sockets) if (socket.processes === NO_OWNERS_YET) socket.processes = [];
    return {
      sockets,
      source: enumerated.source,
      warnings,
      helper: helperUse,
      bpf: bpfUse,
      settledWithoutDuplicate: settled.count,
    };
  } finally {
    // A pass started but not used (the dump failed, or fell back to /proc/net) still
    // ends here: its thread is waited for and its program unloaded.
    if (early instanceof PendingBpfPass) early.finish();
    helper?.close();
    forgetKernelBtf();
  }
}

function readOptions(
  settings: CollectSettings,
  procRoot: string,
  sockets: SocketRecord[],
  scan: OwnerScan,
  warnings: string[],
  helper: HelperProcess | undefined,
  helperFailed: (error: unknown) => void,
  bpf: BpfPass | undefined,
  settled: { count: number },
): SocketRecord[] {
  const retagging = readRetaggingControllers(procRoot);
  const refuseDuplication =
    retagging.length === 0
      ? undefined
      : `not read: this host has cgroup v1 ${retagging.join(' and ')} groups, and duplicating a socket (pidfd_getfd) would re-tag it with knetstat's own`;
  const reader = new OptionReader({
    bpf,
    only: settings.options === false ? undefined : settings.options,
    access: settings.fdAccess,
    ioUring: settings.ioUring,
    refuseDuplication,
  });
  let kept: SocketRecord[];
  try {
    // 'on' hands the helper rows however few there are, so that tests exercise it.
    kept = reader.readAll(sockets, helper, settings.parallel === 'on' ? 'any' : 'enough');
  } finally {
    reader.close();
  }
  if (reader.helperProblem !== undefined) helperFailed(new Error(reader.helperProblem));
  settled.count = reader.summary.settledWithoutDuplicate;
  const warning = optionsWarning(reader.summary, scan.unreadableProcesses);
  if (warning) warnings.push(warning);
  return kept;
}
