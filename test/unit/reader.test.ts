/**
 * The option reader with its system calls injected: fd reuse between the /proc scan and
 * the duplicate, refusals, vanished owners, a second owner, pidfds closed at the end, and
 * options this kernel does not have. Also once through collectSockets over a fake /proc.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collectSockets } from '../../src/collect.js';
import type { SocketOwner, SocketRecord } from '../../src/model.js';
import type { BpfPass } from '../../src/options/bpf-pass.js';
import { DirectCalls, type SocketCalls } from '../../src/options/calls.js';
import { OPTION_CATALOGUE, SOL_SOCKET, SOL_TCP } from '../../src/options/catalogue.js';
import { type FdAccess, OptionReader } from '../../src/options/reader.js';
import { formatRow } from '../../src/render/text.js';
import { SystemCallError } from '../../src/sys/errors.js';

const errno = constants.errno;
const SO_KEEPALIVE = 9;
const SO_COOKIE = 57;
const TCP_NODELAY = 1;

type Handle = { kind: 'pidfd'; pid: number } | { kind: 'duplicate'; pid: number; fd: number; inode: number };

interface FakeProcess {
  /** pidfd_open fails with this errno. */
  openError?: number;
  /** fd → the inode it holds now, or the errno pidfd_getfd fails with. */
  fds: Record<number, { inode: number } | { error: number }>;
}

/**
 * A pretend kernel: processes with fds, sockets with option values, and a record of every
 * call and of which of "our" fds are open.
 */
class FakeFdAccess implements FdAccess {
  readonly calls: string[] = [];
  readonly open = new Map<number, Handle>();
  private nextFd = 100;
  /** getsockopt calls, as "inode level/name". */
  readonly reads: string[] = [];
  /** Most open duplicates at any moment. */
  maxDuplicatesOpen = 0;
  openRing?: () => SocketCalls | Error;

  constructor(
    private readonly processes: Record<number, FakeProcess>,
    /** inode → "level/name" → value, or a negative errno. Options not listed: ENOPROTOOPT. */
    private readonly options: Record<number, Record<string, number>>,
  ) {}

  pidfdOpen(pid: number): number {
    this.calls.push(`pidfd_open ${pid}`);
    const process = this.processes[pid];
    if (!process) throw new SystemCallError('pidfd_open', errno.ESRCH);
    if (process.openError) throw new SystemCallError('pidfd_open', process.openError);
    const fd = this.nextFd++;
    this.open.set(fd, { kind: 'pidfd', pid });
    return fd;
  }

  pidfdGetfd(pidfd: number, targetFd: number): number {
    const handle = this.open.get(pidfd);
    if (handle?.kind !== 'pidfd') throw new Error(`pidfd_getfd on ${pidfd}, which is not an open pidfd`);
    this.calls.push(`pidfd_getfd ${handle.pid} ${targetFd}`);
    const entry = this.processes[handle.pid]?.fds[targetFd];
    if (!entry) throw new SystemCallError('pidfd_getfd', errno.EBADF);
    if ('error' in entry) throw new SystemCallError('pidfd_getfd', entry.error);
    const fd = this.nextFd++;
    this.open.set(fd, { kind: 'duplicate', pid: handle.pid, fd: targetFd, inode: entry.inode });
    const duplicates = [...this.open.values()].filter((h) => h.kind === 'duplicate').length;
    this.maxDuplicatesOpen = Math.max(this.maxDuplicatesOpen, duplicates);
    return fd;
  }

  inodeOf(fd: number): number {
    const handle = this.open.get(fd);
    if (handle?.kind !== 'duplicate') throw new Error(`fstat on ${fd}, which is not an open duplicate`);
    return handle.inode;
  }

  getsockopt(fd: number, level: number, name: number, value: Uint8Array, length: Uint32Array): number {
    const handle = this.open.get(fd);
    if (handle?.kind !== 'duplicate') throw new Error(`getsockopt on ${fd}, which is not an open duplicate`);
    this.reads.push(`${handle.inode} ${level}/${name}`);
    if (level === SOL_SOCKET && name === SO_COOKIE) {
      // The fake's cookies: inode × 1000, so that a reused fd shows another cookie.
      new DataView(value.buffer, value.byteOffset).setBigUint64(0, BigInt(handle.inode * 1000), true);
      length[0] = 8;
      return 8;
    }
    const v = this.options[handle.inode]?.[`${level}/${name}`];
    if (v === undefined) return -errno.ENOPROTOOPT;
    if (v < 0) return v;
    new DataView(value.buffer, value.byteOffset).setInt32(0, v, true);
    length[0] = 4;
    return 4;
  }

  close(fd: number): void {
    if (!this.open.delete(fd)) throw new Error(`close of ${fd}, which is not open`);
    this.calls.push(`close ${fd}`);
  }
}

/**
 * A pretend io_uring over the fake kernel: it queues SOL_SOCKET calls and the close and
 * runs them at submit, and can be told to fail a submit before or after the kernel ran it.
 */
class FakeRing implements SocketCalls {
  readonly ran: DirectCalls;
  private queue: Array<() => void> = [];
  readonly log: string[] = [];
  submits = 0;
  closeSubmitted = false;
  failNextSubmit: 'before' | 'after' | null = null;
  disposed = false;

  constructor(access: FakeFdAccess) {
    this.ran = new DirectCalls(access);
  }

  get results() {
    return this.ran.results;
  }
  get closeResult() {
    return this.ran.closeResult;
  }

  getsockopt(fd: number, level: number, name: number, slot: number): void {
    if (level !== SOL_SOCKET) throw new Error(`level ${level} queued in the ring`);
    this.log.push(`getsockopt ${level}/${name}`);
    this.queue.push(() => this.ran.getsockopt(fd, level, name, slot));
  }

  close(fd: number): void {
    this.log.push('close');
    this.queue.push(() => this.ran.close(fd));
  }

  submit(): void {
    this.submits++;
    const queue = this.queue;
    this.queue = [];
    const failure = this.failNextSubmit;
    this.failNextSubmit = null;
    this.closeSubmitted = failure === 'after';
    if (failure === 'before') throw new SystemCallError('io_uring_enter', errno.ENOMEM);
    for (const call of queue) call();
    if (failure === 'after') throw new SystemCallError('io_uring_enter', errno.EINTR + 1000);
  }

  slot(slot: number): Uint8Array {
    return this.ran.slot(slot);
  }

  dispose(): void {
    this.disposed = true;
  }
}

function socketRecord(
  inode: number,
  processes: SocketOwner[],
  state: SocketRecord['state'] = 'LISTEN',
): SocketRecord {
  return {
    protocol: 'tcp',
    family: 4,
    state,
    local: { address: '127.0.0.1', port: 8080 },
    remote: { address: '0.0.0.0', port: 0 },
    recvQ: 0,
    sendQ: 0,
    inode,
    cookie: null,
    uid: 0,
    minisocket: false,
    diag: '',
    tcpInfo: null,
    memInfo: null,
    processes,
    options: null,
  };
}

const owner = (pid: number, fd: number): SocketOwner => ({ pid, fd, command: `p${pid}` });
const ONLY = new Set(['SO_KEEPALIVE', 'TCP_NODELAY']);
const keepaliveNodelay = (keepalive: number, nodelay: number) => ({
  [`${SOL_SOCKET}/${SO_KEEPALIVE}`]: keepalive,
  [`${SOL_TCP}/${TCP_NODELAY}`]: nodelay,
});

/** Reads the sockets as a collection does; `only: null` asks for the whole catalogue. */
function read(access: FakeFdAccess, sockets: SocketRecord[], only: ReadonlySet<string> | null = ONLY) {
  const reader = new OptionReader({ access, only: only ?? undefined });
  const kept = sockets.filter((s) => reader.read(s));
  reader.close();
  return { kept, summary: reader.summary };
}

const textSettings = {
  selection: { kind: 'knetstat' } as const,
  keepalive: { time: 7200, probes: 9, interval: 75 },
};

describe('OptionReader', () => {
  it('a failing fstat marks that one socket and the collection goes on', () => {
    const access = new FakeFdAccess(
      { 10: { fds: { 3: { inode: 500 }, 4: { inode: 501 } } } },
      { 500: keepaliveNodelay(1, 1), 501: keepaliveNodelay(0, 1) },
    );
    const inodeOf = access.inodeOf.bind(access);
    access.inodeOf = (fd: number) => {
      if (inodeOf(fd) === 500) throw new SystemCallError('fstat', errno.EIO);
      return inodeOf(fd);
    };
    const failing = socketRecord(500, [owner(10, 3)]);
    const fine = socketRecord(501, [owner(10, 4)]);
    const { kept, summary } = read(access, [failing, fine]);
    expect(kept).toEqual([failing, fine]);
    expect(failing.options).toBeNull();
    expect(failing.optionsError).toBe('fstat failed for pid 10: EIO');
    expect(summary.unreadable.failed).toBe(1);
    expect(fine.options).toEqual({ SO_KEEPALIVE: 0, TCP_NODELAY: 1 });
    expect([...access.open.values()].filter((h) => h.kind === 'duplicate')).toEqual([]);
  });

  it('a close that fails (EINTR on a lingering socket) neither loses the values read nor ends the run', () => {
    const access = new FakeFdAccess({ 10: { fds: { 3: { inode: 500 } } } }, { 500: keepaliveNodelay(1, 0) });
    const close = access.close.bind(access);
    access.close = (fd: number) => {
      const duplicate = access.open.get(fd)?.kind === 'duplicate';
      close(fd);
      if (duplicate) throw new SystemCallError('close', errno.EINTR);
    };
    const socket = socketRecord(500, [owner(10, 3)]);
    const { kept } = read(access, [socket]);
    expect(kept).toEqual([socket]);
    expect(socket.options).toEqual({ SO_KEEPALIVE: 1, TCP_NODELAY: 0 });
    expect(access.open.size).toBe(0);
  });

  it('detects an fd reused between the scan and the duplicate: unreadable, never another socket’s options', () => {
    // The scan saw socket 500 at fd 3 of pid 10; by the time of pidfd_getfd fd 3 holds 999.
    const access = new FakeFdAccess({ 10: { fds: { 3: { inode: 999 } } } }, { 999: keepaliveNodelay(1, 1) });
    const socket = socketRecord(500, [owner(10, 3)]);
    const { kept, summary } = read(access, [socket]);
    expect(kept).toEqual([socket]);
    expect(socket.options).toBeNull();
    expect(socket.optionsError).toMatch(/fd 3 of pid 10 now holds another file \(inode 999, not 500\)/);
    expect(summary.unreadable.reused).toBe(1);
    expect(summary.read).toBe(0);
    // Not one getsockopt on the stranger, and its duplicate closed.
    expect(access.reads).toEqual([]);
    expect([...access.open.values()].filter((h) => h.kind === 'duplicate')).toEqual([]);
    expect(formatRow(socket, textSettings)).toMatch(/ \[fd reused\]$/);
  });

  it('after a reused fd, reads the right socket from another owner', () => {
    const access = new FakeFdAccess(
      { 10: { fds: { 3: { inode: 999 } } }, 11: { fds: { 7: { inode: 500 } } } },
      { 999: keepaliveNodelay(1, 1), 500: keepaliveNodelay(0, 1) },
    );
    const socket = socketRecord(500, [owner(10, 3), owner(11, 7)]);
    read(access, [socket]);
    expect(socket.options).toEqual({ SO_KEEPALIVE: 0, TCP_NODELAY: 1 });
    expect(socket.optionsError).toBeUndefined();
    expect(access.reads.every((r) => r.startsWith('500 '))).toBe(true);
  });

  it('EPERM from pidfd_open or pidfd_getfd: options null, optionsError says not permitted and what helps', () => {
    const access = new FakeFdAccess(
      { 10: { openError: errno.EPERM, fds: {} }, 11: { fds: { 4: { error: errno.EPERM } } } },
      {},
    );
    const a = socketRecord(500, [owner(10, 3)]);
    const b = socketRecord(501, [owner(11, 4)]);
    const { kept, summary } = read(access, [a, b]);
    expect(kept).toEqual([a, b]);
    for (const [socket, call] of [
      [a, 'pidfd_open'],
      [b, 'pidfd_getfd'],
    ] as const) {
      expect(socket.options).toBeNull();
      expect(socket.optionsError).toMatch(
        new RegExp(
          `^not permitted to inspect pid \\d+ \\(${call}: EPERM\\); run as root or grant CAP_SYS_PTRACE`,
        ),
      );
      expect(formatRow(socket, textSettings)).toMatch(/ \[not permitted\]$/);
    }
    expect(summary.unreadable['not-permitted']).toBe(2);
  });

  it.each([
    ['ESRCH from pidfd_open (the process exited)', { 10: { openError: errno.ESRCH, fds: {} } }],
    ['ESRCH: no such process at all', {}],
    ['EBADF from pidfd_getfd (the fd was closed)', { 10: { fds: { 3: { error: errno.EBADF } } } }],
    ['EBADF: the fd is simply gone', { 10: { fds: {} } }],
  ])('%s on the only owner: the socket is dropped quietly', (_, processes) => {
    const access = new FakeFdAccess(processes as Record<number, FakeProcess>, {});
    const socket = socketRecord(500, [owner(10, 3)]);
    const other = socketRecord(600, []);
    const { kept, summary } = read(access, [socket, other]);
    expect(kept).toEqual([other]);
    expect(summary.unreadable.vanished).toBe(1);
  });

  it('ESRCH and EBADF on every one of several owners: dropped quietly', () => {
    const access = new FakeFdAccess(
      { 10: { openError: errno.ESRCH, fds: {} }, 11: { fds: { 4: { error: errno.EBADF } } } },
      {},
    );
    const { kept } = read(access, [socketRecord(500, [owner(10, 3), owner(11, 4)])]);
    expect(kept).toEqual([]);
  });

  it('uses a second owner when the first fails', () => {
    for (const first of [
      { openError: errno.EPERM, fds: {} },
      { openError: errno.ESRCH, fds: {} },
      { fds: {} },
    ]) {
      const access = new FakeFdAccess(
        { 10: first, 11: { fds: { 5: { inode: 500 } } } },
        { 500: keepaliveNodelay(1, 0) },
      );
      const socket = socketRecord(500, [owner(10, 3), owner(11, 5)]);
      const { summary } = read(access, [socket]);
      expect(socket.options).toEqual({ SO_KEEPALIVE: 1, TCP_NODELAY: 0 });
      expect(socket.optionsError).toBeUndefined();
      expect(summary.read).toBe(1);
      expect(Object.values(summary.unreadable).reduce((x, y) => x + y, 0)).toBe(0);
    }
  });

  it('opens one pidfd per process, holds one duplicate at a time, and closes every pidfd at the end', () => {
    const access = new FakeFdAccess(
      {
        10: { fds: { 3: { inode: 500 }, 4: { inode: 501 }, 5: { inode: 502 } } },
        11: { fds: { 3: { inode: 503 } } },
      },
      {
        500: keepaliveNodelay(1, 1),
        501: keepaliveNodelay(0, 0),
        502: keepaliveNodelay(1, 0),
        503: keepaliveNodelay(0, 1),
      },
    );
    const sockets = [
      socketRecord(500, [owner(10, 3)]),
      socketRecord(501, [owner(10, 4)]),
      socketRecord(503, [owner(11, 3)]),
      socketRecord(502, [owner(10, 5)]),
    ];
    const reader = new OptionReader({ access, only: ONLY });
    for (const s of sockets) reader.read(s);
    expect(access.calls.filter((c) => c.startsWith('pidfd_open'))).toEqual([
      'pidfd_open 10',
      'pidfd_open 11',
    ]);
    expect(access.maxDuplicatesOpen).toBe(1);
    // Before close(): the two pidfds and nothing else.
    expect([...access.open.values()].map((h) => h.kind)).toEqual(['pidfd', 'pidfd']);
    reader.close();
    expect(access.open.size).toBe(0);
    expect(sockets.map((s) => s.options)).toEqual([
      { SO_KEEPALIVE: 1, TCP_NODELAY: 1 },
      { SO_KEEPALIVE: 0, TCP_NODELAY: 0 },
      { SO_KEEPALIVE: 0, TCP_NODELAY: 1 },
      { SO_KEEPALIVE: 1, TCP_NODELAY: 0 },
    ]);
  });

  it('reads more sockets and owners than its job list starts with room for, each its own', () => {
    // 700 sockets, the even ones with a second owner that fails first: the rows and the
    // owners both outgrow FIRST_JOB_ROOM.
    const processes: Record<number, { fds: Record<number, { inode: number }> }> = { 10: { fds: {} } };
    const values: Record<number, ReturnType<typeof keepaliveNodelay>> = {};
    const sockets = Array.from({ length: 700 }, (_, i) => {
      const inode = 1000 + i;
      (processes[10] as { fds: Record<number, { inode: number }> }).fds[3 + i] = { inode };
      values[inode] = keepaliveNodelay(i & 1, (i >> 1) & 1);
      return socketRecord(inode, i % 2 === 0 ? [owner(99, 3), owner(10, 3 + i)] : [owner(10, 3 + i)]);
    });
    const access = new FakeFdAccess(processes, values);
    const reader = new OptionReader({ access, only: ONLY });
    expect(reader.readAll(sockets)).toHaveLength(700);
    reader.close();
    expect(reader.summary.read).toBe(700);
    sockets.forEach((s, i) => {
      expect(s.options).toEqual({ SO_KEEPALIVE: i & 1, TCP_NODELAY: (i >> 1) & 1 });
    });
  });

  it('an option the kernel does not have (ENOPROTOOPT, EINVAL, EOPNOTSUPP) is simply absent', () => {
    const access = new FakeFdAccess(
      { 10: { fds: { 3: { inode: 500 } } } },
      {
        500: {
          [`${SOL_SOCKET}/${SO_KEEPALIVE}`]: 1,
          [`${SOL_TCP}/${TCP_NODELAY}`]: -errno.EOPNOTSUPP,
          [`${SOL_SOCKET}/72`]: -errno.EINVAL, // SO_BUF_LOCK before Linux 5.14
        },
      },
    );
    const socket = socketRecord(500, [owner(10, 3)]);
    read(access, [socket], null);
    // The whole catalogue was asked for; only the one the pretend kernel knows came back.
    expect(access.reads.length).toBe(
      OPTION_CATALOGUE.filter((o) => o.protocols.includes('tcp') && (!o.families || o.families.includes(4)))
        .length,
    );
    expect(socket.options).toEqual({ SO_KEEPALIVE: 1 });
    expect(socket.optionsError).toBeUndefined();
  });

  it('ENOSYS (no pidfd_getfd before Linux 5.6): unsupported, saying so', () => {
    const access = new FakeFdAccess({ 10: { fds: { 3: { error: errno.ENOSYS } } } }, {});
    const socket = socketRecord(500, [owner(10, 3)]);
    const { summary } = read(access, [socket]);
    expect(socket.optionsError).toMatch(/pidfd_getfd is not available: Linux 5\.6 or later is needed/);
    expect(summary.unreadable.unsupported).toBe(1);
  });

  it('a socket with no visible owner or no process at all is marked, without a system call', () => {
    const access = new FakeFdAccess({}, {});
    const unseen = socketRecord(500, []);
    const detached = socketRecord(0, [], 'ESTABLISHED');
    const { kept, summary } = read(access, [unseen, detached]);
    expect(kept).toEqual([unseen, detached]);
    expect(unseen.optionsError).toMatch(/^no visible owner/);
    expect(detached.optionsError).toMatch(/^no process holds it/);
    expect(summary.unreadable['no-owner']).toBe(1);
    expect(summary.unreadable.detached).toBe(1);
    expect(access.calls).toEqual([]);
  });
});

describe('collectSockets with injected system calls over a fake /proc', () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  /** A /proc with net/tcp rows and processes whose fd links point at socket inodes. */
  function fakeProc(
    rows: { port: number; inode: number }[],
    processes: Record<number, Record<number, number>>,
  ) {
    root = mkdtempSync(join(tmpdir(), 'knetstat-proc-'));
    mkdirSync(join(root, 'net'));
    const header =
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const lines = rows.map(
      (r, i) =>
        `   ${i}: 0100007F:${r.port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 ${r.inode} 1 0000000000000000 100 0 0 10 0\n`,
    );
    writeFileSync(join(root, 'net', 'tcp'), header + lines.join(''));
    for (const [pid, fds] of Object.entries(processes)) {
      mkdirSync(join(root, pid, 'fd'), { recursive: true });
      writeFileSync(join(root, pid, 'comm'), `server${pid}\n`);
      for (const [fd, inode] of Object.entries(fds))
        symlinkSync(`socket:[${inode}]`, join(root, pid, 'fd', fd));
    }
    return root;
  }

  it('reports a reused fd as unreadable in the collection and its summary, and drops a vanished socket', () => {
    const procRoot = fakeProc(
      [
        { port: 8080, inode: 500 },
        { port: 8081, inode: 501 },
        { port: 8082, inode: 502 },
      ],
      { 10: { 3: 500, 4: 501, 5: 502 } },
    );
    // Meanwhile: fd 3 was closed and reopened on another socket; fd 5 was closed.
    const access = new FakeFdAccess(
      { 10: { fds: { 3: { inode: 777 }, 4: { inode: 501 } } } },
      { 777: keepaliveNodelay(1, 1), 501: keepaliveNodelay(1, 0) },
    );
    const collection = collectSockets({
      source: 'proc',
      tables: ['tcp'],
      procRoot,
      fdAccess: access,
      options: ONLY,
    });
    expect(collection.sockets.map((s) => s.local.port)).toEqual([8080, 8081]);
    const [reused, fine] = collection.sockets as [SocketRecord, SocketRecord];
    expect(reused.processes).toEqual([{ pid: 10, fd: 3, command: 'server10' }]);
    expect(reused.options).toBeNull();
    expect(reused.optionsError).toMatch(/now holds another file/);
    expect(fine.options).toEqual({ SO_KEEPALIVE: 1, TCP_NODELAY: 0 });
    expect(collection.warnings).toEqual([
      'options unknown for 1 socket: 1 whose fd was reused during the scan',
    ]);
    expect(access.open.size).toBe(0);
  });

  it('hands every socket a list of owners of its own, an empty one where none was found', () => {
    const procRoot = fakeProc(
      [
        { port: 8080, inode: 500 },
        { port: 8081, inode: 501 },
        { port: 8082, inode: 502 },
      ],
      { 10: { 3: 500 } },
    );
    const access = new FakeFdAccess({ 10: { fds: { 3: { inode: 500 } } } }, { 500: keepaliveNodelay(1, 1) });
    for (const owners of [true, false]) {
      const collection = collectSockets({
        source: 'proc',
        tables: ['tcp'],
        procRoot,
        fdAccess: access,
        owners,
        options: owners ? ONLY : false,
      });
      const lists = collection.sockets.map((s) => s.processes);
      expect(lists.map((l) => l.length)).toEqual(owners ? [1, 0, 0] : [0, 0, 0]);
      expect(new Set(lists).size).toBe(3);
      for (const list of lists) {
        expect(Object.isFrozen(list)).toBe(false);
        list.push({ pid: 1, fd: 1, command: 'x' }); // the caller's to change
      }
    }
  });

  it('duplicates nothing where cgroup v1 net_cls/net_prio groups would re-tag a duplicated socket', () => {
    const procRoot = fakeProc([{ port: 8080, inode: 500 }], { 10: { 3: 500 } });
    writeFileSync(
      join(procRoot, 'cgroups'),
      '#subsys_name\thierarchy\tnum_cgroups\tenabled\nnet_cls\t3\t1\t1\nnet_prio\t4\t5\t1\n',
    );
    const access = new FakeFdAccess({ 10: { fds: { 3: { inode: 500 } } } }, { 500: keepaliveNodelay(1, 1) });
    const collection = collectSockets({
      source: 'proc',
      tables: ['tcp'],
      procRoot,
      fdAccess: access,
      options: ONLY,
    });
    expect(access.calls).toEqual([]);
    const [socket] = collection.sockets as [SocketRecord];
    expect(socket.options).toBeNull();
    expect(socket.optionsError).toMatch(/^not read: this host has cgroup v1 net_prio groups/);
    expect(collection.warnings).toEqual([
      'options unknown for 1 socket: 1 not read to keep them unchanged (cgroup v1 net_cls/net_prio in use)',
    ]);
  });

  it('with a cookie from the dump, proves identity by SO_COOKIE instead of fstat', () => {
    const access = new FakeFdAccess({ 10: { fds: { 3: { inode: 500 } } } }, { 500: keepaliveNodelay(1, 1) });
    access.inodeOf = () => {
      throw new Error('fstat is not needed with a cookie');
    };
    const socket = { ...socketRecord(500, [owner(10, 3)]), cookie: '500000' };
    const { kept } = read(access, [socket]);
    expect(kept).toEqual([socket]);
    expect(socket.options).toEqual({ SO_KEEPALIVE: 1, TCP_NODELAY: 1 });
    expect(access.reads[0]).toBe(`500 ${SOL_SOCKET}/${SO_COOKIE}`);
    expect(access.open.size).toBe(0);
  });

  it('a cookie that differs means another socket now: not read, never its options', () => {
    const access = new FakeFdAccess({ 10: { fds: { 3: { inode: 999 } } } }, { 999: keepaliveNodelay(1, 1) });
    const socket = { ...socketRecord(500, [owner(10, 3)]), cookie: '500000' };
    const { summary } = read(access, [socket]);
    expect(socket.options).toBeNull();
    expect(socket.optionsError).toBe(
      'fd 3 of pid 10 now holds another file (cookie 999000, not cookie 500000): not read',
    );
    expect(summary.unreadable.reused).toBe(1);
    expect(access.open.size).toBe(0);
  });

  describe('with an io_uring', () => {
    function ringed(processes: Record<number, FakeProcess>, options: Record<number, Record<string, number>>) {
      const access = new FakeFdAccess(processes, options);
      const ring = new FakeRing(access);
      access.openRing = () => ring;
      return { access, ring };
    }

    it('batches the cookie, SOL_SOCKET calls and the close; other levels are plain calls', () => {
      const { access, ring } = ringed(
        { 10: { fds: { 3: { inode: 500 } } } },
        { 500: keepaliveNodelay(1, 0) },
      );
      const socket = { ...socketRecord(500, [owner(10, 3)]), cookie: '500000' };
      read(access, [socket]);
      expect(socket.options).toEqual({ SO_KEEPALIVE: 1, TCP_NODELAY: 0 });
      expect(ring.log).toEqual([
        `getsockopt ${SOL_SOCKET}/${SO_COOKIE}`,
        `getsockopt ${SOL_SOCKET}/${SO_KEEPALIVE}`,
        'close',
      ]);
      expect(ring.submits).toBe(1);
      // TCP_NODELAY was read at once, before the batch ran.
      expect(access.reads).toEqual([
        `500 ${SOL_TCP}/${TCP_NODELAY}`,
        `500 ${SOL_SOCKET}/${SO_COOKIE}`,
        `500 ${SOL_SOCKET}/${SO_KEEPALIVE}`,
      ]);
      expect(ring.disposed).toBe(true);
      expect(access.open.size).toBe(0);
    });

    it('hands the ring only catalogue options and SO_COOKIE, with the whole catalogue asked for', () => {
      const { access, ring } = ringed({ 10: { fds: { 3: { inode: 500 }, 4: { inode: 501 } } } }, {});
      const tcp = { ...socketRecord(500, [owner(10, 3)]), cookie: '500000' };
      const udp = {
        ...socketRecord(501, [owner(10, 4)], 'UNCONN'),
        protocol: 'udp' as const,
        cookie: '501000',
      };
      read(access, [tcp, udp], null);
      const allowed = new Set([
        `getsockopt ${SOL_SOCKET}/${SO_COOKIE}`,
        ...OPTION_CATALOGUE.filter((o) => o.level === SOL_SOCKET).map(
          (o) => `getsockopt ${o.level}/${o.optname}`,
        ),
        'close',
      ]);
      expect(ring.log.length).toBeGreaterThan(20);
      expect(ring.log.filter((call) => !allowed.has(call))).toEqual([]);
      expect(ring.log.filter((call) => call === 'close')).toHaveLength(2);
    });

    it('a batch that never reached the kernel: the duplicate is closed here, once, and plain calls take over', () => {
      const { access, ring } = ringed(
        { 10: { fds: { 3: { inode: 500 }, 4: { inode: 501 } } } },
        { 500: keepaliveNodelay(1, 1), 501: keepaliveNodelay(1, 0) },
      );
      ring.failNextSubmit = 'before';
      const first = { ...socketRecord(500, [owner(10, 3)]), cookie: '500000' };
      const second = { ...socketRecord(501, [owner(10, 4)]), cookie: '501000' };
      const { kept, summary } = read(access, [first, second]);
      expect(kept).toEqual([first, second]);
      expect(first.options).toBeNull();
      expect(first.optionsError).toBe('io_uring_enter failed: ENOMEM');
      expect(summary.unreadable.failed).toBe(1);
      expect(second.options).toEqual({ SO_KEEPALIVE: 1, TCP_NODELAY: 0 });
      expect(ring.submits).toBe(1);
      expect(ring.disposed).toBe(true);
      expect(access.open.size).toBe(0);
    });

    it('a batch that ran and then reported a failure: its close is not made twice', () => {
      const { access, ring } = ringed(
        { 10: { fds: { 3: { inode: 500 } } } },
        { 500: keepaliveNodelay(1, 1) },
      );
      ring.failNextSubmit = 'after';
      const socket = { ...socketRecord(500, [owner(10, 3)]), cookie: '500000' };
      // The fake's close throws on an fd that is not open: a second close would end the test.
      read(access, [socket]);
      expect(socket.options).toBeNull();
      expect(socket.optionsError).toMatch(/^io_uring_enter failed: /);
      expect(access.open.size).toBe(0);
    });
  });
});

describe('OptionReader with the BPF pass', () => {
  /**
   * A pass that saw socket 500 (the fake's cookie 500000) and gives the values `gives`;
   * with `alike`, also the sockets of those cookies, whose records hold the same values.
   * `settled` counts the values worked out of records.
   */
  function pass(
    gives: Record<string, number>,
    alike: string[] = [],
    settled = { count: 0 },
    contentClass: (record: number) => number = () => 7,
  ): BpfPass {
    const records = ['500000', ...alike];
    return {
      recordOf: (socket: SocketRecord) => records.indexOf(socket.cookie ?? ''),
      settlers: (specs: ReadonlyArray<{ name: string }>) =>
        specs.map((spec) =>
          spec.name in gives
            ? () => {
                settled.count++;
                return gives[spec.name];
              }
            : null,
        ),
      contentClass,
    } as unknown as BpfPass;
  }
  const seen = () => ({ ...socketRecord(500, [owner(10, 3)]), cookie: '500000' });

  it('settles a socket it gives every option of without duplicating it', () => {
    const access = new FakeFdAccess({ 10: { fds: { 3: { inode: 500 } } } }, { 500: keepaliveNodelay(1, 1) });
    const socket = seen();
    const reader = new OptionReader({ access, only: ONLY, bpf: pass({ SO_KEEPALIVE: 0, TCP_NODELAY: 1 }) });
    expect(reader.read(socket)).toBe(true);
    reader.close();
    expect(socket.options).toEqual({ SO_KEEPALIVE: 0, TCP_NODELAY: 1 });
    expect(reader.summary.settledWithoutDuplicate).toBe(1);
    expect(access.calls.filter((c) => c.startsWith('pidfd'))).toEqual([]);
  });

  it('works out again the options of a socket whose record holds other values, with the same facts', () => {
    const access = new FakeFdAccess({ 10: { fds: { 3: { inode: 500 }, 4: { inode: 501 } } } }, {});
    const settled = { count: 0 };
    // Each record a class of its own: other values.
    const reader = new OptionReader({
      access,
      only: ONLY,
      bpf: pass({ SO_KEEPALIVE: 0, TCP_NODELAY: 1 }, ['501000'], settled, (record) => record),
    });
    const facts = { boundInterface: 0 };
    const first = { ...seen(), optionFacts: facts };
    const second = { ...socketRecord(501, [owner(10, 4)]), cookie: '501000', optionFacts: facts };
    expect(reader.readAll([first, second])).toHaveLength(2);
    reader.close();
    // Both worked out (two options each), not the second taken from the first.
    expect(settled.count).toBe(4);
    expect(reader.summary.settledWithoutDuplicate).toBe(2);
  });

  it('gives sockets settled alike (the same record values and dump facts) one options object', () => {
    const access = new FakeFdAccess(
      { 10: { fds: { 3: { inode: 500 }, 4: { inode: 501 }, 5: { inode: 502 } } } },
      {},
    );
    const settled = { count: 0 };
    const reader = new OptionReader({
      access,
      only: ONLY,
      bpf: pass({ SO_KEEPALIVE: 0, TCP_NODELAY: 1 }, ['501000', '502000'], settled),
    });
    const facts = { boundInterface: 0 };
    const first = { ...seen(), optionFacts: facts };
    const twin = { ...socketRecord(501, [owner(10, 4)]), cookie: '501000', optionFacts: facts };
    // Other facts (another object): its values are worked out again.
    const other = {
      ...socketRecord(502, [owner(10, 5)]),
      cookie: '502000',
      optionFacts: { boundInterface: 0 },
    };
    expect(reader.readAll([first, twin, other])).toHaveLength(3);
    reader.close();
    expect(twin.options).toBe(first.options);
    expect(first.options).toEqual({ SO_KEEPALIVE: 0, TCP_NODELAY: 1 });
    // Two options worked out for the first socket and for the third, none for the twin;
    // the third has the same values, hence the same object from the options table.
    expect(settled.count).toBe(4);
    expect(other.options).toBe(first.options);
    expect(reader.summary.settledWithoutDuplicate).toBe(3);
  });

  it('duplicates a socket for what the pass left, and one the pass did not see', () => {
    const access = new FakeFdAccess(
      { 10: { fds: { 3: { inode: 500 }, 4: { inode: 501 } } } },
      { 500: keepaliveNodelay(1, 1), 501: keepaliveNodelay(1, 0) },
    );
    const partly = seen();
    const unseen = { ...socketRecord(501, [owner(10, 4)]), cookie: '501000' };
    const reader = new OptionReader({ access, only: ONLY, bpf: pass({ TCP_NODELAY: 1 }) });
    expect(reader.read(partly)).toBe(true);
    expect(reader.read(unseen)).toBe(true);
    reader.close();
    // SO_KEEPALIVE read with getsockopt (1), TCP_NODELAY from the pass (1); not read again.
    expect(partly.options).toEqual({ SO_KEEPALIVE: 1, TCP_NODELAY: 1 });
    expect(unseen.options).toEqual({ SO_KEEPALIVE: 1, TCP_NODELAY: 0 });
    expect(access.reads.filter((r) => !r.endsWith(`/${SO_COOKIE}`))).toEqual([
      `500 ${SOL_SOCKET}/${SO_KEEPALIVE}`,
      `501 ${SOL_SOCKET}/${SO_KEEPALIVE}`,
      `501 ${SOL_TCP}/${TCP_NODELAY}`,
    ]);
    expect(reader.summary.settledWithoutDuplicate).toBe(0);
  });

  it('settles nothing that knetstat could not have duplicated: no owner, or duplication refused', () => {
    const access = new FakeFdAccess({}, {});
    const gives = pass({ SO_KEEPALIVE: 0, TCP_NODELAY: 1 });
    const ownerless = { ...socketRecord(500, []), cookie: '500000' };
    const plain = new OptionReader({ access, only: ONLY, bpf: gives });
    plain.read(ownerless);
    expect(ownerless.options).toBeNull();
    expect(plain.summary.unreadable['no-owner']).toBe(1);
    const refusing = new OptionReader({
      access,
      only: ONLY,
      bpf: gives,
      refuseDuplication: 'not read: cgroup v1',
    });
    const socket = seen();
    refusing.read(socket);
    expect(socket.options).toBeNull();
    expect(socket.optionsError).toBe('not read: cgroup v1');
    expect(access.calls).toEqual([]);
  });
});
