/**
 * BPF iterators, from nothing but bpf(2): a program assembled here (no compiler, no
 * libbpf), loaded as a tracing program for an iterator (iter/tcp, iter/udp), attached
 * through a link, and read as a stream of the records it writes. The kernel's verifier
 * checks every program before it runs; the program, link and iterator live as long as
 * their fds, which IteratorRun closes.
 *
 * See include/uapi/linux/bpf.h for the instruction encoding and union bpf_attr.
 */
import { closeSync, readFileSync } from 'node:fs';
import { errnoName } from './errors.js';
import * as libc from './libc.js';
import { readToEnd } from './read-to-end.js';

const BPF_PROG_LOAD = 5;
const BPF_LINK_CREATE = 28;
const BPF_ITER_CREATE = 33;
const BPF_PROG_TYPE_TRACING = 26;
const BPF_TRACE_ITER = 28;

/** Registers: r0 results, r1–r5 arguments (clobbered by calls), r6–r9 kept, r10 the frame. */
export type Register = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;
export type Width = 1 | 2 | 4 | 8;

/** Helper function ids (enum bpf_func_id). */
export const Helper = {
  getSocketCookie: 46,
  getsockopt: 57,
  probeReadKernel: 113,
  seqWrite: 127,
  skcToTcpSock: 137,
  skcToUdp6Sock: 140,
} as const;

const SIZE_BITS: Record<Width, number> = { 1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18 };
const CLASS_LDX = 0x01;
const CLASS_ST = 0x02;
const CLASS_STX = 0x03;
const CLASS_JMP = 0x05;
const CLASS_ALU64 = 0x07;
const MODE_MEM = 0x60;
const OP_ADD = 0x00;
const OP_AND = 0x50;
const OP_LSH = 0x60;
const OP_MOV = 0xb0;
const OP_ARSH = 0xc0;
const SOURCE_REGISTER = 0x08;
const JUMP_IF_EQUAL = 0x10;
const JUMP_IF_NOT_EQUAL = 0x50;
const JUMP_IF_SIGNED_AT_LEAST = 0x70;
const JUMP_ALWAYS = 0x00;
const CALL = 0x80;
const EXIT = 0x90;

/** A forward jump whose target is bound later. */
export interface Label {
  readonly jumps: number[];
}

/** Assembles BPF instructions, 8 bytes each (opcode, registers, 16-bit offset, 32-bit immediate). */
export class Assembler {
  private readonly code: number[][] = [];

  private emit(opcode: number, dst: Register, src: Register, offset: number, immediate: number): void {
    this.code.push([opcode, dst | (src << 4), offset, immediate]);
  }

  get length(): number {
    return this.code.length;
  }

  /** dst = src (64 bits). */
  move(dst: Register, src: Register): this {
    this.emit(CLASS_ALU64 | OP_MOV | SOURCE_REGISTER, dst, src, 0, 0);
    return this;
  }

  /** dst = immediate (sign-extended 32 bits). */
  moveImmediate(dst: Register, immediate: number): this {
    this.emit(CLASS_ALU64 | OP_MOV, dst, 0, 0, immediate);
    return this;
  }

  /** dst += immediate. */
  addImmediate(dst: Register, immediate: number): this {
    this.emit(CLASS_ALU64 | OP_ADD, dst, 0, 0, immediate);
    return this;
  }

  /** dst &= immediate. */
  andImmediate(dst: Register, immediate: number): this {
    this.emit(CLASS_ALU64 | OP_AND, dst, 0, 0, immediate);
    return this;
  }

  /**
   * dst = its low `width` bytes, sign-extended to 64 bits (a shift left then an
   * arithmetic shift right: no instruction of the older kernels' set does it at once).
   */
  signExtend(dst: Register, width: Width): this {
    if (width === 8) return this;
    const shift = 64 - 8 * width;
    this.emit(CLASS_ALU64 | OP_LSH, dst, 0, 0, shift);
    this.emit(CLASS_ALU64 | OP_ARSH, dst, 0, 0, shift);
    return this;
  }

  /** dst = *(width *)(src + offset), zero-extended. */
  load(width: Width, dst: Register, src: Register, offset: number): this {
    this.emit(CLASS_LDX | MODE_MEM | SIZE_BITS[width], dst, src, offset, 0);
    return this;
  }

  /** *(width *)(dst + offset) = src. */
  store(width: Width, dst: Register, offset: number, src: Register): this {
    this.emit(CLASS_STX | MODE_MEM | SIZE_BITS[width], dst, src, offset, 0);
    return this;
  }

  /** *(width *)(dst + offset) = immediate. */
  storeImmediate(width: Width, dst: Register, offset: number, immediate: number): this {
    this.emit(CLASS_ST | MODE_MEM | SIZE_BITS[width], dst, 0, offset, immediate);
    return this;
  }

  /** r0 = helper(r1, ..., r5). */
  call(helper: number): this {
    this.emit(CLASS_JMP | CALL, 0, 0, 0, helper);
    return this;
  }

  exit(): this {
    this.emit(CLASS_JMP | EXIT, 0, 0, 0, 0);
    return this;
  }

  label(): Label {
    return { jumps: [] };
  }

  /** Jumps to `label` when register `reg` equals `immediate`. */
  jumpIfEqual(reg: Register, immediate: number, label: Label): this {
    label.jumps.push(this.code.length);
    this.emit(CLASS_JMP | JUMP_IF_EQUAL, reg, 0, 0, immediate);
    return this;
  }

  /** Jumps to `label` when register `reg` differs from `immediate`. */
  jumpIfNotEqual(reg: Register, immediate: number, label: Label): this {
    label.jumps.push(this.code.length);
    this.emit(CLASS_JMP | JUMP_IF_NOT_EQUAL, reg, 0, 0, immediate);
    return this;
  }

  /** Jumps to `label` when register `reg`, signed, is at least `immediate`. */
  jumpIfSignedAtLeast(reg: Register, immediate: number, label: Label): this {
    label.jumps.push(this.code.length);
    this.emit(CLASS_JMP | JUMP_IF_SIGNED_AT_LEAST, reg, 0, 0, immediate);
    return this;
  }

  /** Jumps to `label`. */
  jump(label: Label): this {
    label.jumps.push(this.code.length);
    this.emit(CLASS_JMP | JUMP_ALWAYS, 0, 0, 0, 0);
    return this;
  }

  /** Jumps to `label` when registers `reg` and `other` differ. */
  jumpIfRegistersDiffer(reg: Register, other: Register, label: Label): this {
    label.jumps.push(this.code.length);
    this.emit(CLASS_JMP | JUMP_IF_NOT_EQUAL | SOURCE_REGISTER, reg, other, 0, 0);
    return this;
  }

  /** `label` is the next instruction. */
  bind(label: Label): this {
    for (const at of label.jumps) {
      const jump = this.code[at] as number[];
      jump[2] = this.code.length - at - 1;
    }
    return this;
  }

  bytes(): Uint8Array {
    const out = Buffer.alloc(this.code.length * 8);
    this.code.forEach(([opcode, registers, offset, immediate], i) => {
      out.writeUInt8(opcode as number, i * 8);
      out.writeUInt8(registers as number, i * 8 + 1);
      out.writeInt16LE(offset as number, i * 8 + 2);
      out.writeInt32LE(immediate as number, i * 8 + 4);
    });
    return out;
  }
}

/**
 * Whether a program may read kernel memory with bpf_probe_read_kernel: not under the
 * "confidentiality" lockdown (security/lockdown), which withholds the helper, so that a
 * program calling it would not load.
 */
export function kernelReadsAllowed(lockdownFile = '/sys/kernel/security/lockdown'): boolean {
  let text: string;
  try {
    text = readFileSync(lockdownFile, 'latin1');
  } catch {
    return true; // no lockdown LSM (or no securityfs): nothing withholds it
  }
  return !text.includes('[confidentiality]');
}

/** A bpf(2) command that failed, with the verifier's words when it was a load. */
export class BpfError extends Error {
  override readonly name = 'BpfError';
  constructor(
    readonly command: string,
    readonly errno: number,
    readonly verifierLog = '',
  ) {
    super(`bpf ${command}: ${errnoName(errno)}${verifierLog ? ` (${lastLine(verifierLog)})` : ''}`);
  }

  get code(): string {
    return errnoName(this.errno);
  }
}

function lastLine(log: string): string {
  const lines = log.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

function bpfCommand(command: number, name: string, attr: Uint8Array, log?: Uint8Array): number {
  const result = libc.bpf(command, attr);
  if (result >= 0) return result;
  const text = log ? Buffer.from(log.buffer, log.byteOffset, log.indexOf(0)).toString('utf8') : '';
  throw new BpfError(name, -result, text);
}

const LOG_SIZE = 1 << 16;

/**
 * Loads `program` as an iterator program attached to BTF function `attachBtfId` (for
 * example bpf_iter_tcp), licensed GPL (the helpers it calls require it): its fd.
 */
function loadIteratorProgram(program: Uint8Array, attachBtfId: number, name: string): number {
  const license = Buffer.from('GPL\0');
  const log = Buffer.alloc(LOG_SIZE);
  const attr = Buffer.alloc(128);
  attr.writeUInt32LE(BPF_PROG_TYPE_TRACING, 0);
  attr.writeUInt32LE(program.byteLength / 8, 4);
  attr.writeBigUInt64LE(libc.addressOf(program), 8);
  attr.writeBigUInt64LE(libc.addressOf(license), 16);
  // Log level 1 only fills the log when the load fails, which is when it is wanted.
  attr.writeUInt32LE(1, 24);
  attr.writeUInt32LE(log.length, 28);
  attr.writeBigUInt64LE(libc.addressOf(log), 32);
  attr.write(name.slice(0, 15), 48, 'latin1');
  attr.writeUInt32LE(BPF_TRACE_ITER, 68);
  attr.writeUInt32LE(attachBtfId, 108);
  // The verifier gives up with EAGAIN when a signal arrives while it works (a profiler's
  // SIGPROF, a terminal's SIGWINCH): signals wait while it works, and where they cannot,
  // the same load is tried again, as libbpf does.
  for (let attempt = 1; ; attempt++) {
    try {
      return libc.withSignalsBlocked(() => bpfCommand(BPF_PROG_LOAD, 'BPF_PROG_LOAD', attr, log));
    } catch (error) {
      if (!(error instanceof BpfError && error.code === 'EAGAIN' && attempt < LOAD_ATTEMPTS)) throw error;
      log.fill(0);
    }
  }
}

const LOAD_ATTEMPTS = 5;

/**
 * An iterator program loaded, attached and opened: reading `fd` to its end runs it once
 * over everything its iterator visits. Closing it closes the iterator, the link and the
 * program, which unloads the program.
 */
export class IteratorRun {
  private constructor(
    private readonly programFd: number,
    private readonly link: number,
    /** The iterator: read it to its end for the program's output. */
    readonly fd: number,
  ) {}

  /** Loads `program` (see loadIteratorProgram) and opens an iterator of it. */
  static start(program: Uint8Array, attachBtfId: number, name: string): IteratorRun {
    const programFd = loadIteratorProgram(program, attachBtfId, name);
    let link = -1;
    try {
      const linkAttr = Buffer.alloc(64);
      linkAttr.writeUInt32LE(programFd, 0);
      linkAttr.writeUInt32LE(BPF_TRACE_ITER, 8);
      link = bpfCommand(BPF_LINK_CREATE, 'BPF_LINK_CREATE', linkAttr);
      const iterAttr = Buffer.alloc(16);
      iterAttr.writeUInt32LE(link, 0);
      return new IteratorRun(programFd, link, bpfCommand(BPF_ITER_CREATE, 'BPF_ITER_CREATE', iterAttr));
    } catch (error) {
      if (link >= 0) closeSync(link);
      closeSync(programFd);
      throw error;
    }
  }

  close(): void {
    closeSync(this.fd);
    closeSync(this.link);
    closeSync(this.programFd);
  }
}

/**
 * Loads `program`, runs it once over everything its iterator visits, and returns what it
 * wrote (read into one buffer of about `expectedBytes`); every fd it opened is closed
 * before it returns.
 */
export function runIteratorProgram(
  program: Uint8Array,
  attachBtfId: number,
  name: string,
  expectedBytes: number,
): Uint8Array {
  const run = IteratorRun.start(program, attachBtfId, name);
  try {
    return readToEnd(run.fd, expectedBytes);
  } finally {
    run.close();
  }
}
