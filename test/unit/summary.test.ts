import { describe, expect, it } from 'vitest';
import type { SocketRecord } from '../../src/model.js';
import { renderSummaryText, summarize } from '../../src/render/summary.js';
import { socketRecord } from '../helpers/records.js';

function socket(fields: Partial<SocketRecord>): SocketRecord {
  return socketRecord({
    options: { SO_REUSEADDR: 0, SO_REUSEPORT: 0, SO_KEEPALIVE: 0, TCP_NODELAY: 0 },
    ...fields,
  });
}

const keepalive = { time: 7200, probes: 9, interval: 75 };

describe('summarize', () => {
  const sockets = [
    socket({
      state: 'LISTEN',
      options: { SO_REUSEADDR: 1, SO_REUSEPORT: 0, SO_KEEPALIVE: 0, TCP_NODELAY: 0 },
    }),
    socket({ diag: '>|' }),
    socket({
      diag: null,
      options: { SO_REUSEADDR: 0, SO_REUSEPORT: 0, SO_KEEPALIVE: 1, TCP_KEEPIDLE: 60, TCP_NODELAY: 0 },
    }),
    socket({
      state: 'TIME_WAIT',
      minisocket: true,
      options: null,
      optionsError: 'TIME_WAIT entries have no options',
    }),
    socket({ family: 6, options: null, optionsError: 'not permitted to inspect pid 7 (pidfd_open: EPERM)' }),
    socket({
      protocol: 'udp',
      state: 'UNCONN',
      options: { SO_REUSEADDR: 0, SO_REUSEPORT: 0, SO_BROADCAST: 1 },
    }),
  ];
  const summary = summarize(sockets, ['tcp', 'tcp6', 'udp', 'udp6'], keepalive);

  it('counts per table and state, in the kernel order of states', () => {
    expect(summary.total).toBe(6);
    expect(summary.tables).toEqual({
      tcp: { total: 4, states: { ESTABLISHED: 2, TIME_WAIT: 1, LISTEN: 1 } },
      tcp6: { total: 1, states: { ESTABLISHED: 1 } },
      udp: { total: 1, states: { UNCONN: 1 } },
      udp6: { total: 0, states: {} },
    });
  });
  it('counts Diag indicators, and unknown Diag apart', () => {
    expect(summary.diag).toEqual({ '>|': 1, unknown: 1 });
  });
  it('counts option values as the Options column shows them, unread options by marker', () => {
    expect(summary.options.tcp).toEqual({
      'SO_REUSEADDR=0': { ESTABLISHED: 2 },
      'SO_REUSEADDR=1': { LISTEN: 1 },
      'SO_REUSEPORT=0': { ESTABLISHED: 2, LISTEN: 1 },
      'SO_KEEPALIVE=0': { ESTABLISHED: 1, LISTEN: 1 },
      'SO_KEEPALIVE=1': { ESTABLISHED: 1 },
      'TCP_KEEPIDLE=60': { ESTABLISHED: 1 },
      'TCP_NODELAY=0': { ESTABLISHED: 2, LISTEN: 1 },
    });
    expect(Object.keys(summary.options.tcp ?? {})[5]).toBe('TCP_KEEPIDLE=60'); // knetstat's column order
    expect(summary.optionsUnknown).toEqual({ tcp: { '[not permitted]': { ESTABLISHED: 1 } } });
    expect(summary.options.udp).toEqual({
      'SO_REUSEADDR=0': { UNCONN: 1 },
      'SO_REUSEPORT=0': { UNCONN: 1 },
      'SO_BROADCAST=1': { UNCONN: 1 },
    });
  });
  it('renders as text', () => {
    const text = renderSummaryText(summary);
    expect(text.split('\n').slice(0, 8)).toEqual([
      'Sockets: 6',
      '  tcp        4  2 established, 1 time_wait, 1 listen',
      '  tcp6       1  1 established',
      '  udp        1  1 unconn',
      '  udp6       0',
      'Diag: 2',
      '  >|         1 established',
      '  ?          1 established',
    ]);
    expect(text).toContain('\nOptions of TCP sockets:\n  SO_REUSEADDR=0: 2 established\n');
    expect(text).toContain('\n  SO_KEEPALIVE=0: 1 established, 1 listen\n');
    expect(text).toContain('\n  [not permitted]: 1 established\n');
    expect(
      text.endsWith(
        'Options of UDP sockets:\n  SO_REUSEADDR=0: 1 unconn\n  SO_REUSEPORT=0: 1 unconn\n  SO_BROADCAST=1: 1 unconn\n',
      ),
    ).toBe(true);
  });
});
