/**
 * The kernel's BTF (/sys/kernel/btf/vmlinux): the type information a BPF program needs to
 * be loaded against this very kernel — the id of the function an iterator attaches to,
 * and where a field sits in a struct, so that a program built here at run time reads
 * the fields of this kernel's layout (what libbpf's CO-RE does for compiled programs).
 *
 * Format: include/uapi/linux/btf.h. A header, then a section of types (each a fixed
 * 12-byte record and kind-specific data after it; ids count from 1 in order), then a
 * section of NUL-terminated names. Only what the lookups below need is read, lazily:
 * one pass indexes where each type starts.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { hostIsLittleEndian } from '../netlink/byte-reader.js';
import { ProtocolError } from './errors.js';
import * as libc from './libc.js';

export const KERNEL_BTF = '/sys/kernel/btf/vmlinux';

const MAGIC = 0xeb9f;
const HEADER_SIZE = 24;
const TYPE_SIZE = 12;

export enum BtfKind {
  Int = 1,
  Pointer = 2,
  Array = 3,
  Struct = 4,
  Union = 5,
  Enum = 6,
  Forward = 7,
  Typedef = 8,
  Volatile = 9,
  Const = 10,
  Restrict = 11,
  Function = 12,
  FunctionPrototype = 13,
  Variable = 14,
  DataSection = 15,
  Float = 16,
  DeclarationTag = 17,
  TypeTag = 18,
  Enum64 = 19,
}

/**
 * Words after the 12-byte record, by kind: fixed for some kinds ([kind]), per member
 * (vlen) for others ([32 + kind]); -1 for a kind this reader does not know. Tables rather
 * than a switch: the index of 100,000-odd types runs once per process, mostly before the
 * optimiser has compiled it.
 */
const EXTRA_WORDS = (() => {
  const table = new Int32Array(64).fill(-1);
  const fixed: Array<[BtfKind, number]> = [
    [BtfKind.Int, 1],
    [BtfKind.Variable, 1],
    [BtfKind.DeclarationTag, 1],
    [BtfKind.Array, 3],
  ];
  const perMember: Array<[BtfKind, number]> = [
    [BtfKind.Struct, 3],
    [BtfKind.Union, 3],
    [BtfKind.DataSection, 3],
    [BtfKind.Enum64, 3],
    [BtfKind.Enum, 2],
    [BtfKind.FunctionPrototype, 2],
  ];
  const none = [
    BtfKind.Pointer,
    BtfKind.Forward,
    BtfKind.Typedef,
    BtfKind.Volatile,
    BtfKind.Const,
    BtfKind.Restrict,
    BtfKind.Function,
    BtfKind.Float,
    BtfKind.TypeTag,
  ];
  for (const [kind, words] of fixed) {
    table[kind] = words;
    table[32 + kind] = 0;
  }
  for (const [kind, words] of perMember) {
    table[kind] = 0;
    table[32 + kind] = words;
  }
  for (const kind of none) {
    table[kind] = 0;
    table[32 + kind] = 0;
  }
  return table;
})();

/**
 * Where a field lies: its byte offset from the start of the outer struct and its size;
 * for a bitfield, the byte holding it (size 1) and where in that byte it sits.
 */
export interface FieldPlace {
  offset: number;
  size: number;
  bits?: { shift: number; width: number };
}

export class Btf {
  private readonly view: DataView;
  private readonly typesStart: number;
  private readonly stringsStart: number;
  private readonly stringsEnd: number;
  /** Byte offset of type id i's record at [i]; [0] is the void type, which has none. */
  private readonly starts: Uint32Array;
  /**
   * Type id i's name offset and its info word (kind, kind flag, vlen), copied out while
   * the records are walked: a search by name runs through these two arrays rather than
   * through the records, several times faster over 100,000-odd types.
   */
  private readonly nameOffsets: Uint32Array;
  private readonly infos: Uint32Array;

  private constructor(private readonly bytes: Uint8Array) {
    if (bytes.length < HEADER_SIZE) throw new ProtocolError('BTF shorter than its header');
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const magic = this.view.getUint16(0, hostIsLittleEndian);
    if (magic !== MAGIC) throw new ProtocolError(`not BTF in host byte order (magic ${magic.toString(16)})`);
    const headerLength = this.u32(4);
    const typeOffset = this.u32(8);
    const typeLength = this.u32(12);
    const stringOffset = this.u32(16);
    const stringLength = this.u32(20);
    this.typesStart = headerLength + typeOffset;
    const typesEnd = this.typesStart + typeLength;
    this.stringsStart = headerLength + stringOffset;
    this.stringsEnd = this.stringsStart + stringLength;
    if (typesEnd > bytes.length || this.stringsEnd > bytes.length)
      throw new ProtocolError('BTF sections run past its end');
    // Records are whole 32-bit words in host order: indexed through a word view (of an
    // aligned copy where the bytes are not aligned), which is several times faster than
    // DataView reads over the 100,000-odd types of a kernel.
    const base = bytes.byteOffset + this.typesStart;
    const words =
      base % 4 === 0
        ? new Uint32Array(bytes.buffer, base, typeLength >>> 2)
        : new Uint32Array(bytes.slice(this.typesStart, typesEnd).buffer, 0, typeLength >>> 2);
    const capacity = (typeLength >>> 2) / 3 + 1;
    const starts = new Uint32Array(capacity);
    const nameOffsets = new Uint32Array(capacity);
    const infos = new Uint32Array(capacity);
    let count = 1;
    for (let word = 0; word < words.length; ) {
      if (word + 3 > words.length) throw new ProtocolError('a BTF type record is cut short');
      const info = words[word + 1] as number;
      starts[count] = this.typesStart + word * 4;
      nameOffsets[count] = words[word] as number;
      infos[count++] = info;
      const kind = (info >>> 24) & 0x1f;
      const fixed = EXTRA_WORDS[kind] as number;
      if (fixed < 0) throw new ProtocolError(`BTF type of unknown kind ${kind}`);
      word += 3 + fixed + (EXTRA_WORDS[32 + kind] as number) * (info & 0xffff);
      if (word > words.length) throw new ProtocolError('a BTF type record is cut short');
    }
    this.starts = starts.subarray(0, count);
    this.nameOffsets = nameOffsets.subarray(0, count);
    this.infos = infos.subarray(0, count);
  }

  static parse(bytes: Uint8Array): Btf {
    return new Btf(bytes);
  }

  /** The running kernel's BTF, read; throws (ENOENT) where the kernel was built without it. */
  static kernel(path = KERNEL_BTF): Btf {
    return new Btf(readFileSync(path));
  }

  /**
   * The running kernel's BTF mapped rather than read, or null where the kernel does not
   * let the file be mapped. sysfs hands the file out a page per read(2): 1,350 calls and
   * 30–40 ms for the 5.5 MB of 6.18, against well under 10 ms to map it.
   */
  static mapKernel(path = KERNEL_BTF): Btf | null {
    let memory: libc.MappedMemory;
    try {
      const fd = openSync(path, 'r');
      try {
        memory = libc.mapReadOnly(fd, fstatSync(fd).size);
      } finally {
        closeSync(fd);
      }
    } catch {
      return null; // Btf.kernel reads it, or says why it cannot
    }
    try {
      return new Btf(new Uint8Array(memory.bytes));
    } catch (error) {
      libc.unmap(memory);
      throw error;
    }
  }

  get typeCount(): number {
    return this.starts.length - 1;
  }

  private u32(at: number): number {
    return this.view.getUint32(at, hostIsLittleEndian);
  }

  private record(id: number): number {
    const at = this.starts[id];
    if (id <= 0 || at === undefined) throw new ProtocolError(`no BTF type ${id}`);
    return at;
  }

  kind(id: number): number {
    return (this.u32(this.record(id) + 4) >>> 24) & 0x1f;
  }

  private vlen(id: number): number {
    return this.u32(this.record(id) + 4) & 0xffff;
  }

  private kindFlag(id: number): boolean {
    return this.u32(this.record(id) + 4) >>> 31 === 1;
  }

  /** The size of a struct, union, enum or int; the referenced type of the others. */
  private sizeOrType(id: number): number {
    return this.u32(this.record(id) + 8);
  }

  /** The offset of `name` in the string section, or -1: BTF stores each name once. */
  private nameOffset(name: string): number {
    const needle = Buffer.from(`\0${name}\0`);
    const haystack = Buffer.from(
      this.bytes.buffer,
      this.bytes.byteOffset + this.stringsStart,
      this.stringsEnd - this.stringsStart,
    );
    // The section starts with the empty name, a NUL, so every name has one before it.
    const at = haystack.indexOf(needle);
    return at < 0 ? -1 : at + 1;
  }

  name(id: number): string {
    return this.stringAt(this.u32(this.record(id)));
  }

  private stringAt(offset: number): string {
    const start = this.stringsStart + offset;
    let end = start;
    while (end < this.stringsEnd && this.bytes[end] !== 0) end++;
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + start, end - start).toString('latin1');
  }

  /** Types found so far, by kind and name: each find is a pass over every type. */
  private readonly found = new Map<string, number>();

  /** The id of the type named `name` of kind `kind`; throws when there is none. */
  find(name: string, kind: BtfKind): number {
    const key = `${kind} ${name}`;
    let id = this.found.get(key);
    if (id === undefined) {
      id = this.search(name, kind);
      this.found.set(key, id);
    }
    return id;
  }

  private search(name: string, kind: BtfKind): number {
    const offset = this.nameOffset(name);
    if (offset > 0) {
      const names = this.nameOffsets;
      const infos = this.infos;
      for (let id = 1; id < names.length; id++)
        if (names[id] === offset && (((infos[id] as number) >>> 24) & 0x1f) === kind) return id;
    }
    throw new ProtocolError(`the kernel's BTF has no ${kindName(kind)} ${name}`);
  }

  /** Past typedefs, const, volatile, restrict and type tags, to the type itself. */
  private resolve(id: number): number {
    let current = id;
    for (let hops = 0; hops < 64; hops++) {
      const kind = this.kind(current);
      if (
        kind !== BtfKind.Typedef &&
        kind !== BtfKind.Const &&
        kind !== BtfKind.Volatile &&
        kind !== BtfKind.Restrict &&
        kind !== BtfKind.TypeTag
      )
        return current;
      current = this.sizeOrType(current);
    }
    throw new ProtocolError(`BTF type ${id} refers in a loop`);
  }

  /** The size in bytes of a type (pointers are 8 bytes on the 64-bit targets we run on). */
  sizeOf(id: number): number {
    const resolved = this.resolve(id);
    switch (this.kind(resolved)) {
      case BtfKind.Int:
      case BtfKind.Struct:
      case BtfKind.Union:
      case BtfKind.Enum:
      case BtfKind.Enum64:
      case BtfKind.Float:
        return this.sizeOrType(resolved);
      case BtfKind.Pointer:
        return 8;
      case BtfKind.Array: {
        const at = this.record(resolved) + TYPE_SIZE;
        return this.sizeOf(this.u32(at)) * this.u32(at + 8);
      }
      default:
        throw new ProtocolError(`BTF type ${id} (${kindName(this.kind(resolved))}) has no size`);
    }
  }

  /**
   * The member `name` of struct or union `id`, looked for also inside its anonymous
   * structs and unions (as C lets one name them): its type and bit offset, or null.
   */
  private member(id: number, name: string): { type: number; bits: number; bitSize: number } | null {
    return this.memberNamed(id, Buffer.from(name, 'latin1'));
  }

  /** Whether the name at `offset` of the string section is `name`'s bytes, compared in place. */
  private nameIs(offset: number, name: Uint8Array): boolean {
    const start = this.stringsStart + offset;
    if (start + name.length >= this.stringsEnd) return false;
    for (let i = 0; i < name.length; i++) if (this.bytes[start + i] !== name[i]) return false;
    return this.bytes[start + name.length] === 0;
  }

  private memberNamed(id: number, name: Uint8Array): { type: number; bits: number; bitSize: number } | null {
    const resolved = this.resolve(id);
    const kind = this.kind(resolved);
    if (kind !== BtfKind.Struct && kind !== BtfKind.Union) return null;
    const flagged = this.kindFlag(resolved);
    const first = this.record(resolved) + TYPE_SIZE;
    for (let i = 0; i < this.vlen(resolved); i++) {
      const at = first + 12 * i;
      const memberName = this.u32(at);
      const type = this.u32(at + 4);
      const raw = this.u32(at + 8);
      // With the kind flag, the offset word holds the bitfield's size in its top byte.
      const bits = flagged ? raw & 0xffffff : raw;
      const bitSize = flagged ? raw >>> 24 : 0;
      if (memberName === 0) {
        const inner = this.memberNamed(type, name);
        if (inner) return { type: inner.type, bits: bits + inner.bits, bitSize: inner.bitSize };
      } else if (this.nameIs(memberName, name)) {
        return { type, bits, bitSize };
      }
    }
    return null;
  }

  /**
   * An int member's own bit layout (the encoding BTF used for bitfields before the kind
   * flag): its offset and width in bits when it is narrower than its type, else null.
   */
  private intBitfield(type: number): { offset: number; width: number } | null {
    const resolved = this.resolve(type);
    if (this.kind(resolved) !== BtfKind.Int) return null;
    const encoding = this.u32(this.record(resolved) + TYPE_SIZE);
    const width = encoding & 0xff;
    const offset = (encoding >>> 16) & 0xff;
    return width === this.sizeOrType(resolved) * 8 && offset === 0 ? null : { offset, width };
  }

  /**
   * Where `path` (member names, outermost first) lies in struct `structName`, e.g.
   * field('tcp_sock', ['inet_conn', 'icsk_accept_queue', 'rskq_defer_accept']). A
   * bitfield is placed within its byte (little-endian bit order, as on the hosts we run
   * on); one that spans bytes is refused, as is a path through a bitfield.
   */
  field(structName: string, path: readonly string[]): FieldPlace {
    let type = this.find(structName, BtfKind.Struct);
    let bits = 0;
    let bitSize = 0;
    path.forEach((name, i) => {
      const member = this.member(type, name);
      if (member === null)
        throw new ProtocolError(`the kernel's struct ${structName} has no ${path.join('.')}`);
      const legacy = member.bitSize === 0 ? this.intBitfield(member.type) : null;
      bits += member.bits + (legacy?.offset ?? 0);
      bitSize = member.bitSize || (legacy?.width ?? 0);
      if (bitSize !== 0 && i < path.length - 1)
        throw new ProtocolError(`${structName}.${path.slice(0, i + 1).join('.')} is a bitfield`);
      type = member.type;
    });
    if (bitSize === 0) {
      if (bits % 8 !== 0) throw new ProtocolError(`${structName}.${path.join('.')} is not byte-aligned`);
      return { offset: bits / 8, size: this.sizeOf(type) };
    }
    const shift = bits % 8;
    if (!hostIsLittleEndian || shift + bitSize > 8)
      throw new ProtocolError(`${structName}.${path.join('.')} is a bitfield across bytes`);
    return { offset: (bits - shift) / 8, size: 1, bits: { shift, width: bitSize } };
  }

  /** The value of enumerator `name` of enum `enumName`. */
  enumValue(enumName: string, name: string): number {
    const id = this.find(enumName, BtfKind.Enum);
    const first = this.record(id) + TYPE_SIZE;
    for (let i = 0; i < this.vlen(id); i++) {
      const at = first + 8 * i;
      if (this.stringAt(this.u32(at)) === name) return this.view.getInt32(at + 4, hostIsLittleEndian);
    }
    throw new ProtocolError(`the kernel's enum ${enumName} has no ${name}`);
  }

  /**
   * The value of enumerator `name` in whichever enum declares it, anonymous ones
   * included (as `enum { INET_FLAGS_PKTINFO = 0, ... }` is): a pass over the enums, with
   * the name's bytes found once in the string section.
   */
  enumerator(name: string): number {
    const offset = this.nameOffset(name);
    if (offset > 0)
      for (let id = 1; id < this.starts.length; id++) {
        const info = this.infos[id] as number;
        if (((info >>> 24) & 0x1f) !== BtfKind.Enum) continue;
        const first = (this.starts[id] as number) + TYPE_SIZE;
        for (let i = 0; i < (info & 0xffff); i++)
          if (this.u32(first + 8 * i) === offset)
            return this.view.getInt32(first + 8 * i + 4, hostIsLittleEndian);
      }
    throw new ProtocolError(`the kernel's BTF has no enumerator ${name}`);
  }
}

function kindName(kind: number): string {
  const names: Record<number, string> = {
    [BtfKind.Struct]: 'struct',
    [BtfKind.Union]: 'union',
    [BtfKind.Enum]: 'enum',
    [BtfKind.Function]: 'function',
    [BtfKind.Typedef]: 'typedef',
  };
  return names[kind] ?? `type of kind ${kind}`;
}

let cachedKernelBtf: Btf | undefined;
/**
 * The mapped BTF, kept for the process (watch mode maps it once): its 5 MB of pages are
 * the kernel's own; what this process holds is the index of its types (about 0.5 MB).
 */
let mappedKernelBtf: Btf | null | undefined;

/**
 * The running kernel's BTF, once for however many programs one collection builds: mapped
 * where the kernel allows it, else read (about 5 MB), and then forgetKernelBtf lets the
 * copy go when the collection ends.
 */
export function kernelBtf(): Btf {
  if (mappedKernelBtf === undefined) mappedKernelBtf = existsSync(KERNEL_BTF) ? Btf.mapKernel() : null;
  if (mappedKernelBtf) return mappedKernelBtf;
  cachedKernelBtf ??= Btf.kernel();
  return cachedKernelBtf;
}

export function forgetKernelBtf(): void {
  cachedKernelBtf = undefined;
}
