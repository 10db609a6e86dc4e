/**
 * The pieces of the BPF pass that need no kernel: the assembler's encoding (checked
 * against the instruction set's documented bytes), the BTF reader on a BTF built here
 * byte by byte (anonymous members, nested paths, bitfields, broken input), and what the
 * pass leaves to getsockopt.
 */
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { describe, expect, it } from 'vitest';
import { BpfPass } from '../../src/options/bpf-pass.js';
import { prepareTcpProgram, TcpOptionRecords } from '../../src/options/bpf-tcp.js';
import { BPF_READABLE_TCP_OPTIONS, OPTION_CATALOGUE, type OptionSpec } from '../../src/options/catalogue.js';
import { optionsNeeded } from '../../src/options/display.js';
import { plainCallsPerSocket } from '../../src/options/jobs.js';
import { prepareOwnerProgram } from '../../src/procfs/bpf-owners.js';
import { Assembler, Helper } from '../../src/sys/bpf.js';
import { Btf, BtfKind, KERNEL_BTF } from '../../src/sys/btf.js';
import { ProtocolError } from '../../src/sys/errors.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex').match(/.{16}/g);

describe('the assembler', () => {
  it('encodes each instruction as the BPF instruction set defines it', () => {
    const a = new Assembler();
    const skip = a.label();
    a.move(6, 1)
      .load(8, 7, 6, 0)
      .jumpIfEqual(1, 0, skip)
      .store(4, 10, -8, 0)
      .storeImmediate(8, 10, -16, 0)
      .bind(skip)
      .load(1, 1, 8, 243)
      .store(1, 10, -1, 1)
      .moveImmediate(2, 6)
      .addImmediate(4, -24)
      .call(Helper.getSocketCookie)
      .exit();
    expect(hex(a.bytes())).toEqual([
      'bf16000000000000', // r6 = r1
      '7967000000000000', // r7 = *(u64 *)(r6 + 0)
      '1501020000000000', // if r1 == 0 goto +2
      '630af8ff00000000', // *(u32 *)(r10 - 8) = r0
      '7a0af0ff00000000', // *(u64 *)(r10 - 16) = 0
      '7181f30000000000', // r1 = *(u8 *)(r8 + 243)
      '731affff00000000', // *(u8 *)(r10 - 1) = r1
      'b702000006000000', // r2 = 6
      '07040000e8ffffff', // r4 += -24
      '850000002e000000', // call 46
      '9500000000000000', // exit
    ]);
  });
});

/** A small BTF, written the way the kernel lays it out (little-endian host). */
function buildBtf(): Buffer {
  const names = ['', 'int', 'long', 'inner', 'a', 'b', 'x', 'in', 'outer', 'head', 'tail', 'outer_t'];
  names.push('flags', 'F_A', 'F_B', 'bpf_iter_x', 'bits', 'bf', 'wide', 'across', 'u4', 'old', 'nib');
  const offsets = new Map<string, number>();
  let size = 0;
  for (const name of names) {
    offsets.set(name, size);
    size += Buffer.byteLength(name) + 1;
  }
  const strings = Buffer.concat(names.map((n) => Buffer.from(`${n}\0`)));
  const words: number[] = [];
  const n = (name: string) => offsets.get(name) as number;
  const type = (name: string, kind: number, vlen: number, sizeOrType: number, flag = false) =>
    words.push(n(name), ((flag ? 1 : 0) << 31) | (kind << 24) | vlen, sizeOrType);
  type('int', BtfKind.Int, 0, 4); // 1
  words.push(32);
  type('long', BtfKind.Int, 0, 8); // 2
  words.push(64);
  type('inner', BtfKind.Struct, 2, 16); // 3
  words.push(n('a'), 1, 0, n('b'), 2, 64);
  type('', BtfKind.Union, 2, 16); // 4
  words.push(n('x'), 1, 0, n('in'), 3, 0);
  type('outer', BtfKind.Struct, 3, 48); // 5
  words.push(n('head'), 1, 0, 0, 4, 64, n('tail'), 3, 256);
  type('outer_t', BtfKind.Typedef, 0, 5); // 6
  type('flags', BtfKind.Enum, 2, 4); // 7
  words.push(n('F_A'), 0, n('F_B'), 4);
  type('', BtfKind.FunctionPrototype, 0, 1); // 8
  type('bpf_iter_x', BtfKind.Function, 0, 8); // 9
  type('bits', BtfKind.Struct, 1, 4, true); // 10: a 3-bit field at bit 5
  words.push(n('bf'), 1, (3 << 24) | 5);
  type('wide', BtfKind.Struct, 1, 4, true); // 11: a 6-bit field at bit 5, across two bytes
  words.push(n('across'), 1, (6 << 24) | 5);
  type('u4', BtfKind.Int, 0, 1); // 12: the old encoding: 4 bits at bit 2 of the int
  words.push((2 << 16) | 4);
  type('old', BtfKind.Struct, 1, 4); // 13: such an int at byte 1, without the kind flag
  words.push(n('nib'), 12, 8);
  const types = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => {
    types.writeUInt32LE(w >>> 0, i * 4);
  });
  const header = Buffer.alloc(24);
  header.writeUInt16LE(0xeb9f, 0);
  header.writeUInt8(1, 2);
  header.writeUInt32LE(24, 4);
  header.writeUInt32LE(0, 8);
  header.writeUInt32LE(types.length, 12);
  header.writeUInt32LE(types.length, 16);
  header.writeUInt32LE(strings.length, 20);
  return Buffer.concat([header, types, strings]);
}

describe('the BTF reader', () => {
  const btf = Btf.parse(buildBtf());

  it('finds types by name and kind', () => {
    expect(btf.typeCount).toBe(13);
    expect(btf.find('bpf_iter_x', BtfKind.Function)).toBe(9);
    expect(btf.find('outer', BtfKind.Struct)).toBe(5);
    expect(btf.name(3)).toBe('inner');
    expect(() => btf.find('outer', BtfKind.Function)).toThrow(/no function outer/);
    expect(() => btf.find('missing', BtfKind.Struct)).toThrow(ProtocolError);
  });

  it('places fields by path, through anonymous unions and nested structs', () => {
    expect(btf.field('outer', ['head'])).toEqual({ offset: 0, size: 4 });
    expect(btf.field('outer', ['x'])).toEqual({ offset: 8, size: 4 });
    expect(btf.field('outer', ['in', 'b'])).toEqual({ offset: 16, size: 8 });
    expect(btf.field('outer', ['tail'])).toEqual({ offset: 32, size: 16 });
    expect(btf.field('outer', ['tail', 'b'])).toEqual({ offset: 40, size: 8 });
    expect(() => btf.field('outer', ['tail', 'nope'])).toThrow(/has no tail.nope/);
    // A 3-bit field at bit 5: its byte, and where in it.
    expect(btf.field('bits', ['bf'])).toEqual({ offset: 0, size: 1, bits: { shift: 5, width: 3 } });
    expect(btf.field('old', ['nib'])).toEqual({ offset: 1, size: 1, bits: { shift: 2, width: 4 } });
    expect(() => btf.field('wide', ['across'])).toThrow(/across bytes/);
  });

  it('reads enumerators', () => {
    expect(btf.enumValue('flags', 'F_B')).toBe(4);
    expect(() => btf.enumValue('flags', 'F_C')).toThrow(/no F_C/);
  });

  it('refuses what is not BTF, or is cut short', () => {
    const bytes = buildBtf();
    const wrongMagic = Buffer.from(bytes);
    wrongMagic.writeUInt16LE(0x1234, 0);
    expect(() => Btf.parse(wrongMagic)).toThrow(/not BTF/);
    expect(() => Btf.parse(bytes.subarray(0, 10))).toThrow(/shorter than its header/);
    expect(() => Btf.parse(bytes.subarray(0, bytes.length - 5))).toThrow(/past its end/);
    const lying = Buffer.from(bytes);
    lying.writeUInt32LE(lying.readUInt32LE(12) - 4, 12); // the last record loses a word
    expect(() => Btf.parse(lying)).toThrow(ProtocolError);
  });

  it.skipIf(!existsSync(KERNEL_BTF))("reads this kernel's BTF (skipped where it has none)", () => {
    const kernel = Btf.kernel();
    expect(kernel.kind(kernel.find('bpf_iter_tcp', BtfKind.Function))).toBe(BtfKind.Function);
    expect(kernel.field('tcp_sock', ['inet_conn', 'icsk_accept_queue', 'rskq_defer_accept']).size).toBe(1);
    expect(kernel.field('sock', ['sk_rcvtimeo']).size).toBe(8);
    expect(kernel.enumValue('sock_flags', 'SOCK_LINGER')).toBeGreaterThanOrEqual(0);
  });

  it.skipIf(!existsSync(KERNEL_BTF))('maps the same BTF as it reads, where the kernel lets it', () => {
    const mapped = Btf.mapKernel();
    // Linux 6.18, where the tests run, maps it; an older kernel refuses and it is read.
    if (Number(release().split('.')[0]) * 100 + Number(release().split('.')[1]) >= 618)
      expect(mapped).not.toBeNull();
    if (mapped === null) return;
    const read = Btf.kernel();
    expect(mapped.typeCount).toBe(read.typeCount);
    for (const path of [['sk_rcvtimeo'], ['__sk_common', 'skc_flags'], ['sk_lingertime']])
      expect(mapped.field('sock', path)).toEqual(read.field('sock', path));
    expect(mapped.find('bpf_iter_task_file', BtfKind.Function)).toBe(
      read.find('bpf_iter_task_file', BtfKind.Function),
    );
  });
});

describe('what the BPF pass leaves to getsockopt', () => {
  it("is nothing for the module's options, and part of the catalogue", () => {
    const knetstat = optionsNeeded({ kind: 'knetstat' });
    expect(plainCallsPerSocket(knetstat)).toBe(8);
    expect(plainCallsPerSocket(knetstat, true)).toBe(0);
    const all = plainCallsPerSocket(undefined);
    const left = plainCallsPerSocket(undefined, true);
    expect(left).toBeGreaterThan(2);
    expect(left).toBeLessThan(all);
  });
});

describe.skipIf(!existsSync(KERNEL_BTF))('the iter/tcp program (skipped without kernel BTF)', () => {
  it('calls only its four helpers, and bpf_getsockopt only with options of the catalogue', () => {
    const { program } = prepareTcpProgram(Btf.kernel(), BPF_READABLE_TCP_OPTIONS);
    const helpers = new Set<number>();
    const asked: string[] = [];
    // The registers' last immediate values, to see what each bpf_getsockopt is asked.
    const immediate = new Map<number, number>();
    for (let at = 0; at < program.length; at += 8) {
      const opcode = program[at] as number;
      const dst = (program[at + 1] as number) & 0x0f;
      const value = Buffer.from(program.buffer, program.byteOffset + at + 4, 4).readInt32LE(0);
      if (opcode === 0xb7) immediate.set(dst, value);
      if (opcode === 0x85) {
        helpers.add(value);
        if (value === Helper.getsockopt) asked.push(`${immediate.get(2)}/${immediate.get(3)}`);
      }
    }
    expect([...helpers].sort((a, b) => a - b)).toEqual(
      [Helper.getSocketCookie, Helper.getsockopt, Helper.seqWrite, Helper.skcToTcpSock].sort((a, b) => a - b),
    );
    const catalogue = new Map(
      OPTION_CATALOGUE.filter((o) => o.protocols.includes('tcp')).map((o) => [
        `${o.level}/${o.optname}`,
        o.name,
      ]),
    );
    expect(asked.map((pair) => catalogue.get(pair))).toEqual(BPF_READABLE_TCP_OPTIONS);
  });
});

describe('what the BPF pass settles, from its records', () => {
  // A kernel's layout as the BTF of 6.18 gives it, but for sk_userlocks as the 4-bit
  // field it is on 6.1 (bits 4–7 of its byte), without a kernel.
  const places: Record<string, object> = {
    sk_rcvtimeo: { offset: 272, size: 8 },
    sk_sndtimeo: { offset: 512, size: 8 },
    skc_flags: { offset: 96, size: 8 },
    sk_lingertime: { offset: 280, size: 8 },
    max_qlen: { offset: 1072, size: 4 },
    sk_userlocks: { offset: 243, size: 1, bits: { shift: 4, width: 4 } },
    rskq_defer_accept: { offset: 1020, size: 1 },
  };
  const fakeBtf = {
    field: (_struct: string, path: readonly string[]) => places[path[path.length - 1] as string],
    find: () => 1,
  } as unknown as Btf;
  const names = ['TCP_NODELAY', 'TCP_KEEPIDLE'];
  const { layout } = prepareTcpProgram(fakeBtf, names);
  const LONG_MAX = 0x7fffffffffffffffn;

  /** One socket's record: cookie 7, the two options (the second refused), the fields. */
  function records(fields: {
    rcvtimeo: bigint;
    flags: bigint;
    userLocks: number;
    defer: number;
    linger?: bigint;
  }) {
    const bytes = new Uint8Array(layout.size);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, 7n, true);
    view.setInt32(8, 1, true); // TCP_NODELAY 1, result 0
    view.setInt32(8 + 4 * 2 + 4, -22, true); // TCP_KEEPIDLE refused (EINVAL)
    view.setBigInt64(layout.fields.rcvtimeo.at, fields.rcvtimeo, true);
    view.setBigInt64(layout.fields.sndtimeo.at, LONG_MAX, true);
    view.setBigUint64(layout.fields.flags.at, fields.flags, true);
    view.setBigUint64(layout.fields.lingerTime.at, fields.linger ?? 0n, true);
    view.setInt32(layout.fields.fastopenMaxQueue.at, 16, true);
    view.setUint8(layout.fields.userLocks.at, fields.userLocks);
    view.setUint8(layout.fields.deferAccept.at, fields.defer);
    return new TcpOptionRecords(layout, bytes);
  }
  const spec = (name: string) => OPTION_CATALOGUE.find((o) => o.name === name) as OptionSpec;
  const LINGER_BIT = 4;
  const LINGER = 1n << BigInt(LINGER_BIT);
  /** A kernel whose HZ and deferral constants were not learnt. */
  const NO_HZ = { hz: null, deferAccept: false, bufLock: true };

  it('gives what bpf_getsockopt read, and nothing where it refused', () => {
    const pass = new BpfPass(
      records({ rcvtimeo: LONG_MAX, flags: 0n, userLocks: 0, defer: 0 }),
      LINGER_BIT,
      NO_HZ,
    );
    const record = pass.recordOf({ protocol: 'tcp', cookie: '7' } as never);
    expect(record).toBe(0);
    expect(pass.recordOf({ protocol: 'tcp', cookie: '8' } as never)).toBe(-1);
    expect(pass.recordOf({ protocol: 'udp', cookie: '7' } as never)).toBe(-1);
    expect(pass.value(record, spec('TCP_NODELAY'))).toBe(1);
    expect(pass.value(record, spec('TCP_KEEPIDLE'))).toBeUndefined();
    expect(pass.value(record, spec('TCP_CORK'))).toBeUndefined();
  });

  it('converts timeouts, linger times and deferrals as getsockopt does, where HZ is known', () => {
    const units = { hz: 250, deferAccept: true, bufLock: true };
    // 2.5 s in jiffies at HZ 250; linger 3 s; deferral of 3 retransmissions: 1 + 2 + 4 s.
    const set = new BpfPass(
      records({ rcvtimeo: 625n, flags: LINGER, userLocks: 0, defer: 3, linger: 750n }),
      LINGER_BIT,
      units,
    );
    expect(set.value(0, spec('SO_RCVTIMEO'))).toBe(2500);
    expect(set.value(0, spec('SO_SNDTIMEO'))).toBe(0);
    expect(set.value(0, spec('SO_LINGER'))).toBe(3);
    expect(set.value(0, spec('TCP_DEFER_ACCEPT'))).toBe(7);
    // One jiffy (4 ms); a linger time past MAX_SCHEDULE_TIMEOUT / HZ wraps in the C int.
    const odd = new BpfPass(
      records({ rcvtimeo: 1n, flags: LINGER, userLocks: 0, defer: 255, linger: LONG_MAX }),
      LINGER_BIT,
      units,
    );
    expect(odd.value(0, spec('SO_RCVTIMEO'))).toBe(4);
    expect(odd.value(0, spec('SO_LINGER'))).toBe(Number(BigInt.asIntN(32, LONG_MAX / 250n)));
    expect(odd.value(0, spec('TCP_DEFER_ACCEPT'))).toBe(29887);
    // Linger off: whatever time is left in sk_lingertime.
    const off = new BpfPass(
      records({ rcvtimeo: LONG_MAX, flags: 0n, userLocks: 0, defer: 0, linger: 750n }),
      LINGER_BIT,
      units,
    );
    expect(off.value(0, spec('SO_LINGER'))).toBeNull();
    // A flag in the flags word's upper half (SOCK_LINGER is bit 4 on 6.18; the word is 64 bits).
    const high = new BpfPass(
      records({ rcvtimeo: LONG_MAX, flags: 1n << 40n, userLocks: 0, defer: 0, linger: 500n }),
      40,
      units,
    );
    expect(high.value(0, spec('SO_LINGER'))).toBe(2);
    expect(
      new BpfPass(records({ rcvtimeo: LONG_MAX, flags: 1n << 39n, userLocks: 0, defer: 0 }), 40, units).value(
        0,
        spec('SO_LINGER'),
      ),
    ).toBeNull();
  });

  it('settles field-read options at their defaults, and leaves the others to getsockopt', () => {
    const defaults = new BpfPass(
      records({ rcvtimeo: LONG_MAX, flags: 0n, userLocks: 0, defer: 0 }),
      LINGER_BIT,
      NO_HZ,
    );
    expect(defaults.value(0, spec('SO_RCVTIMEO'))).toBe(0);
    expect(defaults.value(0, spec('SO_SNDTIMEO'))).toBe(0);
    expect(defaults.value(0, spec('SO_LINGER'))).toBeNull();
    expect(defaults.value(0, spec('SO_BUF_LOCK'))).toBe(0);
    expect(defaults.value(0, spec('TCP_DEFER_ACCEPT'))).toBe(0);
    expect(defaults.value(0, spec('TCP_FASTOPEN'))).toBe(16);
    // sk_userlocks 0b0111 in bits 4–7 (SNDBUF, RCVBUF and BIND locks): SO_BUF_LOCK 3.
    const set = new BpfPass(
      records({ rcvtimeo: 250n, flags: LINGER | 1n, userLocks: 0x70 | 0x0f, defer: 3 }),
      LINGER_BIT,
      NO_HZ,
    );
    expect(set.value(0, spec('SO_RCVTIMEO'))).toBeUndefined();
    expect(set.value(0, spec('SO_LINGER'))).toBeUndefined();
    expect(set.value(0, spec('TCP_DEFER_ACCEPT'))).toBeUndefined();
    expect(set.value(0, spec('SO_BUF_LOCK'))).toBe(3);
    // A kernel whose getsockopt does not know SO_BUF_LOCK: nor does the pass.
    const old = new BpfPass(
      records({ rcvtimeo: LONG_MAX, flags: 0n, userLocks: 0x30, defer: 0 }),
      LINGER_BIT,
      {
        ...NO_HZ,
        bufLock: false,
      },
    );
    expect(old.value(0, spec('SO_BUF_LOCK'))).toBeUndefined();
  });
});

describe.skipIf(!existsSync(KERNEL_BTF))(
  'both programs write only their own stack (skipped without kernel BTF)',
  () => {
    /** Helper ids called, and the registers stored through. */
    function effects(program: Uint8Array) {
      const helpers = new Set<number>();
      const storedThrough = new Set<number>();
      for (let at = 0; at < program.length; at += 8) {
        const opcode = program[at] as number;
        const cls = opcode & 0x07;
        if (opcode === 0x85)
          helpers.add(Buffer.from(program.buffer, program.byteOffset + at + 4, 4).readInt32LE(0));
        if (cls === 0x02 || cls === 0x03) storedThrough.add((program[at + 1] as number) & 0x0f);
      }
      return { helpers: [...helpers].sort((a, b) => a - b), storedThrough: [...storedThrough] };
    }

    it('the owner program: loads, a socket test, bpf_seq_write', () => {
      const { program } = prepareOwnerProgram(Btf.kernel());
      expect(effects(program)).toEqual({ helpers: [Helper.seqWrite], storedThrough: [10] });
    });

    it('the options program', () => {
      const { program } = prepareTcpProgram(Btf.kernel(), BPF_READABLE_TCP_OPTIONS);
      expect(effects(program).storedThrough).toEqual([10]);
    });
  },
);
