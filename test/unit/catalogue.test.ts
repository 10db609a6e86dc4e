import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  FORBIDDEN_OPTIONS,
  KNETSTAT_OPTION_NAMES,
  OPTION_CATALOGUE,
  optionsFor,
} from '../../src/options/catalogue.js';
import { MAX_OPTIONS_PER_SOCKET, SpecLists } from '../../src/options/jobs.js';

describe('the option catalogue', () => {
  it('holds no option whose read has a side effect or returns a secret', () => {
    for (const [name, level, optname] of FORBIDDEN_OPTIONS) {
      const hit = OPTION_CATALOGUE.find((o) => o.level === level && o.optname === optname);
      expect(hit, `${name} (level ${level}, optname ${optname}) must never be read`).toBeUndefined();
      expect(OPTION_CATALOGUE.map((o) => o.name)).not.toContain(name);
    }
    expect(FORBIDDEN_OPTIONS.map(([name]) => name).sort()).toEqual(
      [
        'SO_ERROR',
        'SO_PEERPIDFD',
        'SO_PEERSEC',
        'TCP_AO_GET_KEYS',
        'TCP_FASTOPEN_KEY',
        'TCP_SAVED_SYN',
        'TCP_ZEROCOPY_RECEIVE',
      ].sort(),
    );
  });

  it('names each (level, optname) once', () => {
    const keys = OPTION_CATALOGUE.map((o) => `${o.level}/${o.optname}`);
    expect(new Set(keys).size).toBe(keys.length);
    const names = OPTION_CATALOGUE.map((o) => o.name);
    expect(new Set(names).size).toBe(names.length);
  });

  it("keeps knetstat's set in the module's order", () => {
    expect(KNETSTAT_OPTION_NAMES).toEqual([
      'SO_REUSEADDR',
      'SO_REUSEPORT',
      'SO_KEEPALIVE',
      'TCP_KEEPIDLE',
      'TCP_KEEPCNT',
      'TCP_KEEPINTVL',
      'TCP_USER_TIMEOUT',
      'SO_BUF_LOCK',
      'SO_RCVBUF',
      'SO_SNDBUF',
      'SO_RCVTIMEO',
      'SO_SNDTIMEO',
      'SO_LINGER',
      'TCP_NODELAY',
      'TCP_FASTOPEN',
      'TCP_DEFER_ACCEPT',
      'SO_BROADCAST',
    ]);
  });

  it('contains every option issue 3 asks for', () => {
    const names = new Set(OPTION_CATALOGUE.map((o) => o.name));
    for (const name of [
      'TCP_CONGESTION',
      'TCP_MAXSEG',
      'TCP_CORK',
      'TCP_QUICKACK',
      'TCP_NOTSENT_LOWAT',
      'TCP_WINDOW_CLAMP',
      'TCP_SYNCNT',
      'TCP_LINGER2',
      'TCP_ULP',
      'TCP_THIN_LINEAR_TIMEOUTS',
      'SO_PRIORITY',
      'SO_MARK',
      'SO_BINDTODEVICE',
      'SO_RCVLOWAT',
      'SO_SNDLOWAT',
      'SO_BUSY_POLL',
      'SO_INCOMING_CPU',
      'SO_ZEROCOPY',
      'SO_TIMESTAMP',
      'SO_TIMESTAMPNS',
      'SO_TIMESTAMPING',
      'SO_OOBINLINE',
      'SO_DONTROUTE',
      'SO_TXTIME',
      'IP_TOS',
      'IP_TTL',
      'IP_FREEBIND',
      'IP_TRANSPARENT',
      'IP_BIND_ADDRESS_NO_PORT',
      'IP_RECVERR',
      'IP_MTU_DISCOVER',
      'IP_MULTICAST_TTL',
      'IP_MULTICAST_LOOP',
      'IPV6_V6ONLY',
      'IPV6_TCLASS',
      'IPV6_UNICAST_HOPS',
      'IPV6_RECVERR',
    ]) {
      expect(names.has(name), name).toBe(true);
    }
  });

  it('gives no socket more options than one reader batch holds (a cookie and 63 options)', () => {
    const specs = new SpecLists(undefined);
    for (let key = 0; key < 8; key++) {
      expect(specs.get(key).length).toBeGreaterThan(20);
      expect(specs.get(key).length).toBeLessThanOrEqual(MAX_OPTIONS_PER_SOCKET);
    }
  });

  it('applies TCP options to TCP only, UDP ones to UDP only, and TCP_FASTOPEN to listeners', () => {
    expect(optionsFor('udp', 4, false).map((o) => o.name)).not.toContain('SO_KEEPALIVE');
    expect(optionsFor('tcp', 4, false).map((o) => o.name)).not.toContain('SO_BROADCAST');
    expect(optionsFor('tcp', 4, false).map((o) => o.name)).not.toContain('TCP_FASTOPEN');
    expect(optionsFor('tcp', 6, true).map((o) => o.name)).toContain('TCP_FASTOPEN');
    expect(optionsFor('tcp', 6, false).map((o) => o.name)).toContain('IPV6_V6ONLY');
    expect(optionsFor('tcp', 4, false).map((o) => o.name)).not.toContain('IPV6_V6ONLY');
  });

  it('is documented: the README option table lists every entry', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const option of OPTION_CATALOGUE)
      expect(readme, option.name).toMatch(new RegExp(`\\| \`${option.name}\` +\\|`));
  });
});
