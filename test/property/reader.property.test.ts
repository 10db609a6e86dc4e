/**
 * The option reader against processes that exit, fds that are closed or reused, and
 * permission errors, through a fake FdAccess: it never throws for any of them, holds at
 * most one duplicate at a time and closes each one, reads options only from a duplicate
 * whose inode is the socket's, closes every pidfd at the end, and drops a socket quietly
 * only when it really vanished (ESRCH, EBADF).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SocketRecord } from '../../src/model.js';
import { type FdAccess, OptionReader } from '../../src/options/reader.js';
import { SystemCallError } from '../../src/sys/errors.js';

const ESRCH = 3;
const EBADF = 9;
const EPERM = 1;
const EACCES = 13;
const EMFILE = 24;
const ENOSYS = 38;

interface World {
  /** pidfd_open's answer per pid: ok, or an errno. */
  processes: Map<number, number | 'ok'>;
  /** pidfd_getfd's answer per "pid/fd": ok with the inode the fd now holds, or an errno. */
  fds: Map<string, number | { inode: number }>;
  /** getsockopt answers, used in turn: a length written, or a negated errno. */
  getsockoptResults: number[];
}

type FdKind = { kind: 'pidfd'; pid: number } | { kind: 'duplicate'; inode: number };

class FakeAccess implements FdAccess {
  readonly open = new Map<number, FdKind>();
  private next = 100;
  private answer = 0;
  readonly problems: string[] = [];
  /** The inode of each duplicate options were read from. */
  readFrom: number[] = [];

  constructor(private readonly world: World) {}

  pidfdOpen(pid: number): number {
    const result = this.world.processes.get(pid) ?? ESRCH;
    if (result !== 'ok') throw new SystemCallError('pidfd_open', result);
    const fd = this.next++;
    this.open.set(fd, { kind: 'pidfd', pid });
    return fd;
  }

  pidfdGetfd(pidfd: number, fd: number): number {
    const handle = this.open.get(pidfd);
    if (handle?.kind !== 'pidfd') {
      this.problems.push(`pidfd_getfd on ${pidfd}, which is not an open pidfd`);
      throw new SystemCallError('pidfd_getfd', EBADF);
    }
    if ([...this.open.values()].some((k) => k.kind === 'duplicate')) {
      this.problems.push('a second duplicate while one is still open');
    }
    const result = this.world.fds.get(`${handle.pid}/${fd}`) ?? EBADF;
    if (typeof result === 'number') throw new SystemCallError('pidfd_getfd', result);
    const duplicate = this.next++;
    this.open.set(duplicate, { kind: 'duplicate', inode: result.inode });
    return duplicate;
  }

  inodeOf(fd: number): number {
    const kind = this.open.get(fd);
    if (kind?.kind !== 'duplicate') {
      this.problems.push(`fstat on ${fd}, which is not an open duplicate`);
      return -1;
    }
    return kind.inode;
  }

  getsockopt(fd: number, _level: number, _name: number, value: Uint8Array, length: Uint32Array): number {
    const kind = this.open.get(fd);
    if (kind?.kind !== 'duplicate') {
      this.problems.push(`getsockopt on ${fd}, which is not an open duplicate`);
      return -EBADF;
    }
    if (this.readFrom.at(-1) !== fd) this.readFrom.push(fd, kind.inode);
    const answer = this.world.getsockoptResults[this.answer++ % this.world.getsockoptResults.length] ?? 4;
    if (answer < 0) return answer;
    const written = Math.min(answer, value.byteLength, length[0] ?? 0);
    value.fill(7, 0, written);
    return written;
  }

  close(fd: number): void {
    if (!this.open.delete(fd)) this.problems.push(`close of ${fd}, which is not open`);
  }
}

function socket(inode: number, owners: { pid: number; fd: number }[], minisocket = false): SocketRecord {
  return {
    protocol: 'tcp',
    family: 4,
    state: minisocket ? 'TIME_WAIT' : 'ESTABLISHED',
    local: { address: '127.0.0.1', port: 1 },
    remote: { address: '127.0.0.1', port: 2 },
    recvQ: 0,
    sendQ: 0,
    inode,
    cookie: null,
    uid: 0,
    minisocket,
    diag: '',
    tcpInfo: null,
    memInfo: null,
    processes: owners.map((o) => ({ ...o, command: 'x' })),
    options: null,
  };
}

const pid = fc.integer({ min: 1, max: 6 });
const fdNumber = fc.integer({ min: 0, max: 5 });
const openResult = fc.oneof(
  { weight: 4, arbitrary: fc.constant('ok' as const) },
  fc.constantFrom(ESRCH, EPERM, EACCES, ENOSYS, EMFILE),
);
const inode = fc.integer({ min: 1000, max: 1010 });
const getfdResult = fc.oneof(
  { weight: 4, arbitrary: inode.map((i) => ({ inode: i })) },
  fc.constantFrom(ESRCH, EBADF, EPERM, EMFILE),
);

const world: fc.Arbitrary<World> = fc.record({
  processes: fc.array(fc.tuple(pid, openResult), { maxLength: 6 }).map((pairs) => new Map(pairs)),
  fds: fc
    .array(fc.tuple(pid, fdNumber, getfdResult), { maxLength: 20 })
    .map((triples) => new Map(triples.map(([p, f, r]) => [`${p}/${f}`, r]))),
  getsockoptResults: fc.array(fc.oneof(fc.integer({ min: 0, max: 64 }), fc.constantFrom(-92, -22, -95)), {
    minLength: 1,
    maxLength: 10,
  }),
});

const sockets = fc.array(
  fc.record({
    inode,
    owners: fc.array(fc.record({ pid, fd: fdNumber }), { maxLength: 3 }),
    minisocket: fc.boolean(),
  }),
  { minLength: 1, maxLength: 8 },
);

/** Whether an owner's fd would be read (the reader may stop at the first that works). */
function ownerOutcome(w: World, s: { inode: number }, o: { pid: number; fd: number }) {
  const opened = w.processes.get(o.pid) ?? ESRCH;
  if (opened !== 'ok') return opened === ESRCH ? 'vanished' : 'error';
  const got = w.fds.get(`${o.pid}/${o.fd}`) ?? EBADF;
  if (typeof got === 'number') return got === ESRCH || got === EBADF ? 'vanished' : 'error';
  return got.inode === s.inode ? 'readable' : 'reused';
}

describe('OptionReader', () => {
  it('never throws, never leaks or doubles a duplicate, and reads only the socket it was asked for', () => {
    fc.assert(
      fc.property(world, sockets, (w, specs) => {
        const access = new FakeAccess(w);
        const reader = new OptionReader({ access });
        for (const spec of specs) {
          const record = socket(spec.inode, spec.owners, spec.minisocket);
          access.readFrom = [];
          const kept = reader.read(record);
          expect([...access.open.values()].filter((k) => k.kind === 'duplicate')).toEqual([]);
          // Options come only from a duplicate whose inode is this socket's.
          for (let i = 1; i < access.readFrom.length; i += 2) expect(access.readFrom[i]).toBe(spec.inode);

          if (spec.minisocket) {
            expect(kept).toBe(true);
            expect(record.options).toBeNull();
            continue;
          }
          const outcomes = spec.owners.map((o) => ownerOutcome(w, spec, o));
          if (outcomes.includes('readable')) {
            expect(kept).toBe(true);
            expect(record.options).not.toBeNull();
            expect(record.optionsError).toBeUndefined();
          } else {
            expect(record.options).toBeNull();
            expect(typeof record.optionsError === 'string' && record.optionsError.length > 0).toBe(true);
            // Dropped quietly only when every owner showed it gone; no owner at all is reported.
            const vanished = outcomes.length > 0 && outcomes.every((o) => o === 'vanished');
            expect(kept).toBe(!vanished);
          }
        }
        reader.close();
        expect(access.problems).toEqual([]);
        expect([...access.open.keys()]).toEqual([]);
      }),
      { numRuns: 1000 },
    );
  });
});
