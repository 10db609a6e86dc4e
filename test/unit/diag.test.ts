/**
 * knetstat's Diag column from tcp_info (DESIGN.md, pipeline step 4), including kernels
 * whose tcp_info stops before tcpi_snd_wnd (< 5.4) or tcpi_rcv_wnd (< 6.2).
 */
import { describe, expect, it } from 'vitest';
import type { StateName, TcpInfo } from '../../src/model.js';
import { deriveDiag } from '../../src/states.js';

/** A quiet ESTABLISHED connection on a current kernel: open windows, nothing in flight. */
function info(overrides: Partial<TcpInfo> = {}): TcpInfo {
  return {
    state: 1,
    caState: 0,
    retransmits: 0,
    probes: 0,
    backoff: 0,
    options: 0,
    rto: 204000,
    ato: 40000,
    sndMss: 32768,
    rcvMss: 536,
    unacked: 0,
    sacked: 0,
    lost: 0,
    retrans: 0,
    lastDataSent: 5000,
    lastAckSent: 0,
    lastDataRecv: 5000,
    lastAckRecv: 5000,
    pmtu: 65535,
    rcvSsthresh: 65483,
    rtt: 50,
    rttvar: 25,
    sndSsthresh: 2147483647,
    sndCwnd: 10,
    advmss: 65483,
    reordering: 3,
    rcvRtt: 0,
    rcvSpace: 65483,
    totalRetrans: 0,
    bytesAcked: 1,
    bytesReceived: 0,
    sndWnd: 65536,
    rcvWnd: 65536,
    ...overrides,
  };
}

/** tcp_info as a kernel older than 6.2 (no rcvWnd) or than 5.4 (neither window) sends it. */
function oldKernel(release: '5.4' | '4.19', overrides: Partial<TcpInfo> = {}): TcpInfo {
  const { rcvWnd: _rcvWnd, sndWnd, ...rest } = info(overrides);
  return release === '5.4' ? { ...rest, ...(sndWnd === undefined ? {} : { sndWnd }) } : rest;
}

const estb = (tcpInfo: TcpInfo | null) => deriveDiag('tcp', 'ESTABLISHED', tcpInfo);

describe('deriveDiag', () => {
  it('an ESTABLISHED socket with open windows and nothing stuck: empty', () => {
    expect(estb(info())).toBe('');
  });

  it('both windows closed: >|<', () => {
    expect(estb(info({ rcvWnd: 0, sndWnd: 0 }))).toBe('>|<');
  });

  it('our receive window closed: |<', () => {
    expect(estb(info({ rcvWnd: 0 }))).toBe('|<');
  });

  it("the peer's window closed: >|", () => {
    expect(estb(info({ sndWnd: 0 }))).toBe('>|');
  });

  it('unacknowledged data and no ACK for more than a second: >#', () => {
    expect(estb(info({ unacked: 3, lastAckRecv: 1001 }))).toBe('>#');
    expect(estb(info({ unacked: 1, lastAckRecv: 60_000 }))).toBe('>#');
  });

  it('># needs both: data in flight, and an ACK older than one second', () => {
    expect(estb(info({ unacked: 3, lastAckRecv: 1000 }))).toBe('');
    expect(estb(info({ unacked: 3, lastAckRecv: 0 }))).toBe('');
    expect(estb(info({ unacked: 0, lastAckRecv: 60_000 }))).toBe('');
  });

  it('a closed window outranks >#, as in the module', () => {
    const stuck = { unacked: 3, lastAckRecv: 5000 };
    expect(estb(info({ ...stuck, rcvWnd: 0, sndWnd: 0 }))).toBe('>|<');
    expect(estb(info({ ...stuck, rcvWnd: 0 }))).toBe('|<');
    expect(estb(info({ ...stuck, sndWnd: 0 }))).toBe('>|');
  });

  it.each([
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
  ] as const)('%s: always empty, whatever tcp_info says', (state: StateName) => {
    const alarming = info({ rcvWnd: 0, sndWnd: 0, unacked: 5, lastAckRecv: 10_000 });
    expect(deriveDiag('tcp', state, alarming)).toBe('');
    expect(deriveDiag('tcp', state, null)).toBe('');
  });

  it('UDP: always empty', () => {
    expect(deriveDiag('udp', 'ESTABLISHED', null)).toBe('');
    expect(deriveDiag('udp', 'UNCONN', null)).toBe('');
  });

  it('no tcp_info for an ESTABLISHED socket: unknown (null), not empty', () => {
    expect(estb(null)).toBeNull();
  });

  describe('Linux 5.4 to 6.1: tcp_info has tcpi_snd_wnd but not tcpi_rcv_wnd', () => {
    it('raises >| from the send window', () => {
      expect(estb(oldKernel('5.4', { sndWnd: 0 }))).toBe('>|');
    });

    it('never raises |< or >|<, which need the receive window', () => {
      expect(estb(oldKernel('5.4', { rcvWnd: 0 }))).toBe('');
      expect(estb(oldKernel('5.4', { rcvWnd: 0, sndWnd: 0 }))).toBe('>|');
    });

    it('still raises >#', () => {
      expect(estb(oldKernel('5.4', { unacked: 2, lastAckRecv: 3000 }))).toBe('>#');
    });
  });

  describe('before Linux 5.4: neither window', () => {
    it('raises no window indicator', () => {
      expect(estb(oldKernel('4.19', { rcvWnd: 0, sndWnd: 0 }))).toBe('');
    });

    it('still raises >#, which tcp_info has always been able to tell', () => {
      expect(estb(oldKernel('4.19', { unacked: 2, lastAckRecv: 3000 }))).toBe('>#');
      expect(estb(oldKernel('4.19', { unacked: 0, lastAckRecv: 3000 }))).toBe('');
    });
  });
});
