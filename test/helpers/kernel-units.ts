/**
 * What the kernel does to a value between setsockopt and getsockopt, so that the tests
 * can state the read-back they expect rather than copy it from a run.
 */

/** TCP_TIMEOUT_INIT / HZ and TCP_RTO_MAX / HZ (include/net/tcp.h), in seconds. */
const TCP_TIMEOUT_INIT_SECONDS = 1;
const TCP_RTO_MAX_SECONDS = 120;

/**
 * TCP_DEFER_ACCEPT is kept as a count of SYN-ACK retransmits (secs_to_retrans in
 * net/ipv4/tcp.c): the smallest count whose doubling timeouts (1 s, 2 s, 4 s ... capped at
 * TCP_RTO_MAX) add up to at least the seconds asked. getsockopt turns the count back into
 * seconds (retrans_to_secs), so 10 s reads back as 1+2+4+8 = 15 s.
 */
export function deferAcceptReadBack(seconds: number): number {
  if (seconds <= 0) return 0;
  let retransmits = 1;
  let timeout = TCP_TIMEOUT_INIT_SECONDS;
  let period = timeout;
  while (seconds > period && retransmits < 255) {
    retransmits++;
    timeout = Math.min(timeout * 2, TCP_RTO_MAX_SECONDS);
    period += timeout;
  }
  return period;
}

/** SO_RCVBUF / SO_SNDBUF: the kernel stores (and getsockopt returns) twice the request. */
export function bufferReadBack(requested: number): number {
  return requested * 2;
}
