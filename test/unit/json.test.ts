import { describe, expect, it } from 'vitest';
import { stringifyJson } from '../../src/render/json.js';

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
