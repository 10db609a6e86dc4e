import { describe, expect, it } from 'vitest';
import type { SocketRecord } from '../../src/model.js';
import {
  escapeControlCharacters,
  formatProcesses,
  formatRow,
  renderTable,
  shouldUseColour,
  tableHeader,
} from '../../src/render/text.js';
import { socketRecord } from '../helpers/records.js';

function socket(fields: Partial<SocketRecord> = {}): SocketRecord {
  return socketRecord({
    diag: '>|',
    processes: [{ pid: 100, fd: 3, command: 'nginx' }],
    options: { SO_REUSEADDR: 0 },
    ...fields,
  });
}

const settings = {
  selection: { kind: 'knetstat' } as const,
  keepalive: { time: 7200, probes: 9, interval: 75 },
};

describe('process names', () => {
  it('escapes control characters, bidi controls and backslashes', () => {
    expect(escapeControlCharacters('\x1b[31mred\x07')).toBe('\\x1b[31mred\\x07');
    expect(escapeControlCharacters('a\nb\tc\x7f\x9b')).toBe('a\\x0ab\\x09c\\x7f\\x9b');
    expect(escapeControlCharacters('x\u202egnp.exe')).toBe('x\\u{202e}gnp.exe');
    expect(escapeControlCharacters('a\\x1b')).toBe('a\\\\x1b');
    expect(escapeControlCharacters('nginx: worker')).toBe('nginx: worker');
  });
  it('joins owners with commas, once per process, - when none', () => {
    const shared = socket({
      processes: [
        { pid: 1, fd: 3, command: 'a' },
        { pid: 1, fd: 4, command: 'a' },
        { pid: 2, fd: 3, command: 'b,c' },
      ],
    });
    expect(formatProcesses(shared)).toBe('1/a,2/b\\x2cc');
    expect(formatProcesses(socket({ processes: [] }))).toBe('-');
  });
});

describe('the -p column', () => {
  it('sits before Options in the header and the row', () => {
    const header = tableHeader('tcp', true);
    const row = formatRow(socket(), { ...settings, showProcesses: true });
    expect(header).toMatch(/ Diag PID\/Program +Options$/);
    expect(row.indexOf('100/nginx')).toBe(header.indexOf('PID/Program'));
    expect(row.indexOf('SO_REUSEADDR=0')).toBe(header.indexOf('Options'));
  });
  it('shows - after a TIME_WAIT row, which has no owner, no Diag and no options', () => {
    const row = formatRow(socket({ state: 'TIME_WAIT', minisocket: true, processes: [], options: null }), {
      ...settings,
      showProcesses: true,
    });
    expect(row.endsWith('TIMW      -')).toBe(true);
    expect(row.indexOf('-', 60)).toBe(tableHeader('tcp', true).indexOf('PID/Program'));
  });
});

describe('colour', () => {
  it('only on a TTY, never with NO_COLOR or TERM=dumb', () => {
    expect(shouldUseColour({ isTTY: true }, {})).toBe(true);
    expect(shouldUseColour({ isTTY: false }, {})).toBe(false);
    expect(shouldUseColour({}, {})).toBe(false);
    expect(shouldUseColour({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(shouldUseColour({ isTTY: true }, { NO_COLOR: '' })).toBe(true);
    expect(shouldUseColour({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });
  it('colours the Diag indicator and keeps the columns where they were', () => {
    const plain = formatRow(socket(), settings);
    const coloured = formatRow(socket(), { ...settings, colour: true });
    expect(coloured).toContain('\x1b[33m>|\x1b[39m   ');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: removing the escape sequences
    expect(coloured.replace(/\x1b\[\d+m/g, '')).toBe(plain);
    expect(formatRow(socket({ diag: '' }), { ...settings, colour: true })).toBe(
      formatRow(socket({ diag: '' }), settings),
    );
  });
});

describe('a table whose sockets share an options object', () => {
  it('shows each row as formatted alone: listeners and UDP sockets with their own columns', () => {
    const shared = Object.freeze({
      SO_REUSEADDR: 1,
      SO_KEEPALIVE: 0,
      TCP_NODELAY: 1,
      TCP_FASTOPEN: 5,
      SO_BROADCAST: 0,
    });
    const sockets = [
      socket({ options: shared }),
      socket({ state: 'LISTEN', options: shared }),
      socket({ options: shared, inode: 9 }),
      socket({ protocol: 'udp', state: 'UNCONN', options: shared }),
      socket({ state: 'LISTEN', options: shared, inode: 10 }),
    ];
    const text = renderTable('tcp', sockets, settings);
    const rows = text.split('\n').slice(1, -1);
    expect(rows).toEqual(sockets.map((s) => formatRow(s, settings)));
    // TCP_FASTOPEN on the listeners only, SO_BROADCAST on the UDP socket only.
    expect(rows.map((row) => row.includes('TCP_FASTOPEN=5'))).toEqual([false, true, false, false, true]);
    expect(rows.map((row) => row.includes('SO_BROADCAST=0'))).toEqual([false, false, false, true, false]);
  });
});
