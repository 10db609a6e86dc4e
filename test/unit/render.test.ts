/**
 * Golden tests of knetstat's text format (DESIGN.md, "knetstat's text format, byte for
 * byte") and of the JSON schema ("JSON (`knetstat --json`)"), on records built by hand.
 */
import { describe, expect, it } from 'vitest';
import type { SocketOptions, SocketRecord, StateName, TcpStateName } from '../../src/model.js';
import type { KeepaliveDefaults } from '../../src/procfs/sysctl.js';
import { renderJson } from '../../src/render/json.js';
import {
  escapeControlCharacters,
  formatRow,
  renderTable,
  TCP_HEADER,
  type TextRenderSettings,
  tableHeader,
  UDP_HEADER,
} from '../../src/render/text.js';
import { stateName } from '../../src/states.js';
import { socketRecord } from '../helpers/records.js';

const KEEPALIVE: KeepaliveDefaults = { time: 7200, probes: 9, interval: 75 };
const SETTINGS: TextRenderSettings = { selection: { kind: 'knetstat' }, keepalive: KEEPALIVE };

function tcp(overrides: Partial<SocketRecord> = {}): SocketRecord {
  return socketRecord({
    local: { address: '127.0.0.1', port: 22 },
    remote: { address: '127.0.0.1', port: 50000 },
    inode: 1000,
    ...overrides,
  });
}

function udp(overrides: Partial<SocketRecord> = {}): SocketRecord {
  return tcp({ protocol: 'udp', state: 'UNCONN', remote: { address: '0.0.0.0', port: 0 }, ...overrides });
}

const row = (socket: SocketRecord, settings = SETTINGS) => formatRow(socket, settings);
const optionsOf = (socket: SocketRecord, settings = SETTINGS) =>
  row(socket, settings).slice(socket.protocol === 'tcp' ? 72 : 62);

describe('headers', () => {
  it('are the module’s, byte for byte', () => {
    expect(TCP_HEADER).toBe(
      'Recv-Q Send-Q Local Address           Foreign Address         Stat Diag Options',
    );
    expect(UDP_HEADER).toBe('Recv-Q Send-Q Local Address           Foreign Address         Options');
    expect(tableHeader('tcp')).toBe(TCP_HEADER);
    expect(tableHeader('tcp6')).toBe(TCP_HEADER);
    expect(tableHeader('udp')).toBe(UDP_HEADER);
    expect(tableHeader('udp6')).toBe(UDP_HEADER);
  });

  it('line up with the rows', () => {
    const line = row(
      tcp({ local: { address: '1.2.3.4', port: 1 }, remote: { address: '5.6.7.8', port: 2 }, diag: '>#' }),
    );
    expect(line.indexOf('1.2.3.4')).toBe(TCP_HEADER.indexOf('Local Address'));
    expect(line.indexOf('5.6.7.8')).toBe(TCP_HEADER.indexOf('Foreign Address'));
    expect(line.indexOf('ESTB')).toBe(TCP_HEADER.indexOf('Stat'));
    expect(line.indexOf('>#')).toBe(TCP_HEADER.indexOf('Diag'));
    const withOptions = row(tcp({ options: { SO_REUSEADDR: 1 } }));
    expect(withOptions.indexOf('SO_REUSEADDR')).toBe(TCP_HEADER.indexOf('Options'));
    const udpLine = row(udp({ options: { SO_REUSEADDR: 1 } }));
    expect(udpLine.indexOf('SO_REUSEADDR')).toBe(UDP_HEADER.indexOf('Options'));
  });
});

describe('TCP rows', () => {
  it('an ESTABLISHED row, byte for byte', () => {
    expect(
      row(
        tcp({
          recvQ: 5,
          sendQ: 123,
          options: { SO_REUSEADDR: 0, SO_REUSEPORT: 0, SO_KEEPALIVE: 0, TCP_NODELAY: 1 },
        }),
      ),
    ).toBe(
      '     5    123 127.0.0.1:22            127.0.0.1:50000         ESTB      SO_REUSEADDR=0,SO_REUSEPORT=0,SO_KEEPALIVE=0,TCP_NODELAY=1',
    );
  });

  it('a LISTEN row: remote port 0 as *, Diag blank', () => {
    expect(
      row(
        tcp({
          state: 'LISTEN',
          local: { address: '0.0.0.0', port: 22 },
          remote: { address: '0.0.0.0', port: 0 },
          recvQ: 2,
          options: { SO_REUSEADDR: 1, SO_REUSEPORT: 0, SO_KEEPALIVE: 0, TCP_NODELAY: 0 },
        }),
      ),
    ).toBe(
      '     2      0 0.0.0.0:22              0.0.0.0:*               LSTN      SO_REUSEADDR=1,SO_REUSEPORT=0,SO_KEEPALIVE=0,TCP_NODELAY=0',
    );
  });

  it('a local port 0 is * too', () => {
    expect(row(tcp({ state: 'CLOSE', local: { address: '0.0.0.0', port: 0 } }))).toBe(
      '     0      0 0.0.0.0:*               127.0.0.1:50000         CLSD      ',
    );
  });

  it('TIME_WAIT and SYN_RECV rows end right after the state’s space', () => {
    expect(row(tcp({ state: 'TIME_WAIT', minisocket: true, inode: 0, options: null }))).toBe(
      '     0      0 127.0.0.1:22            127.0.0.1:50000         TIMW ',
    );
    expect(row(tcp({ state: 'SYN_RECV', minisocket: true, inode: 0, options: null }))).toBe(
      '     0      0 127.0.0.1:22            127.0.0.1:50000         SYNR ',
    );
  });

  it.each([
    ['ESTABLISHED', 'ESTB'],
    ['SYN_SENT', 'SYNS'],
    ['SYN_RECV', 'SYNR'],
    ['FIN_WAIT1', 'FNW1'],
    ['FIN_WAIT2', 'FNW2'],
    ['TIME_WAIT', 'TIMW'],
    ['CLOSE', 'CLSD'],
    ['CLOSE_WAIT', 'CLSW'],
    ['LAST_ACK', 'LACK'],
    ['LISTEN', 'LSTN'],
    ['CLOSING', 'CLSG'],
  ] as const)('%s is %s', (state, abbreviation) => {
    const line = row(tcp({ state }));
    expect(line.slice(62, 67)).toBe(`${abbreviation} `);
    expect(line.slice(67, 72)).toBe('     ');
  });

  it.each([
    [1, 'ESTB'],
    [2, 'SYNS'],
    [3, 'SYNR'],
    [4, 'FNW1'],
    [5, 'FNW2'],
    [6, 'TIMW'],
    [7, 'CLSD'],
    [8, 'CLSW'],
    [9, 'LACK'],
    [10, 'LSTN'],
    [11, 'CLSG'],
    [12, 'SYNR'], // TCP_NEW_SYN_RECV: a request socket, shown as knetstat showed SYN_RECV
  ])("the kernel's state %i is %s", (number, abbreviation) => {
    const state = stateName('tcp', number) as TcpStateName;
    expect(state).not.toBeNull();
    expect(row(tcp({ state })).slice(62, 67)).toBe(`${abbreviation} `);
  });

  it('state numbers that are not TCP states have no name', () => {
    for (const number of [0, 13, 255]) expect(stateName('tcp', number)).toBeNull();
    expect(stateName('udp', 7)).toBe('UNCONN');
    expect(stateName('udp', 1)).toBe('ESTABLISHED');
    expect(stateName('udp', 10)).toBeNull();
  });

  it.each([
    ['', '    '],
    ['>|', '>|  '],
    ['|<', '|<  '],
    ['>|<', '>|< '],
    ['>#', '>#  '],
  ] as const)('Diag %j is padded to four columns', (diag, padded) => {
    expect(row(tcp({ diag, options: { TCP_NODELAY: 1 } })).slice(62)).toBe(`ESTB ${padded} TCP_NODELAY=1`);
  });

  it('an unknown Diag (no tcp_info) is shown as unknown, not as empty', () => {
    expect(row(tcp({ diag: null })).slice(67, 72)).toBe('?    ');
  });
});

describe('queues and endpoints', () => {
  it.each([
    [0, '     0'],
    [7, '     7'],
    [999999, '999999'],
    [1234567, '1234567'],
    [4294967295, '4294967295'],
  ])('a queue of %i is %j (six columns, never cut), then one space', (value, text) => {
    expect(row(tcp({ recvQ: value, sendQ: value })).startsWith(`${text} ${text} 127.0.0.1:22 `)).toBe(true);
  });

  it('IPv6 endpoints as %pI6c, padded to 23 columns', () => {
    const line = row(
      tcp({
        family: 6,
        local: { address: '::1', port: 443 },
        remote: { address: '2001:db8::7', port: 51000 },
      }),
    );
    expect(line.slice(14)).toBe('::1:443                 2001:db8::7:51000       ESTB      ');
  });

  it('IPv4-mapped IPv6 endpoints', () => {
    const line = row(
      tcp({
        family: 6,
        local: { address: '::ffff:127.0.0.1', port: 8080 },
        remote: { address: '::ffff:10.1.2.3', port: 40000 },
      }),
    );
    expect(line.slice(14, 62)).toBe('::ffff:127.0.0.1:8080   ::ffff:10.1.2.3:40000   ');
  });

  it('an endpoint longer than 23 columns is not cut: it pushes the row', () => {
    const long = '2001:db8:1234:5678:9abc:def0:1234:5678';
    const line = row(
      tcp({
        family: 6,
        local: { address: long, port: 65535 },
        remote: { address: long, port: 1 },
        options: { TCP_NODELAY: 0 },
      }),
    );
    expect(line).toBe(`     0      0 ${long}:65535 ${long}:1 ESTB      TCP_NODELAY=0`);
  });

  it('an endpoint of exactly 23 columns still gets its one space', () => {
    const address = '2001:db8:1:2:3:4:5:6'; // 20 + ":80" = 23
    expect(row(tcp({ family: 6, local: { address, port: 80 } })).slice(14, 38)).toBe(`${address}:80 `);
  });
});

describe('UDP rows', () => {
  it('queues, endpoints, then the options: no state, no Diag', () => {
    expect(
      row(
        udp({
          recvQ: 768,
          local: { address: '0.0.0.0', port: 53 },
          options: { SO_REUSEADDR: 1, SO_REUSEPORT: 0, SO_BROADCAST: 0 },
        }),
      ),
    ).toBe(
      '   768      0 0.0.0.0:53              0.0.0.0:*               SO_REUSEADDR=1,SO_REUSEPORT=0,SO_BROADCAST=0',
    );
  });

  it('a connected IPv6 socket', () => {
    expect(
      row(
        udp({
          family: 6,
          state: 'ESTABLISHED',
          local: { address: 'fe80::1', port: 5353 },
          remote: { address: 'ff02::fb', port: 5353 },
          options: {},
        }),
      ),
    ).toBe('     0      0 fe80::1:5353            ff02::fb:5353           ');
  });
});

describe('the Options column', () => {
  const every: SocketOptions = {
    SO_REUSEADDR: 1,
    SO_REUSEPORT: 1,
    SO_KEEPALIVE: 1,
    TCP_KEEPIDLE: 60,
    TCP_KEEPCNT: 5,
    TCP_KEEPINTVL: 10,
    TCP_USER_TIMEOUT: 30000,
    SO_BUF_LOCK: 3,
    SO_RCVBUF: 8192,
    SO_SNDBUF: 16384,
    SO_RCVTIMEO: 1500,
    SO_SNDTIMEO: 250,
    SO_LINGER: 5,
    TCP_NODELAY: 1,
    TCP_FASTOPEN: 16,
    TCP_DEFER_ACCEPT: 3,
    SO_BROADCAST: 1,
    TCP_CONGESTION: 'cubic',
    SO_PRIORITY: 6,
  };

  it('TCP: every option in the module’s order and units', () => {
    expect(optionsOf(tcp({ state: 'LISTEN', remote: { address: '0.0.0.0', port: 0 }, options: every }))).toBe(
      'SO_REUSEADDR=1,SO_REUSEPORT=1,SO_KEEPALIVE=1,TCP_KEEPIDLE=60,TCP_KEEPCNT=5,TCP_KEEPINTVL=10,' +
        'TCP_USER_TIMEOUT=30000,SO_RCVBUF=4096,SO_SNDBUF=8192,SO_RCVTIMEO=1500ms,SO_SNDTIMEO=250ms,' +
        'SO_LINGER=5s,TCP_NODELAY=1,TCP_FASTOPEN=16,TCP_DEFER_ACCEPT=3',
    );
  });

  it('TCP_FASTOPEN only on a listener', () => {
    const column = optionsOf(tcp({ options: every }));
    expect(column).not.toContain('TCP_FASTOPEN');
    expect(column).toContain('TCP_NODELAY=1,TCP_DEFER_ACCEPT=3');
  });

  it('TCP_NODELAY, TCP_FASTOPEN and TCP_DEFER_ACCEPT show when 0, like the other unmarked options', () => {
    const zeros = {
      SO_REUSEADDR: 0,
      SO_REUSEPORT: 0,
      SO_KEEPALIVE: 0,
      TCP_NODELAY: 0,
      TCP_FASTOPEN: 0,
      TCP_DEFER_ACCEPT: 0,
    };
    const listening = tcp({ state: 'LISTEN', remote: { address: '0.0.0.0', port: 0 }, options: zeros });
    expect(optionsOf(listening)).toBe(
      'SO_REUSEADDR=0,SO_REUSEPORT=0,SO_KEEPALIVE=0,TCP_NODELAY=0,TCP_FASTOPEN=0,TCP_DEFER_ACCEPT=0',
    );
    expect(optionsOf(tcp({ options: zeros }))).toBe(
      'SO_REUSEADDR=0,SO_REUSEPORT=0,SO_KEEPALIVE=0,TCP_NODELAY=0,TCP_DEFER_ACCEPT=0',
    );
    expect(optionsOf(udp({ options: { SO_REUSEADDR: 0, SO_REUSEPORT: 0, SO_BROADCAST: 0 } }))).toBe(
      'SO_REUSEADDR=0,SO_REUSEPORT=0,SO_BROADCAST=0',
    );
  });

  it('UDP: its own list, SO_BROADCAST last, no TCP options', () => {
    expect(optionsOf(udp({ options: every }))).toBe(
      'SO_REUSEADDR=1,SO_REUSEPORT=1,SO_RCVBUF=4096,SO_SNDBUF=8192,SO_RCVTIMEO=1500ms,SO_SNDTIMEO=250ms,' +
        'SO_LINGER=5s,SO_BROADCAST=1',
    );
  });

  it('SO_BROADCAST is not a TCP option', () => {
    expect(optionsOf(tcp({ options: { SO_BROADCAST: 1, TCP_NODELAY: 0 } }))).toBe('TCP_NODELAY=0');
  });

  it.each([
    [0, ''],
    [1, 'SO_SNDBUF=8192'],
    [2, 'SO_RCVBUF=4096'],
    [3, 'SO_RCVBUF=4096,SO_SNDBUF=8192'],
  ])('buffers show halved, only where SO_BUF_LOCK %i says they were set', (lock, shown) => {
    expect(optionsOf(udp({ options: { SO_BUF_LOCK: lock, SO_RCVBUF: 8192, SO_SNDBUF: 16384 } }))).toBe(shown);
  });

  it('buffers do not show when SO_BUF_LOCK could not be read (Linux < 5.14)', () => {
    expect(optionsOf(udp({ options: { SO_RCVBUF: 8192, SO_SNDBUF: 16384 } }))).toBe('');
  });

  it('timeouts, user timeout and linger show only when set', () => {
    const unset = { TCP_USER_TIMEOUT: 0, SO_RCVTIMEO: 0, SO_SNDTIMEO: 0, SO_LINGER: null, TCP_NODELAY: 0 };
    expect(optionsOf(tcp({ options: unset }))).toBe('TCP_NODELAY=0');
  });

  it('linger on with zero seconds is set, and shows', () => {
    expect(optionsOf(udp({ options: { SO_LINGER: 0 } }))).toBe('SO_LINGER=0s');
  });

  it('keepalive timings show only where they differ from the namespace’s sysctls', () => {
    const equal = { SO_KEEPALIVE: 1, TCP_KEEPIDLE: 7200, TCP_KEEPCNT: 9, TCP_KEEPINTVL: 75 };
    expect(optionsOf(tcp({ options: equal }))).toBe('SO_KEEPALIVE=1');
    const differ = { SO_KEEPALIVE: 1, TCP_KEEPIDLE: 7201, TCP_KEEPCNT: 9, TCP_KEEPINTVL: 1 };
    expect(optionsOf(tcp({ options: differ }))).toBe('SO_KEEPALIVE=1,TCP_KEEPIDLE=7201,TCP_KEEPINTVL=1');
    const otherSysctls = { ...SETTINGS, keepalive: { time: 60, probes: 3, interval: 1 } };
    expect(optionsOf(tcp({ options: equal }), otherSysctls)).toBe(
      'SO_KEEPALIVE=1,TCP_KEEPIDLE=7200,TCP_KEEPCNT=9,TCP_KEEPINTVL=75',
    );
  });

  it('keepalive timings do not show when the sysctl could not be read', () => {
    const unknown = { ...SETTINGS, keepalive: { time: null, probes: null, interval: null } };
    expect(optionsOf(tcp({ options: { TCP_KEEPIDLE: 60, TCP_KEEPCNT: 2, TCP_KEEPINTVL: 5 } }), unknown)).toBe(
      '',
    );
  });

  it('options the kernel did not answer are left out, not guessed', () => {
    expect(optionsOf(tcp({ options: { SO_REUSEADDR: 0 } }))).toBe('SO_REUSEADDR=0');
  });

  it.each([
    [
      'not permitted to inspect pid 7 (pidfd_getfd: EPERM); run as root or grant CAP_SYS_PTRACE',
      '[not permitted]',
    ],
    ['no visible owner (a kernel socket, or a process this user may not inspect)', '[no owner]'],
    ['pidfd_getfd is not available: Linux 5.6 or later is needed', '[unsupported]'],
    ['fd 3 of pid 7 now holds another file (inode 9, not 8): not read', '[fd reused]'],
    ['the socket was closed during the scan', '[closed]'],
    ['pidfd_open failed for pid 7: EMFILE', '[unreadable]'],
  ])('unreadable options: %j → %s', (optionsError, marker) => {
    expect(optionsOf(tcp({ options: null, optionsError }))).toBe(marker);
    expect(optionsOf(udp({ options: null, optionsError }))).toBe(marker);
  });

  it('options not asked for leave the column empty', () => {
    expect(row(tcp({ options: null }))).toBe(
      '     0      0 127.0.0.1:22            127.0.0.1:50000         ESTB      ',
    );
  });
});

describe('renderTable', () => {
  it('the header, then one line per socket, each ending in a newline', () => {
    const text = renderTable(
      'tcp',
      [tcp({ options: { TCP_NODELAY: 1 } }), tcp({ state: 'TIME_WAIT', minisocket: true, options: null })],
      SETTINGS,
    );
    expect(text).toBe(
      `${TCP_HEADER}\n` +
        '     0      0 127.0.0.1:22            127.0.0.1:50000         ESTB      TCP_NODELAY=1\n' +
        '     0      0 127.0.0.1:22            127.0.0.1:50000         TIMW \n',
    );
    expect(renderTable('udp6', [], SETTINGS)).toBe(`${UDP_HEADER}\n`);
  });

  it('with processes: a PID/Program column before Options, aligned with its header', () => {
    const settings = { ...SETTINGS, showProcesses: true };
    const socket = tcp({
      processes: [
        { pid: 812, fd: 3, command: 'sshd' },
        { pid: 812, fd: 4, command: 'sshd' },
        { pid: 900, fd: 3, command: 'evil\nname' },
      ],
      options: { TCP_NODELAY: 1 },
    });
    const [header, line] = renderTable('tcp', [socket], settings).split('\n');
    expect(header?.indexOf('PID/Program')).toBe(72);
    expect(line?.slice(72)).toBe('812/sshd,900/evil\\x0aname TCP_NODELAY=1');
    const lone = renderTable('udp', [udp({ options: { SO_BROADCAST: 0 } })], settings).split('\n');
    expect(lone[1]?.indexOf('SO_BROADCAST')).toBe(lone[0]?.indexOf('Options'));
  });
});

describe('process names in the PID/Program column', () => {
  it.each([
    ['nginx: worker', 'nginx: worker'],
    ['tab\there', 'tab\\x09here'],
    ['del\u007f', 'del\\x7f'],
    ['c1\u009b[2J', 'c1\\x9b[2J'],
    ['back\\slash', 'back\\\\slash'],
    ['café ☕', 'café ☕'],
  ])('%j is shown as %j', (command, shown) => {
    expect(escapeControlCharacters(command)).toBe(shown);
  });
});

describe('JSON', () => {
  const KEYS = [
    'protocol',
    'family',
    'state',
    'local',
    'remote',
    'recvQ',
    'sendQ',
    'inode',
    'uid',
    'diag',
    'processes',
    'options',
  ];
  const json = (sockets: SocketRecord[]) => JSON.parse([...renderJson(sockets)].join('')) as unknown[];

  it('an empty list is an empty array', () => {
    expect([...renderJson([])].join('')).toBe('[]\n');
    expect(json([])).toEqual([]);
  });

  it('one object per socket, in order, with exactly the schema’s keys', () => {
    const sockets = [
      tcp({
        state: 'LISTEN',
        local: { address: '127.0.0.1', port: 6010 },
        remote: { address: '0.0.0.0', port: 0 },
        inode: 12345,
        processes: [{ pid: 812, fd: 3, command: 'sshd' }],
        options: { SO_REUSEADDR: 1, TCP_NODELAY: 0, SO_LINGER: null, TCP_CONGESTION: 'cubic' },
        tcpInfo: { state: 10 } as SocketRecord['tcpInfo'],
      }),
      tcp({
        family: 6,
        state: 'TIME_WAIT',
        minisocket: true,
        options: null,
        optionsError: 'TIME_WAIT entries have no options',
      }),
      udp({ diag: '', recvQ: 768 }),
    ];
    const parsed = json(sockets) as Array<Record<string, unknown>>;
    expect(parsed).toHaveLength(3);
    expect(Object.keys(parsed[0] ?? {})).toEqual(KEYS);
    expect(Object.keys(parsed[1] ?? {})).toEqual([...KEYS, 'optionsError']);
    expect(Object.keys(parsed[2] ?? {})).toEqual(KEYS);
    expect(parsed[0]).toEqual({
      protocol: 'tcp',
      family: 4,
      state: 'LISTEN',
      local: { address: '127.0.0.1', port: 6010 },
      remote: { address: '0.0.0.0', port: 0 },
      recvQ: 0,
      sendQ: 0,
      inode: 12345,
      uid: 0,
      diag: '',
      processes: [{ pid: 812, fd: 3, command: 'sshd' }],
      options: { SO_REUSEADDR: 1, TCP_NODELAY: 0, SO_LINGER: null, TCP_CONGESTION: 'cubic' },
    });
    expect(parsed[1]).toMatchObject({ state: 'TIME_WAIT', family: 6, options: null });
    expect(parsed[1]?.optionsError).toBe('TIME_WAIT entries have no options');
    expect(parsed[2]).toMatchObject({ protocol: 'udp', state: 'UNCONN', recvQ: 768 });
  });

  it('every state name of the schema passes through as is', () => {
    const states: StateName[] = [
      'ESTABLISHED',
      'SYN_SENT',
      'SYN_RECV',
      'FIN_WAIT1',
      'FIN_WAIT2',
      'TIME_WAIT',
      'CLOSE',
      'CLOSE_WAIT',
      'LAST_ACK',
      'LISTEN',
      'CLOSING',
    ];
    const parsed = json(states.map((state) => tcp({ state }))) as Array<{ state: string }>;
    expect(parsed.map((s) => s.state)).toEqual(states);
  });

  it('a command with control characters stays valid JSON', () => {
    const parsed = json([tcp({ processes: [{ pid: 1, fd: 2, command: 'a"b\\c\n\u0001' }] })]) as Array<{
      processes: Array<{ command: string }>;
    }>;
    expect(parsed[0]?.processes[0]?.command).toBe('a"b\\c\n\u0001');
  });

  it('many sockets still form one array', () => {
    const many = Array.from({ length: 500 }, (_, i) => udp({ inode: i + 1 }));
    const parsed = json(many) as Array<{ inode: number }>;
    expect(parsed.map((s) => s.inode)).toEqual(many.map((s) => s.inode));
  });
});
