/**
 * libc through koffi. This is the only module that imports koffi: every foreign
 * function is declared once, here, at load, with a fixed arity, and every call
 * reads errno straight after it returns so nothing in between can clobber it.
 * Pointers are Buffers or typed arrays owned by the caller (preallocated and
 * reused in hot loops), never JS arrays.
 */
import koffi from 'koffi';
import { SystemCallError } from './errors.js';

const libc = koffi.load(null);

const SYS_pidfd_open = 434;
const SYS_pidfd_getfd = 438;

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, void *addr, uint32_t addrlen)'),
  sendto: libc.func('long sendto(int fd, void *buf, size_t len, int flags, void *addr, uint32_t addrlen)'),
  recv: libc.func('long recv(int fd, void *buf, size_t len, int flags)'),
  close: libc.func('int close(int fd)'),
  // open(2) is variadic (the mode); without O_CREAT the two-argument form is the call.
  open: libc.func('int open(const char *path, int flags)'),
  readlinkat: libc.func('long readlinkat(int dirfd, const char *path, void *buffer, size_t size)'),
  fstat: libc.func('int fstat(int fd, void *statbuf)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, void *value, void *length)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t length)'),
  // syscall(2) is variadic in C; a fixed-arity prototype is what koffi calls fastest and is
  // ABI-compatible on the 64-bit targets we support (arguments in registers).
  syscall3: libc.func('long syscall(long number, long a, long b, long c)'),
  // io_uring_setup(entries, params) and io_uring_enter(fd, to_submit, min_complete, flags,
  // sig, sigsz): the same variadic syscall(2), declared with the pointer where it goes.
  ioUringSetup: libc.func('long syscall(long number, long entries, void *params)'),
  ioUringEnter: libc.func('long syscall(long number, long fd, long a, long b, long c, void *d, long e)'),
  mmap: libc.func('void *mmap(void *address, size_t length, int prot, int flags, int fd, int64_t offset)'),
  munmap: libc.func('int munmap(void *address, size_t length)'),
  pipe2: libc.func('int pipe2(void *fds, int flags)'),
  poll: libc.func('int poll(void *fds, unsigned long count, int timeout)'),
  // fcntl(2) is variadic; every command used here takes an int argument (see syscall3).
  fcntl: libc.func('int fcntl(int fd, int command, int argument)'),
  // bpf(2) has no glibc wrapper: syscall(2), declared with the attribute union's pointer.
  bpf: libc.func('long syscall(long number, long command, void *attr, long size)'),
  // Linux's sigprocmask sets the calling thread's mask, as pthread_sigmask does, and is
  // in libc itself on every glibc (pthread_sigmask moved there only in 2.34).
  sigprocmask: libc.func('int sigprocmask(int how, void *set, void *old)'),
  sigfillset: libc.func('int sigfillset(void *set)'),
  sigdelset: libc.func('int sigdelset(void *set, int signal)'),
};

function fail(call: string): never {
  throw new SystemCallError(call, koffi.errno());
}

export const AF_UNSPEC = 0;
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_SOCK_DIAG = 4;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SOL_NETLINK = 270;

export function socket(domain: number, type: number, protocol: number): number {
  const fd = c.socket(domain, type, protocol) as number;
  if (fd < 0) fail('socket');
  return fd;
}

export function bind(fd: number, address: Uint8Array): void {
  if ((c.bind(fd, address, address.byteLength) as number) < 0) fail('bind');
}

/** sendto(2) to an explicit address (netlink wants the kernel's sockaddr_nl). */
export function sendTo(fd: number, data: Uint8Array, address: Uint8Array): number {
  const sent = Number(c.sendto(fd, data, data.byteLength, 0, address, address.byteLength));
  if (sent < 0) fail('sendto');
  return sent;
}

export const MSG_TRUNC = 0x20;

/** recv(2) into `buffer`; returns the byte count (the full datagram length with MSG_TRUNC). */
export function recv(fd: number, buffer: Uint8Array, flags = 0): number {
  const received = Number(c.recv(fd, buffer, buffer.byteLength, flags));
  if (received < 0) fail('recv');
  return received;
}

export function close(fd: number): void {
  if ((c.close(fd) as number) < 0) fail('close');
}

export const O_RDONLY = 0;
// O_CLOEXEC is the same on every Linux architecture we run on; O_DIRECTORY is not (arm64
// differs), so it is left out: readlinkat on something that is not a directory fails anyway.
export const O_CLOEXEC = 0o2000000;

/**
 * pipe2(2) with O_CLOEXEC: [read end, write end], blocking. The helper process's pipes
 * are made here rather than by child_process so that they stay plain fds this process
 * reads and writes synchronously, outside libuv.
 */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  if ((c.pipe2(fds, O_CLOEXEC) as number) < 0) fail('pipe2');
  return [fds[0] as number, fds[1] as number];
}

const F_GETFL = 3;
const F_SETFL = 4;
const F_DUPFD_CLOEXEC = 1030;

/** fcntl(F_DUPFD_CLOEXEC): another fd for the same open file, closed on exec. */
export function duplicateFd(fd: number): number {
  const copy = c.fcntl(fd, F_DUPFD_CLOEXEC, 0) as number;
  if (copy < 0) fail('fcntl');
  return copy;
}
const O_NONBLOCK = 0o4000;
const F_SETPIPE_SZ = 1031;

/** Makes reads and writes on `fd` fail with EAGAIN instead of waiting (its open file description only). */
export function setNonBlocking(fd: number): void {
  const flags = c.fcntl(fd, F_GETFL, 0) as number;
  if (flags < 0) fail('fcntl');
  if ((c.fcntl(fd, F_SETFL, flags | O_NONBLOCK) as number) < 0) fail('fcntl');
}

/**
 * Asks for a pipe buffer of `bytes` (F_SETPIPE_SZ): the size the kernel gave, or the
 * negated errno (EPERM above /proc/sys/fs/pipe-max-size for a process without
 * CAP_SYS_RESOURCE), which leaves the pipe as it was.
 */
export function setPipeSize(fd: number, bytes: number): number {
  const size = c.fcntl(fd, F_SETPIPE_SZ, bytes) as number;
  return size < 0 ? -koffi.errno() : size;
}

export const POLLIN = 0x1;
export const POLLOUT = 0x4;
// struct pollfd: int fd, short events, short revents.
const pollFd = new Int32Array(2);
const pollEvents = new Int16Array(pollFd.buffer);

/**
 * poll(2) on one fd for up to `timeoutMs` (-1: no limit): its revents (POLLHUP and
 * POLLERR included, whatever was asked), 0 when the time ran out, or the negated errno
 * (EINTR when a signal came first).
 */
export function pollOne(fd: number, events: number, timeoutMs: number): number {
  pollFd[0] = fd;
  pollEvents[2] = events;
  pollEvents[3] = 0;
  const ready = c.poll(pollFd, 1, timeoutMs) as number;
  if (ready < 0) return -koffi.errno();
  return ready === 0 ? 0 : (pollEvents[3] as number);
}

/** open(2) a directory for the *at calls (read-only, close-on-exec). */
export function openDirectory(path: string): number {
  const fd = c.open(path, O_RDONLY | O_CLOEXEC) as number;
  if (fd < 0) fail('open');
  return fd;
}

/**
 * readlinkat(2) into `target`: the link's length in bytes (not NUL-terminated, cut at
 * the buffer's size), or the negated errno, so that a scan over thousands of fds can
 * skip a vanished one without an exception. `name` may be the NUL-terminated bytes of
 * the name, as getdents64 lists them, which spares a JS string per call.
 */
export function readlinkAt(directoryFd: number, name: string | Uint8Array, target: Uint8Array): number {
  const length = Number(c.readlinkat(directoryFd, name, target, target.byteLength));
  return length < 0 ? -koffi.errno() : length;
}

// struct stat: st_dev (8 bytes) then st_ino (8 bytes) on every 64-bit Linux ABI.
const statBuffer = new BigUint64Array(32);

/** The inode number of what `fd` refers to (for a socket: the inode of `socket:[N]`). */
export function fstatInode(fd: number): number {
  if ((c.fstat(fd, statBuffer) as number) < 0) fail('fstat');
  return Number(statBuffer[1]);
}

let socketDevice: bigint | undefined;

/** The device number of sockfs, where every socket's inode lives: learned from a socket of our own. */
function sockfsDevice(): bigint {
  if (socketDevice === undefined) {
    const probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    try {
      if ((c.fstat(probe, statBuffer) as number) < 0) fail('fstat');
      socketDevice = statBuffer[0] as bigint;
    } finally {
      close(probe);
    }
  }
  return socketDevice;
}

/**
 * The socket inode `fd` refers to, or 0 when it is not a socket at all: inode numbers are
 * unique only within one filesystem, so a file elsewhere could carry a socket's number.
 */
export function fstatSocketInode(fd: number): number {
  const device = sockfsDevice();
  if ((c.fstat(fd, statBuffer) as number) < 0) fail('fstat');
  return statBuffer[0] === device ? Number(statBuffer[1]) : 0;
}

/**
 * getsockopt(2) into `value`; `length` is a one-element Uint32Array the caller reuses.
 * Returns the length the kernel wrote, or the negated errno when the call failed, so
 * that the hot loop can treat "option unknown to this kernel" without an exception.
 */
export function getsockoptRaw(
  fd: number,
  level: number,
  name: number,
  value: Uint8Array,
  length: Uint32Array,
): number {
  length[0] = value.byteLength;
  const result = c.getsockopt(fd, level, name, value, length) as number;
  if (result < 0) return -koffi.errno();
  return length[0] ?? 0;
}

export function setsockopt(fd: number, level: number, name: number, value: Uint8Array): void {
  if ((c.setsockopt(fd, level, name, value, value.byteLength) as number) < 0) fail('setsockopt');
}

/** pidfd_open(2): a file descriptor that refers to process `pid` (Linux 5.3). */
export function pidfdOpen(pid: number): number {
  const fd = Number(c.syscall3(SYS_pidfd_open, pid, 0, 0));
  if (fd < 0) fail('pidfd_open');
  return fd;
}

/** pidfd_getfd(2): a duplicate of the target's `targetFd` in this process (Linux 5.6). */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  const fd = Number(c.syscall3(SYS_pidfd_getfd, pidfd, targetFd, 0));
  if (fd < 0) fail('pidfd_getfd');
  return fd;
}

const SYS_io_uring_setup = 425;
const SYS_io_uring_enter = 426;

/** io_uring_setup(2): a ring of `entries` submission slots; the kernel fills `params` (120 bytes). */
export function ioUringSetup(entries: number, params: Uint8Array): number {
  const fd = Number(c.ioUringSetup(SYS_io_uring_setup, entries, params));
  if (fd < 0) fail('io_uring_setup');
  return fd;
}

/** io_uring_enter(2) without a signal mask: how many entries were submitted, or the negated errno. */
export function ioUringEnter(fd: number, toSubmit: number, minComplete: number, flags: number): number {
  const result = Number(c.ioUringEnter(SYS_io_uring_enter, fd, toSubmit, minComplete, flags, null, 0));
  return result < 0 ? -koffi.errno() : result;
}

/** Memory this process mapped: its address (for the kernel) and a view of it (for us). */
export interface MappedMemory {
  readonly address: bigint;
  readonly bytes: ArrayBuffer;
  readonly length: number;
  /** koffi's pointer, for munmap. */
  readonly pointer: unknown;
}

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_PRIVATE = 2;
const MAP_ANONYMOUS = 0x20;
const MAP_POPULATE = 0x8000;

function mapped(pointer: unknown, length: number): MappedMemory {
  // mmap returns MAP_FAILED, (void *)-1, on failure.
  if (pointer === null) fail('mmap');
  const address = koffi.address(pointer);
  if (address === 0xffffffffffffffffn) fail('mmap');
  return { address, bytes: koffi.view(pointer, length), length, pointer };
}

/** mmap(2) a region of `fd` (an io_uring's rings) shared with the kernel, read-write. */
export function mapShared(fd: number, length: number, offset: number): MappedMemory {
  const pointer = c.mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
  return mapped(pointer, length);
}

/** mmap(2) private anonymous memory: buffers whose address goes to the kernel in a ring entry. */
export function mapAnonymous(length: number): MappedMemory {
  const pointer = c.mmap(null, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return mapped(pointer, length);
}

/**
 * mmap(2) all `length` bytes of file `fd` private and read-only (the kernel's BTF, which
 * it maps from its own pages); throws where the file cannot be mapped. A write through
 * the view would fault: callers only read.
 */
export function mapReadOnly(fd: number, length: number): MappedMemory {
  const pointer = c.mmap(null, length, PROT_READ, MAP_PRIVATE, fd, 0);
  return mapped(pointer, length);
}

export function unmap(memory: MappedMemory): void {
  if ((c.munmap(memory.pointer, memory.length) as number) < 0) fail('munmap');
}

// getdents64 has no glibc wrapper before 2.30 (Node 20 runs on 2.28), so it goes through
// syscall(2), declared with a pointer argument; its number is 217 on x86_64 and 61 in the
// generic table arm64 uses.
const SYS_getdents64 = process.arch === 'x64' ? 217 : 61;
const getdents64Call = libc.func('long syscall(long number, long fd, void *buffer, size_t size)');

/** Offsets in a struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name. */
export const DIRENT64_RECLEN_OFFSET = 16;
export const DIRENT64_NAME_OFFSET = 19;

/**
 * getdents64(2): fills `buffer` with the next struct linux_dirent64 records of the open
 * directory `fd` (each d_name NUL-terminated, little-endian d_reclen on our targets).
 * Returns the byte count, 0 at the end, or the negated errno. Unlike readdirSync it makes
 * no JS string per entry and does not sort.
 */
export function getdents64(fd: number, buffer: Uint8Array): number {
  const length = Number(getdents64Call(SYS_getdents64, fd, buffer, buffer.byteLength));
  return length < 0 ? -koffi.errno() : length;
}

const SYS_bpf = process.arch === 'x64' ? 321 : 280;

/**
 * bpf(2) with `command` and its `union bpf_attr` (the bytes a command uses, zero beyond):
 * the result (a new fd for the commands used here), or the negated errno.
 */
export function bpf(command: number, attr: Uint8Array): number {
  const result = Number(c.bpf(SYS_bpf, command, attr, attr.byteLength));
  return result < 0 ? -koffi.errno() : result;
}

const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
const SIGILL = 4;
const SIGTRAP = 5;
const SIGBUS = 7;
const SIGFPE = 8;
const SIGSEGV = 11;
const SIGSYS = 31;
/** A sigset_t: 128 bytes in glibc and musl, of which the kernel reads the first 8. */
const SIGSET_SIZE = 128;

/**
 * Every signal the call may hold back: the C library's full set (which leaves out its
 * own internal signals), less those a fault raises in this very thread, which the
 * kernel would otherwise deliver with their default action, past Node's handlers.
 * Null where the set cannot be made.
 */
const HELD_SIGNALS: Uint8Array | null = (() => {
  const set = new Uint8Array(SIGSET_SIZE);
  if ((c.sigfillset(set) as number) !== 0) return null;
  for (const signal of [SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGSYS])
    if ((c.sigdelset(set, signal) as number) !== 0) return null;
  return set;
})();

/**
 * `call` with this thread's signals held back, then its mask as it was: a signal that
 * arrives meanwhile waits until then (one sent to the whole process, such as Ctrl-C's,
 * may be taken by another thread of Node's at once). For a system call that gives up
 * when a signal is pending (the BPF verifier answers EAGAIN, and a profiler's SIGPROF
 * every millisecond can make every retry fail). Where the mask cannot be set, `call`
 * runs as it is. Calls may nest: each keeps the mask it replaced.
 */
export function withSignalsBlocked<T>(call: () => T): T {
  const previous = new Uint8Array(SIGSET_SIZE);
  if (HELD_SIGNALS === null || (c.sigprocmask(SIG_BLOCK, HELD_SIGNALS, previous) as number) !== 0)
    return call();
  try {
    return call();
  } finally {
    c.sigprocmask(SIG_SETMASK, previous, null);
  }
}

/**
 * The address of `buffer`'s first byte, for a pointer field of a struct the kernel reads
 * (bpf_attr's instructions, license, log). The buffer must stay referenced until the
 * call returns; its bytes do not move (ArrayBuffer contents stay where they are).
 */
export function addressOf(buffer: Uint8Array): bigint {
  return koffi.address(buffer) as bigint;
}
