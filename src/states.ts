import type { DiagIndicator, Protocol, StateName, TcpInfo, TcpStateName } from './model.js';

/** The kernel's TCP state numbers (include/net/tcp_states.h); 12 is TCP_NEW_SYN_RECV. */
const TCP_STATE_NAMES: Readonly<Record<number, TcpStateName>> = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING',
  12: 'SYN_RECV',
};

export const TCP_STATE_NEW_SYN_RECV = 12;
export const TCP_STATE_TIME_WAIT = 6;

/** The state name of a kernel state number, or null when the number is not one. */
export function stateName(protocol: Protocol, state: number): StateName | null {
  if (protocol === 'udp') {
    // UDP sockets are TCP_CLOSE (7) until connect() makes them TCP_ESTABLISHED (1).
    if (state === 7) return 'UNCONN';
    if (state === 1) return 'ESTABLISHED';
    return null;
  }
  return TCP_STATE_NAMES[state] ?? null;
}

/** knetstat's four-letter abbreviations. */
export const STATE_ABBREVIATIONS: Readonly<Record<TcpStateName, string>> = {
  ESTABLISHED: 'ESTB',
  SYN_SENT: 'SYNS',
  SYN_RECV: 'SYNR',
  FIN_WAIT1: 'FNW1',
  FIN_WAIT2: 'FNW2',
  TIME_WAIT: 'TIMW',
  CLOSE: 'CLSD',
  CLOSE_WAIT: 'CLSW',
  LAST_ACK: 'LACK',
  LISTEN: 'LSTN',
  CLOSING: 'CLSG',
};

/** Unacknowledged data with no ACK for longer than this is flagged `>#`. */
const ACK_DELAY_THRESHOLD_MS = 1000;

/**
 * knetstat's Diag column, for ESTABLISHED TCP sockets only. An indicator whose field the
 * running kernel's tcp_info lacks (tcpi_snd_wnd before 5.4, tcpi_rcv_wnd before 6.2) is
 * never raised. Returns null when tcp_info is unknown.
 */
export function deriveDiag(
  protocol: Protocol,
  state: StateName,
  tcpInfo: TcpInfo | null,
): DiagIndicator | null {
  if (protocol !== 'tcp' || state !== 'ESTABLISHED') return '';
  if (tcpInfo === null) return null;
  return diagOfWindows(tcpInfo.rcvWnd, tcpInfo.sndWnd, tcpInfo.unacked, tcpInfo.lastAckRecv);
}

/**
 * The Diag indicator of an ESTABLISHED TCP socket from the four tcp_info fields it
 * depends on (a window the kernel did not report is undefined, and never closed).
 */
export function diagOfWindows(
  rcvWnd: number | undefined,
  sndWnd: number | undefined,
  unacked: number,
  lastAckRecv: number,
): DiagIndicator {
  const receiveWindowClosed = rcvWnd === 0;
  const sendWindowClosed = sndWnd === 0;
  if (receiveWindowClosed && sendWindowClosed) return '>|<';
  if (receiveWindowClosed) return '|<';
  if (sendWindowClosed) return '>|';
  if (unacked > 0 && lastAckRecv > ACK_DELAY_THRESHOLD_MS) return '>#';
  return '';
}
