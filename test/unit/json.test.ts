import { describe, expect, it } from 'vitest';
import type { SocketRecord } from '../../src/model.js';
import { ChunkBytes } from '../../src/render/chunks.js';
import { renderJson, stringifyJson, toJsonSocket, writeJsonSockets } from '../../src/render/json.js';
import { socketRecord } from '../helpers/records.js';

describe('stringifyJson', () => {
  it('escapes C0 and C1 control characters, and round-trips', () => {
    const name = 'a\u007f\u001b[2Jb\u009b31mc\u0085d\ne';
    const text = stringifyJson({ command: name });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
    expect(text).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(JSON.parse(text)).toEqual({ command: name });
  });

  it.each([
    ['DEL in ASCII text', 'a\u007fb', 'a\\u007fb'],
    ['C1 among other non-ASCII text', 'é\u0085✓', 'é\\u0085✓'],
    ['the last C1 character next to the first non-C1 one', '\u009f\u00a0', '\\u009f\u00a0'],
  ])('escapes %s', (_, command, escaped) => {
    expect(stringifyJson({ command })).toBe(`{"command":"${escaped}"}`);
  });

  it('leaves other text as JSON.stringify writes it', () => {
    const value = { a: 'é ü ✓ 🙂', b: [1, null, 'x'] };
    expect(stringifyJson(value)).toBe(JSON.stringify(value));
  });
});

describe('renderJson', () => {
  const socket = (over: Partial<SocketRecord>): SocketRecord =>
    socketRecord({
      local: { address: '127.0.0.1', port: 5000 },
      remote: { address: '127.0.0.1', port: 40000 },
      inode: 7,
      cookie: '9',
      processes: [{ pid: 1, fd: 3, command: 'srv\u009b' }],
      options: null,
      ...over,
    });

  it("writes each socket as stringifyJson(toJsonSocket(socket)), a shared options object's part once", () => {
    const shared = Object.freeze({ SO_KEEPALIVE: 1, TCP_CONGESTION: 'cubic\u007f', SO_LINGER: null });
    const sockets = [
      socket({ options: shared }),
      socket({ inode: 8, options: shared }),
      socket({ inode: 9, options: { SO_KEEPALIVE: 0 } }),
      socket({ inode: 10, options: null, optionsError: 'no visible owner' }),
      socket({ inode: 11, options: shared, optionsError: 'stale' }),
    ];
    const lines = [...renderJson(sockets)].join('').split('\n');
    expect(lines).toEqual([
      ...sockets.map((s, i) => `${i === 0 ? '[' : ','}${stringifyJson(toJsonSocket(s))}`),
      ']',
      '',
    ]);
    expect(lines[0]).toContain('"TCP_CONGESTION":"cubic\\u007f"');
  });

  it('writes sockets of every kind, owners and text exactly as stringifyJson(toJsonSocket(socket))', () => {
    const sockets = [
      socket({ protocol: 'udp', family: 6, state: 'UNCONN', diag: '', local: { address: '::', port: 53 } }),
      socket({ state: 'LISTEN', diag: '', processes: [] }),
      socket({ diag: '>|<', sendQ: 4_294_967_295, recvQ: 65_536, uid: 1000, inode: 2 ** 40 }),
      socket({
        state: 'TIME_WAIT',
        diag: null,
        processes: [],
        options: null,
        optionsError: 'TIME_WAIT\u2028',
      }),
      socket({
        processes: [
          { pid: 1, fd: 3, command: 'a"b\\c\n' },
          { pid: 2_000_000, fd: 0, command: 'dæmon ✓ 🙂\u0085' },
        ],
        options: { SO_LINGER: null, TCP_CONGESTION: 'bbr', TCP_KEEPIDLE: 7200, SO_TXTIME: '0/0' },
      }),
      socket({
        local: { address: 'fe80::1%eth0', port: 0 },
        remote: { address: '::ffff:10.0.0.1', port: 65_535 },
      }),
    ];
    const text = [...renderJson(sockets)].join('');
    expect(text.split('\n')).toEqual([
      ...sockets.map((s, i) => `${i === 0 ? '[' : ','}${stringifyJson(toJsonSocket(s))}`),
      ']',
      '',
    ]);
    expect(JSON.parse(text)).toEqual(sockets.map((s) => JSON.parse(stringifyJson(toJsonSocket(s)))));
  });

  it('writes the same past the number of texts it keeps (more distinct addresses and options than that)', () => {
    const sockets = Array.from({ length: 5000 }, (_, i) =>
      socket({
        remote: { address: `10.0.${i >> 8}.${i & 255}`, port: i },
        options: { SO_RCVBUF: i },
        processes: [{ pid: i + 1, fd: 3, command: `c${i}` }],
      }),
    );
    const lines = [...renderJson(sockets)].join('').split('\n');
    expect(lines.length).toBe(5002);
    sockets.forEach((s, i) => {
      expect(lines[i]).toBe(`${i === 0 ? '[' : ','}${stringifyJson(toJsonSocket(s))}`);
    });
  });

  it('yields whenever its chunk is full, each chunk ending with a socket', () => {
    const sockets = Array.from({ length: 50 }, (_, i) => socket({ inode: i + 1 }));
    const chunk = new ChunkBytes(1000);
    const chunks: string[] = [];
    for (const _ of writeJsonSockets(sockets, chunk)) {
      expect(chunk.full).toBe(true);
      chunks.push(Buffer.from(chunk.take()).toString());
    }
    chunks.push(Buffer.from(chunk.take()).toString());
    expect(chunks.length).toBeGreaterThan(3);
    for (const piece of chunks) expect(piece.endsWith('\n')).toBe(true);
    expect(chunks.join('')).toBe([...renderJson(sockets)].join(''));
  });

  it('writes a record made by hand without options as JSON.stringify would, leaving the key out', () => {
    const bare = socket({});
    delete (bare as Partial<SocketRecord>).options;
    const line = [...renderJson([bare])].join('').split('\n')[0];
    expect(line).toBe(`[${stringifyJson(toJsonSocket(bare))}`);
    expect(line).not.toContain('"options"');
  });
});
