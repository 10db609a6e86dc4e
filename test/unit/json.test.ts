import { describe, expect, it } from 'vitest';
import type { SocketRecord } from '../../src/model.js';
import { renderJson, stringifyJson, toJsonSocket } from '../../src/render/json.js';
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

  it('writes a record made by hand without options as JSON.stringify would, leaving the key out', () => {
    const bare = socket({});
    delete (bare as Partial<SocketRecord>).options;
    const line = [...renderJson([bare])].join('').split('\n')[0];
    expect(line).toBe(`[${stringifyJson(toJsonSocket(bare))}`);
    expect(line).not.toContain('"options"');
  });
});
