/**
 * Hostile process names: a process may call itself anything that fits in 15 bytes of
 * /proc/PID/comm, terminal escape sequences, line breaks and invalid UTF-8 included.
 * knetstat's text output must stay inert (no control character reaches the terminal,
 * every row stays one line) and its JSON must stay valid and carry the name as the
 * kernel has it.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonSocket as JsonRow } from '../../src/render/json.js';
import { CLI, netnsUnavailableReason, SocketChild } from '../helpers/netns.js';

const skip = netnsUnavailableReason();

interface HostileName {
  label: string;
  bytes: number[];
  /** What the text output must show of it, escaped. */
  shown: string;
}

const bytes = (s: string) => [...Buffer.from(s, 'latin1')];

const NAMES: HostileName[] = [
  { label: 'SGR colour escape', bytes: bytes('\x1b[31mRED\x1b[0m'), shown: '\\x1b[31mRED\\x1b[0m' },
  { label: 'OSC window title', bytes: bytes('\x1b]0;owned\x07'), shown: '\\x1b]0;owned\\x07' },
  { label: 'line feed and carriage return', bytes: bytes('a\nFAKE\rb'), shown: 'a\\x0aFAKE\\x0db' },
  { label: 'tab, backspace, DEL', bytes: bytes('x\t\b\x7fy'), shown: 'x\\x09\\x08\\x7fy' },
  { label: 'invalid UTF-8', bytes: [0xff, 0xfe, 0x80, 0x62, 0x61, 0x64], shown: 'bad' },
  { label: 'raw 8-bit CSI', bytes: [0x9b, 0x33, 0x31, 0x6d, 0x78], shown: '31mx' },
  { label: 'UTF-8 encoded C1 CSI', bytes: [0xc2, 0x9b, 0x33, 0x31, 0x6d], shown: '\\x9b31m' },
  { label: 'a backslash', bytes: bytes('\\x1b'), shown: '\\\\x1b' },
];

/** Control characters: C0, DEL and C1 (U+0080–U+009F). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

function strictUtf8(buffer: Buffer): string {
  return new TextDecoder('utf-8', { fatal: true }).decode(buffer);
}

describe.skipIf(skip !== null)(`hostile process names${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  let inode: number;
  let port: number;

  beforeAll(async () => {
    child = await SocketChild.start();
    const listener = await child.run<{ inode: number; local: [string, number] }>({
      op: 'listen',
      id: 'L',
      options: [[1, 9, 1]], // SO_KEEPALIVE, so the Options column is not empty
    });
    inode = listener.inode;
    port = listener.local[1];
  });

  afterAll(async () => {
    await child?.stop();
  });

  for (const name of NAMES) {
    describe(name.label, () => {
      let text: { stdout: Buffer; stderr: string; status: number | null };
      let json: { stdout: Buffer; status: number | null };

      beforeAll(async () => {
        await child.run({ op: 'rename', bytes: name.bytes });
        // Bytes, not strings: a lenient decode here could hide invalid UTF-8 in the output.
        const run = (args: string[]) => {
          const r = spawnSync('nsenter', ['-t', String(child.pid), '-n', process.execPath, CLI, ...args]);
          return { stdout: r.stdout, stderr: r.stderr.toString('utf8'), status: r.status };
        };
        text = run(['-p', '-o', 'all']);
        json = run(['--json']);
      });

      it('text output: no control character but the line ends, every row on one line', () => {
        expect(text.status).toBe(0);
        expect(text.stderr).toBe('');
        const output = strictUtf8(text.stdout);
        expect(output.endsWith('\n')).toBe(true);
        const lines = output.slice(0, -1).split('\n');
        for (const line of lines) expect(line).not.toMatch(CONTROL);
        // Four headers and the one listener: a name cannot add or split a line.
        expect(lines).toHaveLength(5);
        const row = lines.find((l) => l.includes(`127.0.0.1:${port} `));
        expect(row).toContain(`${child.pid}/`);
        expect(row).toContain(name.shown);
        expect(row).toContain('SO_KEEPALIVE=1');
      });

      it('JSON stays valid, round-trips, and carries the name as the kernel has it', () => {
        expect(json.status).toBe(0);
        const output = strictUtf8(json.stdout);
        // JSON escapes C0 itself; only the newline between records may appear raw.
        // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
        expect(output.replaceAll('\n', '')).not.toMatch(/[\u0000-\u001f]/);
        const rows = JSON.parse(output) as JsonRow[];
        expect(JSON.parse(JSON.stringify(rows))).toEqual(rows);
        const row = rows.find((r) => r.inode === inode);
        // /proc/PID/comm decoded as UTF-8, an invalid byte as U+FFFD.
        expect(row?.processes).toEqual([
          { pid: child.pid, fd: expect.any(Number), command: Buffer.from(name.bytes).toString('utf8') },
        ]);
      });
    });
  }
});
