import { describe, expect, it } from 'vitest';
import {
  addressBytes,
  applyFilter,
  checkSatisfiable,
  filtersNothing,
  matchesEndpoint,
  matchesFilter,
  matchesOption,
  NO_FILTER,
  optionsNamedBy,
  parseCommand,
  parseEndpointPattern,
  parseOptionPredicate,
  parsePid,
  parsePort,
  parseState,
  type SocketFilter,
} from '../../src/filter.js';
import type { SocketRecord } from '../../src/model.js';
import { UsageError } from '../../src/sys/errors.js';
import { socketRecord } from '../helpers/records.js';

function socket(fields: Partial<SocketRecord> = {}): SocketRecord {
  return socketRecord({
    processes: [{ pid: 100, fd: 3, command: 'nginx' }],
    options: { SO_KEEPALIVE: 0, TCP_NODELAY: 1, SO_LINGER: null, TCP_CONGESTION: 'cubic' },
    ...fields,
  });
}

function filter(fields: Partial<SocketFilter>): SocketFilter {
  return { ...NO_FILTER, ...fields };
}

describe('parseState', () => {
  it('takes the JSON names in any case, - for _, and the four-letter ones', () => {
    expect(parseState('established')).toEqual(['ESTABLISHED']);
    expect(parseState('Time-Wait')).toEqual(['TIME_WAIT']);
    expect(parseState('LSTN')).toEqual(['LISTEN']);
    expect(parseState('unconn')).toEqual(['UNCONN']);
  });
  it('connected is every state but LISTEN, CLOSE, TIME_WAIT and UNCONN', () => {
    const connected = parseState('connected');
    for (const excluded of ['LISTEN', 'CLOSE', 'TIME_WAIT', 'UNCONN'] as const) {
      expect(connected).not.toContain(excluded);
    }
    expect(connected).toEqual(
      expect.arrayContaining(['ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT1', 'CLOSE_WAIT', 'CLOSING']),
    );
    expect(connected).toHaveLength(8);
  });
  it('rejects anything else, naming it', () => {
    expect(() => parseState('NOPE')).toThrow(/unknown state 'NOPE'/);
    expect(() => parseState('')).toThrow(UsageError);
  });
});

describe('numbers', () => {
  it('ports are 1..65535, decimal only', () => {
    expect(parsePort('443')).toBe(443);
    expect(parsePort('65535')).toBe(65535);
    for (const bad of ['0', '65536', '70000', '-1', '0x50', '8o', '', ' 80']) {
      expect(() => parsePort(bad), bad).toThrow(UsageError);
    }
  });
  it('pids are positive decimal integers', () => {
    expect(parsePid('812')).toBe(812);
    for (const bad of ['abc', '0', '-5', '1.5', '99999999'])
      expect(() => parsePid(bad), bad).toThrow(UsageError);
  });
  it('a command longer than comm can hold is refused', () => {
    expect(parseCommand('nginx')).toBe('nginx');
    expect(parseCommand('exactly15bytes_')).toBe('exactly15bytes_');
    expect(() => parseCommand('sixteen_bytes___')).toThrow(/longer than a process name/);
    expect(() => parseCommand('')).toThrow(UsageError);
  });
});

describe('addresses', () => {
  it('reads IPv4, IPv6 (compressed, embedded IPv4) into 16 bytes, IPv4 as mapped', () => {
    expect([...(addressBytes('1.2.3.4') ?? [])]).toEqual([
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4,
    ]);
    expect(addressBytes('::ffff:1.2.3.4')).toEqual(addressBytes('1.2.3.4'));
    expect([...(addressBytes('::1') ?? [])]).toEqual([...new Array(15).fill(0), 1]);
    expect([...(addressBytes('fe80::1:2') ?? [])].slice(0, 2)).toEqual([0xfe, 0x80]);
    expect(addressBytes('2001:db8:0:0:0:0:0:1')).toEqual(addressBytes('2001:db8::1'));
    for (const bad of [
      '1.2.3',
      '256.1.1.1',
      '1::2::3',
      '12345::',
      'g::1',
      '1:2:3:4:5:6:7:8:9',
      'fe80::1%lo',
    ]) {
      expect(addressBytes(bad), bad).toBeNull();
    }
  });

  it('parses ADDR, ADDR:PORT, CIDR, bracketed IPv6 and :PORT', () => {
    expect(parseEndpointPattern('10.0.0.1', '--local')).toMatchObject({ port: null });
    expect(parseEndpointPattern('10.0.0.0/8:443', '--local')).toMatchObject({
      port: 443,
      network: { prefixLength: 104 },
    });
    expect(parseEndpointPattern('[::1]:443', '--local')).toMatchObject({
      port: 443,
      network: { prefixLength: 128 },
    });
    expect(parseEndpointPattern('[fe80::/10]:22', '--local')).toMatchObject({
      port: 22,
      network: { prefixLength: 10 },
    });
    expect(parseEndpointPattern('::1', '--local')).toMatchObject({ port: null });
    expect(parseEndpointPattern(':22', '--local')).toEqual({ text: ':22', network: null, port: 22 });
    expect(parseEndpointPattern('0.0.0.0:*', '--remote')).toMatchObject({ port: 0 });
  });

  it('refuses bad endpoints, naming the flag and the value', () => {
    for (const bad of [
      '',
      ':',
      '1.2.3.4:',
      '1.2.3.4:0',
      '1.2.3.4:65536',
      '[::1',
      '::1]:80',
      '[]',
      '1.2.3.4/33',
      'x',
    ]) {
      expect(() => parseEndpointPattern(bad, '--remote'), bad).toThrow(`--remote '${bad}'`);
    }
  });

  it('matches networks bit by bit, IPv4 also in its IPv4-mapped form', () => {
    const net = (text: string) => parseEndpointPattern(text, '--local');
    expect(matchesEndpoint('10.1.2.3', 80, net('10.0.0.0/8'))).toBe(true);
    expect(matchesEndpoint('11.1.2.3', 80, net('10.0.0.0/8'))).toBe(false);
    expect(matchesEndpoint('192.168.1.130', 80, net('192.168.1.128/25'))).toBe(true);
    expect(matchesEndpoint('192.168.1.127', 80, net('192.168.1.128/25'))).toBe(false);
    expect(matchesEndpoint('::ffff:10.1.2.3', 80, net('10.0.0.0/8'))).toBe(true);
    expect(matchesEndpoint('fe80::1', 22, net('[fe80::/10]:22'))).toBe(true);
    expect(matchesEndpoint('fe80::1', 23, net('[fe80::/10]:22'))).toBe(false);
    expect(matchesEndpoint('febf::1', 22, net('fe80::/10'))).toBe(true);
    expect(matchesEndpoint('fec0::1', 22, net('fe80::/10'))).toBe(false);
    expect(matchesEndpoint('::', 0, net('::'))).toBe(true);
    expect(matchesEndpoint('0.0.0.0', 0, net('::'))).toBe(false);
    expect(matchesEndpoint('1.2.3.4', 5, net('0.0.0.0/0'))).toBe(true);
    expect(matchesEndpoint('::1', 5, net('0.0.0.0/0'))).toBe(false);
    expect(matchesEndpoint('0.0.0.0', 0, net('0.0.0.0:*'))).toBe(true);
    expect(matchesEndpoint('0.0.0.0', 1, net('0.0.0.0:*'))).toBe(false);
  });
});

describe('--option expressions', () => {
  const options = {
    SO_KEEPALIVE: 0,
    TCP_NODELAY: 1,
    SO_LINGER: null,
    SO_RCVTIMEO: 500,
    TCP_CONGESTION: 'cubic',
    SO_MAX_PACING_RATE: '18446744073709551615',
  };
  const holds = (expression: string) => matchesOption(options, parseOptionPredicate(expression));

  it('NAME: present and non-zero', () => {
    expect(holds('TCP_NODELAY')).toBe(true);
    expect(holds('SO_KEEPALIVE')).toBe(false);
    expect(holds('SO_LINGER')).toBe(false);
    expect(holds('TCP_CONGESTION')).toBe(true);
    expect(holds('SO_REUSEADDR')).toBe(false); // not read: never matches
  });
  it('=, !=, >, <, >=, <= on numbers, names are case-insensitive', () => {
    expect(holds('so_keepalive=0')).toBe(true);
    expect(holds('SO_KEEPALIVE!=0')).toBe(false);
    expect(holds('SO_KEEPALIVE!=1')).toBe(true);
    expect(holds('SO_RCVTIMEO>499')).toBe(true);
    expect(holds('SO_RCVTIMEO>500')).toBe(false);
    expect(holds('SO_RCVTIMEO<501')).toBe(true);
    expect(holds('SO_RCVTIMEO>=500')).toBe(true);
    expect(holds('SO_RCVTIMEO<=499')).toBe(false);
    expect(holds('SO_RCVTIMEO=500ms')).toBe(true); // the text's unit suffix
    expect(holds('SO_REUSEADDR!=1')).toBe(false); // an option not read matches nothing
  });
  it('a u64 beyond 2^53 compares exactly', () => {
    expect(holds('SO_MAX_PACING_RATE=18446744073709551615')).toBe(true);
    expect(holds('SO_MAX_PACING_RATE=18446744073709551614')).toBe(false);
    expect(holds('SO_MAX_PACING_RATE>18446744073709551614')).toBe(true);
  });
  it('SO_LINGER off, and name-valued options with = and !=', () => {
    expect(holds('SO_LINGER=off')).toBe(true);
    expect(holds('SO_LINGER!=off')).toBe(false);
    expect(holds('SO_LINGER=0')).toBe(false);
    expect(matchesOption({ SO_LINGER: 0 }, parseOptionPredicate('SO_LINGER=0s'))).toBe(true);
    expect(holds('TCP_CONGESTION=cubic')).toBe(true);
    expect(holds('TCP_CONGESTION!=bbr')).toBe(true);
    expect(holds('TCP_CONGESTION=bbr')).toBe(false);
  });
  it('refuses what it cannot compare, naming the expression', () => {
    for (const bad of [
      'X==',
      'SO_KEEPALIVE==',
      'SO_KEEPALIVE=',
      'NOPE=1',
      'SO_KEEPALIVE=yes',
      'TCP_CONGESTION>1',
    ]) {
      expect(() => parseOptionPredicate(bad), bad).toThrow(`--option '${bad}'`);
    }
    expect(() => parseOptionPredicate('SO_KEEPALIVE=off')).toThrow(/SO_LINGER only/);
    expect(() => parseOptionPredicate('SO_LINGER>off')).toThrow(/= or != only/);
    expect(() => parseOptionPredicate('SO_RCVTIMEO=5s')).toThrow(/not a number/);
  });
});

describe('matchesFilter', () => {
  it('passes everything with no filter', () => {
    expect(matchesFilter(socket(), NO_FILTER)).toBe(true);
  });
  it('--listening: TCP LISTEN and UDP UNCONN', () => {
    const f = filter({ listening: true });
    expect(matchesFilter(socket({ state: 'LISTEN' }), f)).toBe(true);
    expect(matchesFilter(socket({ protocol: 'udp', state: 'UNCONN' }), f)).toBe(true);
    expect(matchesFilter(socket({ protocol: 'udp', state: 'ESTABLISHED' }), f)).toBe(false);
    expect(matchesFilter(socket(), f)).toBe(false);
  });
  it('repeated values of one flag are ORed', () => {
    expect(matchesFilter(socket(), filter({ states: ['LISTEN', 'ESTABLISHED'] }))).toBe(true);
    expect(matchesFilter(socket(), filter({ ports: [1, 8080] }))).toBe(true);
    expect(matchesFilter(socket(), filter({ ports: [1, 2] }))).toBe(false);
    expect(matchesFilter(socket(), filter({ pids: [1, 100] }))).toBe(true);
    expect(matchesFilter(socket(), filter({ commands: ['sshd', 'nginx'] }))).toBe(true);
    expect(matchesFilter(socket(), filter({ commands: ['nginx:'] }))).toBe(false);
  });
  it('--port matches either end', () => {
    expect(matchesFilter(socket(), filter({ ports: [40000] }))).toBe(true);
    expect(matchesFilter(socket(), filter({ ports: [8080] }))).toBe(true);
  });
  it('--pid and --command look at every owner', () => {
    const shared = socket({
      processes: [
        { pid: 100, fd: 3, command: 'nginx' },
        { pid: 101, fd: 3, command: 'worker' },
      ],
    });
    expect(matchesFilter(shared, filter({ pids: [101] }))).toBe(true);
    expect(matchesFilter(shared, filter({ commands: ['worker'] }))).toBe(true);
    expect(matchesFilter(socket({ processes: [] }), filter({ pids: [100] }))).toBe(false);
  });
  it('--option expressions must all hold; unknown options match none', () => {
    const both = filter({
      options: [parseOptionPredicate('SO_KEEPALIVE=0'), parseOptionPredicate('TCP_NODELAY')],
    });
    expect(matchesFilter(socket(), both)).toBe(true);
    expect(matchesFilter(socket({ options: { SO_KEEPALIVE: 0, TCP_NODELAY: 0 } }), both)).toBe(false);
    expect(matchesFilter(socket({ options: null }), both)).toBe(false);
  });
  it('--diag: a non-empty, known indicator', () => {
    const f = filter({ diag: true });
    expect(matchesFilter(socket({ diag: '>|' }), f)).toBe(true);
    expect(matchesFilter(socket({ diag: '' }), f)).toBe(false);
    expect(matchesFilter(socket({ diag: null }), f)).toBe(false);
  });
  it('different flags are ANDed', () => {
    const f = filter({
      states: ['ESTABLISHED'],
      ports: [8080],
      pids: [100],
      local: [parseEndpointPattern('127.0.0.0/8', '--local')],
    });
    expect(matchesFilter(socket(), f)).toBe(true);
    expect(matchesFilter(socket({ state: 'CLOSE_WAIT' }), f)).toBe(false);
    expect(matchesFilter(socket({ processes: [{ pid: 7, fd: 3, command: 'x' }] }), f)).toBe(false);
    expect(matchesFilter(socket({ local: { address: '10.0.0.1', port: 40000 } }), f)).toBe(false);
  });
});

describe('applyFilter', () => {
  it('keeps every socket, in order, where no flag narrows the filter, and only then takes that shortcut', () => {
    const sockets = [socket(), socket({ state: 'LISTEN' }), socket({ diag: null, options: null })];
    expect(filtersNothing(NO_FILTER)).toBe(true);
    const all = applyFilter(sockets, NO_FILTER);
    expect(all).toEqual({ sockets, warnings: [] });
    expect(all.sockets).not.toBe(sockets);
    const narrowing: Array<Partial<SocketFilter>> = [
      { listening: true },
      { diag: true },
      { states: ['LISTEN'] },
      { ports: [80] },
      { local: [parseEndpointPattern('127.0.0.1', '--local')] },
      { remote: [parseEndpointPattern(':80', '--remote')] },
      { pids: [1] },
      { commands: ['nginx'] },
      { options: [parseOptionPredicate('TCP_NODELAY=1')] },
    ];
    for (const fields of narrowing)
      expect(filtersNothing(filter(fields)), Object.keys(fields)[0]).toBe(false);
  });

  it('counts the sockets it could not judge for want of options or Diag', () => {
    const sockets = [
      socket({ inode: 1 }),
      socket({ inode: 2, options: null, optionsError: 'not permitted to inspect pid 1' }),
      socket({ inode: 3, state: 'TIME_WAIT', minisocket: true, options: null, processes: [] }),
    ];
    const result = applyFilter(sockets, filter({ options: [parseOptionPredicate('SO_KEEPALIVE=0')] }));
    expect(result.sockets.map((s) => s.inode)).toEqual([1]);
    expect(result.warnings).toEqual(['--option: 1 socket left out because its options are unknown']);
    const diag = applyFilter([socket({ diag: null }), socket({ diag: '>#' })], filter({ diag: true }));
    expect(diag.sockets).toHaveLength(1);
    expect(diag.warnings).toEqual(['--diag: 1 socket left out because Diag is unknown (no tcp_info)']);
    expect(applyFilter(sockets, NO_FILTER).warnings).toEqual([]);
  });
  it('names the options a filter needs read', () => {
    const f = filter({
      options: [parseOptionPredicate('SO_KEEPALIVE=0'), parseOptionPredicate('so_keepalive!=1')],
    });
    expect(optionsNamedBy(f)).toEqual(['SO_KEEPALIVE']);
  });
});

describe('checkSatisfiable', () => {
  const all = ['tcp', 'tcp6', 'udp', 'udp6'] as const;
  it('accepts combinations some socket can match', () => {
    expect(() => checkSatisfiable(filter({ listening: true, states: ['LISTEN'] }), all)).not.toThrow();
    expect(() => checkSatisfiable(filter({ states: ['ESTABLISHED'] }), ['udp'])).not.toThrow();
    expect(() =>
      checkSatisfiable(filter({ options: [parseOptionPredicate('IPV6_V6ONLY')] }), ['udp6']),
    ).not.toThrow();
    expect(() =>
      checkSatisfiable(filter({ options: [parseOptionPredicate('TCP_FASTOPEN')] }), ['tcp']),
    ).not.toThrow();
  });
  it('refuses combinations none can, naming the flags', () => {
    expect(() => checkSatisfiable(filter({ listening: true, states: parseState('connected') }), all)).toThrow(
      'no socket can match --listening with --state',
    );
    expect(() => checkSatisfiable(filter({ diag: true }), ['udp', 'udp6'])).toThrow('--diag in udp, udp6');
    expect(() =>
      checkSatisfiable(filter({ options: [parseOptionPredicate('IPV6_V6ONLY')] }), ['tcp']),
    ).toThrow('--option IPV6_V6ONLY in tcp');
    expect(() =>
      checkSatisfiable(
        filter({ states: ['TIME_WAIT'], options: [parseOptionPredicate('SO_KEEPALIVE')] }),
        all,
      ),
    ).toThrow('--state time_wait with --option SO_KEEPALIVE');
  });
});
