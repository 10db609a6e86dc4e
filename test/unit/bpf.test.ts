/**
 * The pieces of the BPF pass that need no kernel: the assembler's encoding (checked
 * against the instruction set's documented bytes), the BTF reader on a BTF built here
 * byte by byte (anonymous members, nested paths, bitfields, broken input), and what the
 * pass leaves to getsockopt.
 */
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BpfPass,
  forgetKernelReadRefusal,
  mayLoadBpf,
  type SockFlagBits,
  withProgram,
} from '../../src/options/bpf-pass.js';
import { prepareTcpProgram, type TcpField, TcpOptionRecords } from '../../src/options/bpf-tcp.js';
import { BPF_READABLE_TCP_OPTIONS, OPTION_CATALOGUE, type OptionSpec } from '../../src/options/catalogue.js';
import { optionsNeeded } from '../../src/options/display.js';
import { plainCallsPerSocket } from '../../src/options/jobs.js';
import type { KernelUnits } from '../../src/options/kernel-units.js';
import { indexRecords } from '../../src/options/record-index.js';
import { prepareOwnerProgram } from '../../src/procfs/bpf-owners.js';
import type { OptionDefaults } from '../../src/procfs/sysctl.js';
import { Assembler, BpfError, Helper, kernelReadsAllowed } from '../../src/sys/bpf.js';

const EINVAL = 22;
const EAGAIN = 11;

import { Btf, BtfKind, type FieldPlace, KERNEL_BTF } from '../../src/sys/btf.js';
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
    const signed = a.label();
    a.signExtend(2, 2).jumpIfSignedAtLeast(2, 0, signed).jump(signed).signExtend(3, 8).bind(signed);
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
      '6702000030000000', // r2 <<= 48
      'c702000030000000', // r2 s>>= 48
      '7502010000000000', // if r2 s>= 0 goto +1
      '0500000000000000', // goto +0 (a 64-bit value needs no extension)
    ]);
  });
});

/** A small BTF, written the way the kernel lays it out (little-endian host). */
function buildBtf(): Buffer {
  const names = ['', 'int', 'long', 'inner', 'a', 'b', 'x', 'in', 'outer', 'head', 'tail', 'outer_t'];
  names.push('flags', 'F_A', 'F_B', 'bpf_iter_x', 'bits', 'bf', 'wide', 'across', 'u4', 'old', 'nib', 'E_X');
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
  type('', BtfKind.Enum, 1, 4); // 14: an anonymous enum, as the kernel's inet_flags bits are
  words.push(n('E_X'), 26);
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
    expect(btf.typeCount).toBe(14);
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
    // Any enum's, an anonymous one's too, by the enumerator's name alone.
    expect(btf.enumerator('E_X')).toBe(26);
    expect(btf.enumerator('F_B')).toBe(4);
    expect(() => btf.enumerator('F_C')).toThrow(/no enumerator F_C/);
    // A name that is in the strings but no enumerator's.
    expect(() => btf.enumerator('outer')).toThrow(ProtocolError);
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
  it("is nothing for the module's options, nor for the catalogue's on IPv4", () => {
    const knetstat = optionsNeeded({ kind: 'knetstat' });
    expect(plainCallsPerSocket(knetstat)).toBe(8);
    expect(plainCallsPerSocket(knetstat, true)).toBe(0);
    // The whole catalogue too, on an IPv4 TCP socket.
    expect(plainCallsPerSocket(undefined)).toBeGreaterThan(20);
    expect(plainCallsPerSocket(undefined, true)).toBe(0);
  });
});

describe.skipIf(!existsSync(KERNEL_BTF))('the iter/tcp program (skipped without kernel BTF)', () => {
  it('calls only its helpers, and bpf_getsockopt only with options of the catalogue', () => {
    const { program, layout } = prepareTcpProgram(Btf.kernel(), BPF_READABLE_TCP_OPTIONS, undefined, true);
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
    // bpf_probe_read_kernel where the hop limit is worked out (where this kernel's types
    // have every place it needs).
    const expected: number[] = [
      Helper.getSocketCookie,
      Helper.getsockopt,
      Helper.seqWrite,
      Helper.skcToTcpSock,
    ];
    if (layout.hopLimit) expected.push(Helper.probeReadKernel);
    expect([...helpers].sort((a, b) => a - b)).toEqual(expected.sort((a, b) => a - b));
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
  // A kernel's layout, made up (the kernel's own is checked by the integration tests),
  // with sk_userlocks as the 4-bit field it is on 6.1 (bits 4–7 of its byte).
  const places: Record<string, FieldPlace> = {
    sk_rcvtimeo: { offset: 272, size: 8 },
    sk_sndtimeo: { offset: 512, size: 8 },
    skc_flags: { offset: 96, size: 8 },
    sk_lingertime: { offset: 280, size: 8 },
    max_qlen: { offset: 1072, size: 4 },
    sk_userlocks: { offset: 243, size: 1, bits: { shift: 4, width: 4 } },
    rskq_defer_accept: { offset: 1020, size: 1 },
    sk_ll_usec: { offset: 300, size: 4 },
    sk_prefer_busy_poll: { offset: 304, size: 1 },
    skc_incoming_cpu: { offset: 100, size: 4 },
    sk_tsflags: { offset: 308, size: 4 },
    sk_clockid: { offset: 320, size: 1 },
    sk_txtime_deadline_mode: { offset: 321, size: 1, bits: { shift: 0, width: 1 } },
    sk_txtime_report_errors: { offset: 321, size: 1, bits: { shift: 1, width: 1 } },
    sk_max_pacing_rate: { offset: 328, size: 8 },
    nonagle: { offset: 1500, size: 1, bits: { shift: 0, width: 4 } },
    pingpong: { offset: 1100, size: 1 },
    linger2: { offset: 1504, size: 4 },
    icsk_ulp_ops: { offset: 1200, size: 8 },
    fastopen_connect: { offset: 1510, size: 1, bits: { shift: 2, width: 1 } },
    tcp_tx_delay: { offset: 1512, size: 4 },
    recvmsg_inq: { offset: 1500, size: 1, bits: { shift: 5, width: 1 } },
    uc_ttl: { offset: 800, size: 2 },
    pmtudisc: { offset: 802, size: 1 },
    min_ttl: { offset: 803, size: 1 },
    pinet6: { offset: 784, size: 8 },
    skc_ipv6only: { offset: 19, size: 1, bits: { shift: 5, width: 1 } },
    inet_flags: { offset: 808, size: 8 },
    'ipv6_pinfo.pmtudisc': { offset: 34, size: 1 },
    // What IPV6_UNICAST_HOPS is worked out from.
    'ipv6_pinfo.hop_limit': { offset: 32, size: 2 },
    sk_dst_cache: { offset: 536, size: 8 },
    _metrics: { offset: 16, size: 8 },
    dev: { offset: 0, size: 8 },
    ip6_ptr: { offset: 192, size: 8 },
    'inet6_dev.hop_limit': { offset: 684, size: 4 },
    net: { offset: 48, size: 8 },
    devconf_all: { offset: 2168, size: 8 },
    'ipv6_devconf.hop_limit': { offset: 4, size: 4 },
  };
  /**
   * A kernel's BTF as far as the options program asks it: these fields, by their struct
   * and last name, or by their last name alone.
   */
  const btfWith = (fields: Record<string, FieldPlace>) =>
    ({
      field: (struct: string, path: readonly string[]) => {
        const last = path[path.length - 1] as string;
        const place = fields[`${struct}.${last}`] ?? fields[last];
        if (!place) throw new ProtocolError(`no ${path.join('.')}`);
        return place;
      },
      find: () => 1,
    }) as unknown as Btf;
  const fakeBtf = btfWith(places);
  const names = ['TCP_NODELAY', 'TCP_KEEPIDLE'];
  const { layout } = prepareTcpProgram(fakeBtf, names, undefined, true);
  const LONG_MAX = 0x7fffffffffffffffn;
  type Values = Partial<Record<TcpField, bigint | number>>;
  const DEFAULTS: Values = { rcvtimeo: LONG_MAX, sndtimeo: LONG_MAX, fastopenMaxQueue: 16, unicastTtl: -1 };

  /**
   * One socket's record: cookie 7, the two options (the second refused), the fields, and
   * the hop limit where the program worked one out.
   */
  function records(values: Values, fieldLayout = layout, hopLimit?: number) {
    return new TcpOptionRecords(fieldLayout, recordBytes(values, fieldLayout, hopLimit));
  }
  function recordBytes(values: Values, fieldLayout = layout, hopLimit?: number): Uint8Array {
    const bytes = new Uint8Array(fieldLayout.size);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, 7n, true);
    view.setInt32(8, 1, true); // TCP_NODELAY 1, result 0
    view.setInt32(8 + 4 * 2 + 4, -22, true); // TCP_KEEPIDLE refused (EINVAL)
    for (const [name, field] of Object.entries(fieldLayout.fields)) {
      const value = values[name as TcpField] ?? DEFAULTS[name as TcpField] ?? 0;
      if (field.width === 8) view.setBigInt64(field.at, BigInt(value), true);
      else if (field.width === 4) view.setInt32(field.at, Number(value), true);
      else if (field.width === 2) view.setInt16(field.at, Number(value), true);
      else if (!field.bits) view.setUint8(field.at, Number(value));
      else {
        // The bitfield's neighbours in its byte all set: a reader must mask them off.
        const mask = ((1 << field.bits.width) - 1) << field.bits.shift;
        view.setUint8(field.at, ((Number(value) << field.bits.shift) & mask) | (~mask & 0xff));
      }
    }
    if (hopLimit !== undefined && fieldLayout.hopLimit) {
      view.setInt32(fieldLayout.hopLimit.at, hopLimit, true);
      view.setUint8(fieldLayout.hopLimit.knownAt, 1);
    }
    return bytes;
  }
  const spec = (name: string) => OPTION_CATALOGUE.find((o) => o.name === name) as OptionSpec;
  const FLAG = { linger: 4, zerocopy: 26, receiveTimestamp: 13, receiveTimestampNs: 22, timestampNew: 41 };
  const FLAGS = { ...FLAG, urgentInline: 14, localRoute: 11 };
  /** A kernel whose HZ and deferral constants were not learnt. */
  const NO_HZ = { hz: null, deferAccept: false, bufLock: true };
  const HZ250 = { hz: 250, deferAccept: true, bufLock: true };
  const SYSCTLS: OptionDefaults = { finTimeout: 60, defaultTtl: 64, pingpongThreshold: 1 };
  const facts = (units: KernelUnits, flags: Partial<SockFlagBits> = FLAGS) => ({
    units,
    flags: { ...FLAGS, ...flags },
    pingpongSysctl: true,
    recverr6Bit: 26,
  });
  const pass = (values: Values, units: KernelUnits = HZ250, sysctls = SYSCTLS) =>
    new BpfPass(records(values), facts(units), sysctls);

  it('gives what bpf_getsockopt read, and nothing where it refused', () => {
    const p = pass({});
    const record = p.recordOf({ protocol: 'tcp', cookie: '7' } as never);
    expect(record).toBe(0);
    expect(p.recordOf({ protocol: 'tcp', cookie: '8' } as never)).toBe(-1);
    expect(p.recordOf({ protocol: 'udp', cookie: '7' } as never)).toBe(-1);
    expect(p.value(record, spec('TCP_NODELAY'))).toBe(1);
    expect(p.value(record, spec('TCP_KEEPIDLE'))).toBeUndefined();
    expect(p.value(record, spec('TCP_MAXSEG'))).toBeUndefined(); // not in this pass's list
  });

  it('tells records apart by everything but their cookies', () => {
    const first = recordBytes({ linger2: 30, ipv6Info: 1 }, layout, 64);
    const size = layout.size;
    // Three records in one buffer: the first again under another cookie, then one field changed.
    const bytes = new Uint8Array(size * 3);
    bytes.set(first, 0);
    bytes.set(first, size);
    bytes.set(first, 2 * size);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(size, 8n, true);
    view.setBigUint64(2 * size, 9n, true);
    const linger2 = layout.fields.linger2?.at as number;
    view.setInt32(2 * size + linger2, 31, true);
    const three = new TcpOptionRecords(layout, bytes);
    expect(three.size).toBe(3);
    expect(three.contentClass(size)).toBe(three.contentClass(0));
    expect(three.contentClass(2 * size)).not.toBe(three.contentClass(0));
    // The index the reader thread makes gives the same answers as one made here.
    const moved = new TcpOptionRecords(layout, bytes, indexRecords(bytes, size));
    expect(moved.find('9')).toBe(2 * size);
    expect(moved.contentClass(size)).toBe(moved.contentClass(0));
    expect(moved.contentClass(2 * size)).not.toBe(moved.contentClass(0));
    // An index of other records (another layout's, a stale thread's) is refused.
    expect(
      () => new TcpOptionRecords(layout, bytes, indexRecords(bytes.subarray(0, 2 * size), size)),
    ).toThrow(/index has 2 records, its bytes 3/);
  });

  it('converts timeouts, linger times and deferrals as getsockopt does, where HZ is known', () => {
    // 2.5 s in jiffies at HZ 250; linger 3 s; deferral of 3 retransmissions: 1 + 2 + 4 s.
    const set = pass({ rcvtimeo: 625n, flags: 1n << 4n, deferAccept: 3, lingerTime: 750n });
    expect(set.value(0, spec('SO_RCVTIMEO'))).toBe(2500);
    expect(set.value(0, spec('SO_SNDTIMEO'))).toBe(0);
    expect(set.value(0, spec('SO_LINGER'))).toBe(3);
    expect(set.value(0, spec('TCP_DEFER_ACCEPT'))).toBe(7);
    // One jiffy (4 ms); a linger time past MAX_SCHEDULE_TIMEOUT / HZ wraps in the C int.
    const odd = pass({ rcvtimeo: 1n, flags: 1n << 4n, deferAccept: 255, lingerTime: LONG_MAX });
    expect(odd.value(0, spec('SO_RCVTIMEO'))).toBe(4);
    expect(odd.value(0, spec('SO_LINGER'))).toBe(Number(BigInt.asIntN(32, LONG_MAX / 250n)));
    expect(odd.value(0, spec('TCP_DEFER_ACCEPT'))).toBe(29887);
    // Linger off: whatever time is left in sk_lingertime.
    expect(pass({ lingerTime: 750n }).value(0, spec('SO_LINGER'))).toBeNull();
    // A flag in the flags word's upper half (the word is 64 bits).
    const high = new BpfPass(
      records({ flags: 1n << 40n, lingerTime: 500n }),
      facts(HZ250, { linger: 40 }),
      SYSCTLS,
    );
    expect(high.value(0, spec('SO_LINGER'))).toBe(2);
    const below = new BpfPass(records({ flags: 1n << 39n }), facts(HZ250, { linger: 40 }), SYSCTLS);
    expect(below.value(0, spec('SO_LINGER'))).toBeNull();
  });

  it('settles without HZ only what needs no conversion, and leaves the rest to getsockopt', () => {
    const defaults = pass({}, NO_HZ);
    expect(defaults.value(0, spec('SO_RCVTIMEO'))).toBe(0);
    expect(defaults.value(0, spec('SO_SNDTIMEO'))).toBe(0);
    expect(defaults.value(0, spec('SO_LINGER'))).toBeNull();
    expect(defaults.value(0, spec('SO_BUF_LOCK'))).toBe(0);
    expect(defaults.value(0, spec('TCP_DEFER_ACCEPT'))).toBe(0);
    expect(defaults.value(0, spec('TCP_FASTOPEN'))).toBe(16);
    expect(defaults.value(0, spec('TCP_LINGER2'))).toBe(60); // the sysctl: no HZ needed
    // sk_userlocks 0b0111 in bits 4–7 (SNDBUF, RCVBUF and BIND locks): SO_BUF_LOCK 3.
    const set = pass(
      { rcvtimeo: 250n, flags: (1n << 4n) | 1n, userLocks: 0x7, deferAccept: 3, linger2: 500 },
      NO_HZ,
    );
    expect(set.value(0, spec('SO_RCVTIMEO'))).toBeUndefined();
    expect(set.value(0, spec('SO_LINGER'))).toBeUndefined();
    expect(set.value(0, spec('TCP_DEFER_ACCEPT'))).toBeUndefined();
    expect(set.value(0, spec('TCP_LINGER2'))).toBeUndefined();
    expect(set.value(0, spec('SO_BUF_LOCK'))).toBe(3);
    // A kernel whose getsockopt does not know SO_BUF_LOCK: nor does the pass.
    expect(
      pass({ userLocks: 3 }, { ...NO_HZ, bufLock: false }).value(0, spec('SO_BUF_LOCK')),
    ).toBeUndefined();
  });

  it('reads the other options as getsockopt works them out of the same fields', () => {
    const p = pass({
      busyPollUsec: 50,
      preferBusyPoll: 1,
      incomingCpu: -1,
      timestamping: 0x18,
      txtimeClock: 1,
      txtimeDeadline: 0,
      txtimeErrors: 1,
      maxPacingRate: 1_000_000n,
      nagle: 2 | 1,
      pingpong: 0,
      linger2: 750,
      ulp: 0,
      fastopenConnect: 1,
      txDelay: 1000,
      receiveQueueHint: 1,
      unicastTtl: 33,
      pmtuDiscovery: 2,
      minTtl: 5,
      flags: (1n << 26n) | (1n << 14n),
    });
    const values = Object.fromEntries(
      [
        'SO_SNDLOWAT',
        'SO_BUSY_POLL',
        'SO_PREFER_BUSY_POLL',
        'SO_INCOMING_CPU',
        'SO_TIMESTAMPING',
        'SO_TXTIME',
        'SO_MAX_PACING_RATE',
        'SO_ZEROCOPY',
        'SO_OOBINLINE',
        'SO_DONTROUTE',
        'TCP_CORK',
        'TCP_QUICKACK',
        'TCP_LINGER2',
        'TCP_ULP',
        'TCP_FASTOPEN_CONNECT',
        'TCP_TX_DELAY',
        'TCP_INQ',
        'IP_TTL',
        'IP_MTU_DISCOVER',
        'IP_MINTTL',
      ].map((name) => [name, p.value(0, spec(name))]),
    );
    expect(values).toEqual({
      SO_SNDLOWAT: 1,
      SO_BUSY_POLL: 50,
      SO_PREFER_BUSY_POLL: 1,
      SO_INCOMING_CPU: -1,
      SO_TIMESTAMPING: 0x18,
      SO_TXTIME: '1/2',
      SO_MAX_PACING_RATE: 1_000_000,
      SO_ZEROCOPY: 1,
      SO_OOBINLINE: 1,
      SO_DONTROUTE: 0,
      TCP_CORK: 1,
      TCP_QUICKACK: 1,
      TCP_LINGER2: 3,
      TCP_ULP: '',
      TCP_FASTOPEN_CONNECT: 1,
      TCP_TX_DELAY: 1000,
      TCP_INQ: 1,
      IP_TTL: 33,
      IP_MTU_DISCOVER: 2,
      IP_MINTTL: 5,
    });
    // Defaults: uc_ttl -1 is the sysctl, pacing unlimited, one pingpong at threshold 1
    // means delayed ACKs, a negative linger2 stays, an upper layer protocol is read.
    const other = pass({ maxPacingRate: -1n, pingpong: 1, linger2: -1, ulp: 1 });
    expect(other.value(0, spec('IP_TTL'))).toBe(64);
    expect(other.value(0, spec('SO_MAX_PACING_RATE'))).toBe('18446744073709551615');
    expect(other.value(0, spec('TCP_QUICKACK'))).toBe(0);
    expect(other.value(0, spec('TCP_LINGER2'))).toBe(-1);
    expect(other.value(0, spec('TCP_ULP'))).toBeUndefined();
    // Unreadable sysctls, a kernel without the pingpong sysctl: getsockopt.
    const blind = pass({}, HZ250, { finTimeout: null, defaultTtl: null, pingpongThreshold: null });
    expect(blind.value(0, spec('IP_TTL'))).toBeUndefined();
    expect(blind.value(0, spec('TCP_LINGER2'))).toBeUndefined();
    expect(blind.value(0, spec('TCP_QUICKACK'))).toBeUndefined();
    const older = new BpfPass(records({}), { ...facts(HZ250), pingpongSysctl: false }, SYSCTLS);
    expect(older.value(0, spec('TCP_QUICKACK'))).toBeUndefined();
  });

  it('tells the timestamp options apart as sk_getsockopt does', () => {
    const ts = (flags: bigint) => {
      const p = pass({ flags });
      return [p.value(0, spec('SO_TIMESTAMP')), p.value(0, spec('SO_TIMESTAMPNS'))];
    };
    const bit = (n: number) => 1n << BigInt(n);
    expect(ts(0n)).toEqual([0, 0]);
    expect(ts(bit(FLAG.receiveTimestamp))).toEqual([1, 0]);
    expect(ts(bit(FLAG.receiveTimestamp) | bit(FLAG.receiveTimestampNs))).toEqual([0, 1]);
    // Set through the _NEW options: neither old one reads it.
    expect(ts(bit(FLAG.receiveTimestamp) | bit(FLAG.timestampNew))).toEqual([0, 0]);
    expect(ts(bit(FLAG.receiveTimestampNs) | bit(FLAG.timestampNew))).toEqual([0, 0]);
    // A kernel without SOCK_TSTAMP_NEW (before 5.1): getsockopt.
    const old = new BpfPass(records({}), facts(HZ250, { timestampNew: null }), SYSCTLS);
    expect(old.value(0, spec('SO_TIMESTAMP'))).toBeUndefined();
  });

  it('leaves to getsockopt the options whose fields this kernel lacks', () => {
    const sparse = Object.fromEntries(
      Object.entries(places).filter(([name]) => !['sk_ll_usec', 'tcp_tx_delay', 'uc_ttl'].includes(name)),
    );
    const thin = prepareTcpProgram(btfWith(sparse), names).layout;
    expect(Object.keys(thin.fields)).not.toContain('busyPollUsec');
    const p = new BpfPass(records({}, thin), facts(HZ250), SYSCTLS);
    expect(p.value(0, spec('SO_BUSY_POLL'))).toBeUndefined();
    expect(p.value(0, spec('TCP_TX_DELAY'))).toBeUndefined();
    expect(p.value(0, spec('IP_TTL'))).toBeUndefined();
    expect(p.value(0, spec('IP_MINTTL'))).toBe(0);
    // Only the fields of the options asked for are copied.
    const few = prepareTcpProgram(fakeBtf, names, new Set(['SO_LINGER'])).layout;
    expect(Object.keys(few.fields).sort()).toEqual(['flags', 'lingerTime']);
  });

  it("reads an IPv6 socket's IPv6 options, and leaves them where the socket has no ipv6_pinfo", () => {
    const ipv6 = ['IPV6_V6ONLY', 'IPV6_RECVERR', 'IPV6_MTU_DISCOVER', 'IPV6_UNICAST_HOPS'];
    const valuesOf = (p: BpfPass) => ipv6.map((name) => p.value(0, spec(name)));
    const v6 = { ipv6Info: 1, v6only: 1, inetFlags: 1n << 26n, pmtuDiscovery6: 3 };
    expect(valuesOf(new BpfPass(records(v6, layout, 50), facts(HZ250), SYSCTLS))).toEqual([1, 1, 3, 50]);
    // Other bits of inet_flags are not IPV6_RECVERR; a hop limit the program could not
    // work out (its probe read failed) is left to getsockopt.
    const quiet = { ...v6, v6only: 0, inetFlags: (1n << 9n) | (1n << 25n) | (1n << 27n), pmtuDiscovery6: 0 };
    expect(valuesOf(new BpfPass(records(quiet), facts(HZ250), SYSCTLS))).toEqual([0, 0, 0, undefined]);
    // No ipv6_pinfo (the program read nothing through the pointer): getsockopt.
    const none = new BpfPass(records({ ipv6Info: 0 }), facts(HZ250), SYSCTLS);
    expect(none.value(0, spec('IPV6_MTU_DISCOVER'))).toBeUndefined();
    // A kernel before INET_FLAGS_RECVERR6 (6.6): getsockopt.
    const older = new BpfPass(records(v6), { ...facts(HZ250), recverr6Bit: null }, SYSCTLS);
    expect(older.value(0, spec('IPV6_RECVERR'))).toBeUndefined();
  });

  it('works out IPV6_UNICAST_HOPS only with every place it needs, and kernel reads allowed', () => {
    expect(layout.hopLimit?.places.hopLimit).toEqual({ offset: 32, size: 2 });
    const locked = prepareTcpProgram(fakeBtf, names, undefined, false).layout;
    expect(locked.hopLimit).toBeUndefined();
    expect(
      new BpfPass(records({ ipv6Info: 1 }, locked), facts(HZ250), SYSCTLS).value(
        0,
        spec('IPV6_UNICAST_HOPS'),
      ),
    ).toBeUndefined();
    const { ip6_ptr: _gone, ...noDevice } = places;
    expect(prepareTcpProgram(btfWith(noDevice), names, undefined, true).layout.hopLimit).toBeUndefined();
    // Without pinet6 neither it nor the fields read through the pointer.
    const { pinet6: _none, ...noInfo } = places;
    const bare = prepareTcpProgram(btfWith(noInfo), names, undefined, true).layout;
    expect(bare.hopLimit).toBeUndefined();
    expect(bare.fields.pmtuDiscovery6).toBeUndefined();
    expect(bare.fields.v6only).toBeDefined();
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

    const withRead = prepareTcpProgram(Btf.kernel(), BPF_READABLE_TCP_OPTIONS, undefined, true);
    it.skipIf(!withRead.layout.hopLimit)(
      "the options program's one kernel read goes to its own stack, 4 bytes (skipped where this kernel's types lack a place the hop limit needs)",
      () => {
        const { program, layout } = withRead;
        if (!layout.hopLimit) throw new Error('unreachable: skipped above');
        const at = (i: number) => ({
          opcode: program[i * 8] as number,
          dst: (program[i * 8 + 1] as number) & 0x0f,
          src: (program[i * 8 + 1] as number) >> 4,
          immediate: Buffer.from(program.buffer, program.byteOffset + i * 8 + 4, 4).readInt32LE(0),
        });
        const calls: number[] = [];
        for (let i = 0; i < program.length / 8; i++)
          if (at(i).opcode === 0x85 && at(i).immediate === Helper.probeReadKernel) calls.push(i);
        expect(calls.length).toBe(1);
        const call = calls[0] as number;
        // r1 = r10; r1 += (the hop limit's slot, below the frame); r2 = 4; call.
        expect(at(call - 3)).toMatchObject({ opcode: 0xbf, dst: 1, src: 10 });
        expect(at(call - 2)).toMatchObject({
          opcode: 0x07,
          dst: 1,
          immediate: layout.hopLimit.at - layout.size,
        });
        expect(at(call - 1)).toMatchObject({ opcode: 0xb7, dst: 2, immediate: 4 });
      },
    );

    it('the options program writes whether icsk_ulp_ops is set, never the pointer', () => {
      const { program, layout } = prepareTcpProgram(Btf.kernel(), BPF_READABLE_TCP_OPTIONS);
      const ulp = layout.fields.ulp;
      expect(ulp?.width).toBe(1);
      const words = (at: number) => ({
        opcode: program[at] as number,
        dst: (program[at + 1] as number) & 0x0f,
        src: (program[at + 1] as number) >> 4,
        offset: Buffer.from(program.buffer, program.byteOffset + at + 2, 2).readInt16LE(0),
      });
      let load = -1;
      for (let at = 0; at < program.length; at += 8) {
        const i = words(at);
        if (i.opcode === 0x79 && i.src === 8 && i.offset === ulp?.source) load = at;
      }
      expect(load).toBeGreaterThanOrEqual(0);
      // mov r2, 0; if r1 == 0 skip; mov r2, 1; then one byte of r2 stored.
      const next = [8, 16, 24, 32].map((d) => words(load + d));
      expect(next.map((i) => i.opcode)).toEqual([0xb7, 0x15, 0xb7, 0x73]);
      expect(next[3]?.src).toBe(2);
    });
  },
);

describe.skipIf(!existsSync(KERNEL_BTF) || !mayLoadBpf())(
  'a kernel that refuses the kernel read (skipped without kernel BTF or the privilege to load BPF)',
  () => {
    const hopLimitPossible =
      existsSync(KERNEL_BTF) &&
      prepareTcpProgram(Btf.kernel(), BPF_READABLE_TCP_OPTIONS, undefined, true).layout.hopLimit !==
        undefined;
    afterEach(() => {
      forgetKernelReadRefusal();
    });

    it.skipIf(!hopLimitPossible || !kernelReadsAllowed())(
      'gets a program without it, once, rather than losing the pass (skipped where no program reads it)',
      () => {
        const layouts: boolean[] = [];
        const outcome = withProgram(undefined, (ready) => {
          layouts.push(ready.program.layout.hopLimit !== undefined);
          if (ready.program.layout.hopLimit)
            throw new BpfError(
              'BPF_PROG_LOAD',
              EINVAL,
              'program of this type cannot use helper bpf_probe_read_kernel#113',
            );
          return 'loaded';
        });
        expect(outcome).toBe('loaded');
        expect(layouts).toEqual([true, false]);
      },
    );

    it('retries for nothing else, and keeps the first refusal when the retry fails too', () => {
      const calls: string[] = [];
      const verifier = withProgram(undefined, () => {
        calls.push('load');
        throw new BpfError('BPF_PROG_LOAD', EINVAL, 'R1 invalid mem access');
      });
      expect(verifier).toBeInstanceOf(BpfError);
      const interrupted = withProgram(undefined, () => {
        calls.push('load');
        throw new BpfError('BPF_PROG_LOAD', EAGAIN);
      });
      expect((interrupted as BpfError).code).toBe('EAGAIN');
      const link = withProgram(undefined, () => {
        calls.push('link');
        throw new BpfError('BPF_LINK_CREATE', EINVAL);
      });
      expect(link).toBeInstanceOf(BpfError);
      expect(calls).toEqual(['load', 'load', 'link']);
      // Refused for the read, and then refused again: the first refusal is the answer.
      const both = withProgram(undefined, (ready) => {
        throw new BpfError(
          'BPF_PROG_LOAD',
          EINVAL,
          ready.program.layout.hopLimit ? 'unknown func bpf_probe_read_kernel#113' : 'second',
        );
      });
      if (hopLimitPossible && kernelReadsAllowed()) expect((both as BpfError).verifierLog).toMatch(/#113/);
    });
  },
);
