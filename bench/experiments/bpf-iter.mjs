// Experiment for issue 5 (not part of knetstat): can a BPF iterator read the options
// that bpf_getsockopt(2)-from-BPF supports for every TCP socket of the namespace in one
// read(2) loop, instead of pidfd_getfd + one getsockopt per option per socket? It loads
// a hand-assembled iter/tcp program through bpf(2) from Node (no clang, no libbpf),
// times it, then collects the same options with knetstat's library and compares them
// socket by socket (by sock_diag cookie). Needs root (CAP_BPF + CAP_PERFMON) and kernel
// BTF. Run it in the namespace to measure, e.g.
//   nsenter -t PID -n node bench/experiments/bpf-iter.mjs
// It imports koffi itself, unlike the product, where only src/sys/libc.ts does: it is a
// measurement, and the product has no use for bpf(2) until the design says so.
import { closeSync, readFileSync, readSync } from 'node:fs';
import koffi from 'koffi';
import { collectSockets } from '../../dist/index.js';

const libc = koffi.load(null);
const SYS_bpf = process.arch === 'x64' ? 321 : 280;
const bpf = libc.func('long syscall(long number, long command, void *attr, long size)');

/** The BTF type id of the FUNC `name` in the kernel's BTF. */
function btfFunctionId(name) {
  const btf = readFileSync('/sys/kernel/btf/vmlinux');
  const headerLength = btf.readUInt32LE(4);
  const types = headerLength + btf.readUInt32LE(8);
  const typesEnd = types + btf.readUInt32LE(12);
  const strings = headerLength + btf.readUInt32LE(16);
  // The name's offset in the string section, then a scan comparing integers.
  const at = btf.indexOf(Buffer.from(`\0${name}\0`), strings);
  if (at < 0) throw new Error(`no ${name} in the kernel's BTF`);
  const nameOffset = at + 1 - strings;
  const extra = { 1: 4, 14: 4, 17: 4, 3: 12 };
  const perMember = { 4: 12, 5: 12, 15: 12, 19: 12, 6: 8, 13: 8 };
  for (let p = types, id = 1; p < typesEnd; id++) {
    const info = btf.readUInt32LE(p + 4);
    const kind = (info >>> 24) & 0x1f;
    if (kind === 12 && btf.readUInt32LE(p) === nameOffset) return id;
    p += 12 + (extra[kind] ?? 0) + (perMember[kind] ?? 0) * (info & 0xffff);
  }
  throw new Error(`no FUNC ${name} in the kernel's BTF`);
}

// [level, optname, knetstat's name]: options bpf_getsockopt answers on Linux 6.18.
const OPTIONS = [
  [6, 1, 'TCP_NODELAY'],
  [6, 2, 'TCP_MAXSEG'],
  [6, 4, 'TCP_KEEPIDLE'],
  [6, 5, 'TCP_KEEPINTVL'],
  [6, 6, 'TCP_KEEPCNT'],
  [6, 7, 'TCP_SYNCNT'],
  [6, 10, 'TCP_WINDOW_CLAMP'],
  [6, 18, 'TCP_USER_TIMEOUT'],
  [6, 25, 'TCP_NOTSENT_LOWAT'],
  [1, 2, 'SO_REUSEADDR'],
  [1, 15, 'SO_REUSEPORT'],
  [1, 9, 'SO_KEEPALIVE'],
  [1, 8, 'SO_RCVBUF'],
  [1, 7, 'SO_SNDBUF'],
  [1, 36, 'SO_MARK'],
  [0, 1, 'IP_TOS'],
  // Asked only to show what bpf_getsockopt refuses of what the text listing needs: these
  // remain for getsockopt, or would have to be read from the socket's fields.
  [1, 20, 'SO_RCVTIMEO', 'probe'],
  [1, 21, 'SO_SNDTIMEO', 'probe'],
  [1, 13, 'SO_LINGER', 'probe'],
  [1, 72, 'SO_BUF_LOCK', 'probe'],
  [6, 9, 'TCP_DEFER_ACCEPT', 'probe'],
  [6, 23, 'TCP_FASTOPEN', 'probe'],
];
const N = OPTIONS.length;
// A record: the cookie, N values, N results of bpf_getsockopt.
const RECORD = 8 + 8 * N;

function assemble() {
  const insns = [];
  const op = (code, dst, src, off, imm) => insns.push([code, dst | (src << 4), off, imm]);
  const jumpIfZero = (reg) => {
    op(0x15, reg, 0, 0, 0);
    return insns.length - 1;
  };
  op(0xbf, 6, 1, 0, 0); // r6 = ctx
  op(0x79, 7, 6, 0, 0); // r7 = ctx->meta
  op(0x79, 1, 6, 8, 0); // r1 = ctx->sk_common
  const noSocket = jumpIfZero(1);
  op(0x85, 0, 0, 0, 137); // bpf_skc_to_tcp_sock
  const notFull = jumpIfZero(0);
  op(0xbf, 8, 0, 0, 0); // r8 = the tcp_sock
  for (let off = -RECORD; off < 0; off += 8) op(0x7a, 10, 0, off, 0); // zero the record
  op(0xbf, 1, 8, 0, 0);
  op(0x85, 0, 0, 0, 46); // bpf_get_socket_cookie
  op(0x7b, 10, 0, -RECORD, 0);
  OPTIONS.forEach(([level, name], i) => {
    op(0xbf, 1, 8, 0, 0);
    op(0xb7, 2, 0, 0, level);
    op(0xb7, 3, 0, 0, name);
    op(0xbf, 4, 10, 0, 0);
    op(0x07, 4, 0, 0, -RECORD + 8 + 4 * i);
    op(0xb7, 5, 0, 0, 4);
    op(0x85, 0, 0, 0, 57); // bpf_getsockopt
    op(0x63, 10, 0, -RECORD + 8 + 4 * N + 4 * i, 0);
  });
  op(0x79, 1, 7, 0, 0); // meta->seq
  op(0xbf, 2, 10, 0, 0);
  op(0x07, 2, 0, 0, -RECORD);
  op(0xb7, 3, 0, 0, RECORD);
  op(0x85, 0, 0, 0, 127); // bpf_seq_write
  const end = insns.length;
  op(0xb7, 0, 0, 0, 0);
  op(0x95, 0, 0, 0, 0);
  for (const jump of [noSocket, notFull]) insns[jump][2] = end - jump - 1;
  const code = Buffer.alloc(insns.length * 8);
  insns.forEach(([c, regs, off, imm], i) => {
    code.writeUInt8(c, i * 8);
    code.writeUInt8(regs, i * 8 + 1);
    code.writeInt16LE(off, i * 8 + 2);
    code.writeInt32LE(imm, i * 8 + 4);
  });
  return { code, count: insns.length };
}

function bpfCommand(command, attr, what) {
  const fd = Number(bpf(SYS_bpf, command, attr, attr.length));
  if (fd < 0) throw new Error(`${what}: errno ${koffi.errno()}`);
  return fd;
}

const t0 = performance.now();
const iterTcp = btfFunctionId('bpf_iter_tcp');
const t1 = performance.now();
const { code, count } = assemble();
const license = Buffer.from('GPL\0');
const log = Buffer.alloc(1 << 20);
const load = Buffer.alloc(128);
load.writeUInt32LE(26, 0); // BPF_PROG_TYPE_TRACING
load.writeUInt32LE(count, 4);
load.writeBigUInt64LE(koffi.address(code), 8);
load.writeBigUInt64LE(koffi.address(license), 16);
load.writeUInt32LE(1, 24); // log_level
load.writeUInt32LE(log.length, 28);
load.writeBigUInt64LE(koffi.address(log), 32);
load.write('knetstat_tcp', 48);
load.writeUInt32LE(28, 68); // BPF_TRACE_ITER
load.writeUInt32LE(iterTcp, 108);
let program;
try {
  program = bpfCommand(5, load, 'BPF_PROG_LOAD');
} catch (error) {
  console.error(log.toString('utf8', 0, log.indexOf(0)).slice(-2000));
  throw error;
}
const linkAttr = Buffer.alloc(64);
linkAttr.writeUInt32LE(program, 0);
linkAttr.writeUInt32LE(28, 8);
const link = bpfCommand(28, linkAttr, 'BPF_LINK_CREATE');
const iterAttr = Buffer.alloc(16);
iterAttr.writeUInt32LE(link, 0);
const iter = bpfCommand(33, iterAttr, 'BPF_ITER_CREATE');
const t2 = performance.now();
const chunk = Buffer.allocUnsafe(1 << 20);
const parts = [];
for (;;) {
  const n = readSync(iter, chunk, 0, chunk.length, null);
  if (n === 0) break;
  parts.push(Buffer.from(chunk.subarray(0, n)));
}
const t3 = performance.now();
for (const fd of [iter, link, program]) closeSync(fd);
const records = Buffer.concat(parts);
const byCookie = new Map();
for (let at = 0; at + RECORD <= records.length; at += RECORD)
  byCookie.set(records.readBigUInt64LE(at).toString(), at);
console.log(
  `BTF lookup ${(t1 - t0).toFixed(1)} ms, load ${(t2 - t1).toFixed(1)} ms (${count} instructions), ` +
    `read ${(t3 - t2).toFixed(1)} ms: ${byCookie.size} TCP sockets × ${N} options`,
);

// The same options, read knetstat's way.
const t4 = performance.now();
const collection = collectSockets({
  tables: ['tcp', 'tcp6'],
  options: new Set(OPTIONS.filter((o) => o[3] !== 'probe').map((o) => o[2])),
});
const t5 = performance.now();
let compared = 0;
let missing = 0;
const differ = new Map();
const refused = new Map();
for (const socket of collection.sockets) {
  if (!socket.options || socket.cookie === null) continue;
  const at = byCookie.get(socket.cookie);
  if (at === undefined) {
    missing++;
    continue;
  }
  OPTIONS.forEach(([, , name, probe], i) => {
    if (probe) return;
    const value = socket.options[name];
    if (typeof value !== 'number') return;
    if (records.readInt32LE(at + 8 + 4 * N + 4 * i) !== 0) {
      refused.set(name, (refused.get(name) ?? 0) + 1);
      return;
    }
    compared++;
    if (records.readInt32LE(at + 8 + 4 * i) !== value) differ.set(name, (differ.get(name) ?? 0) + 1);
  });
}
const answers = OPTIONS.filter((o) => o[3] === 'probe').map(([, , name]) => {
  const i = OPTIONS.findIndex((o) => o[2] === name);
  const results = new Map();
  for (const at of byCookie.values()) {
    const result = records.readInt32LE(at + 8 + 4 * N + 4 * i);
    results.set(result, (results.get(result) ?? 0) + 1);
  }
  return `${name} ${[...results].map(([r, n]) => `${r === 0 ? 'read' : `error ${-r}`} ×${n}`).join(', ')}`;
});
console.log(`bpf_getsockopt on the rest: ${answers.join('; ')}`);
console.log(
  `knetstat's getsockopt reads of the same options: ${(t5 - t4).toFixed(0)} ms for ${collection.sockets.length} sockets`,
);
console.log(
  `compared ${compared} values: ${differ.size === 0 ? 'all equal' : `differing ${JSON.stringify([...differ])}`}; ` +
    `sockets knetstat read that the iterator did not list: ${missing}; ` +
    `refused by bpf_getsockopt: ${refused.size === 0 ? 'none' : JSON.stringify([...refused])}`,
);
