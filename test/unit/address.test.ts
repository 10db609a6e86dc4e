import { describe, expect, it } from 'vitest';
import { formatEndpoint, formatIPv6 } from '../../src/address.js';

function v6(text: string): Uint8Array {
  // Test-side expansion of a full 8-group address.
  const bytes = new Uint8Array(16);
  text.split(':').forEach((group, i) => {
    const value = Number.parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  return bytes;
}

describe('formatIPv6 (%pI6c)', () => {
  it.each([
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:3:4:5:6'],
    ['0:0:0:0:0:ffff:c000:280', '::ffff:192.0.2.128'],
    ['fe80:0:0:0:0:5efe:c000:201', 'fe80::5efe:192.0.2.1'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
  ])('%s → %s', (full, expected) => {
    expect(formatIPv6(v6(full))).toBe(expected);
  });
});

describe('formatEndpoint', () => {
  it('shows port 0 as *', () => {
    expect(formatEndpoint('0.0.0.0', 0)).toBe('0.0.0.0:*');
    expect(formatEndpoint('::1', 443)).toBe('::1:443');
  });
});
