/**
 * The kernel's unit conversions that the BPF pass repeats (kernel-units.ts): the
 * arithmetic on known values, and the probe of this kernel's HZ checked against the
 * kernel's own configuration where /proc/config.gz shows it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  DEFER_ACCEPT_TIMES,
  hzFromTick,
  LONG_MAX,
  lingerSeconds,
  probeKernelUnits,
  retransmitsToSeconds,
  secondsToRetransmits,
  timeoutMilliseconds,
} from '../../src/options/kernel-units.js';

describe('the conversions getsockopt makes', () => {
  it('turns jiffies into a timeval as sock_get_timeout does, then into milliseconds', () => {
    expect(timeoutMilliseconds(LONG_MAX, 250)).toBe(0);
    expect(timeoutMilliseconds(0n, 250)).toBe(0);
    expect(timeoutMilliseconds(625n, 250)).toBe(2500); // {2, 500000}
    expect(timeoutMilliseconds(1n, 250)).toBe(4); // {0, 4000}
    expect(timeoutMilliseconds(1n, 1000)).toBe(1);
    // HZ 300: one jiffy is 3333 µs, as the kernel's integer division makes it.
    expect(timeoutMilliseconds(1n, 300)).toBe(3);
    expect(timeoutMilliseconds(301n, 300)).toBe(1003);
  });

  it('gives linger off as null whatever time is kept, and the time in seconds otherwise', () => {
    expect(lingerSeconds(false, 750n, 250)).toBeNull();
    expect(lingerSeconds(true, 750n, 250)).toBe(3);
    expect(lingerSeconds(true, 0n, 250)).toBe(0);
    // A time set at or past MAX_SCHEDULE_TIMEOUT / HZ is kept as MAX_SCHEDULE_TIMEOUT.
    expect(lingerSeconds(true, LONG_MAX, 100)).toBe(Number(BigInt.asIntN(32, LONG_MAX / 100n)));
  });

  it('turns deferral seconds into retransmissions and back as tcp.c does', () => {
    const round = (seconds: number) =>
      retransmitsToSeconds(secondsToRetransmits(seconds, DEFER_ACCEPT_TIMES), DEFER_ACCEPT_TIMES);
    expect(secondsToRetransmits(0, DEFER_ACCEPT_TIMES)).toBe(0);
    expect(retransmitsToSeconds(0, DEFER_ACCEPT_TIMES)).toBe(0);
    expect(round(1)).toBe(1);
    expect(round(2)).toBe(3); // 1 + 2
    expect(round(5)).toBe(7); // 1 + 2 + 4
    // Past TCP_RTO_MAX the timeout stays at 120 s: 127 after 7, then 120 each.
    expect(secondsToRetransmits(400, DEFER_ACCEPT_TIMES)).toBe(10);
    expect(round(400)).toBe(487);
    // At most 255 retransmissions.
    expect(secondsToRetransmits(1_000_000, DEFER_ACCEPT_TIMES)).toBe(255);
    expect(retransmitsToSeconds(255, DEFER_ACCEPT_TIMES)).toBe(127 + 120 * 248);
  });

  it('finds the one HZ whose tick is the reported one, or none', () => {
    for (const hz of [24, 100, 250, 300, 1000, 1024, 1200]) expect(hzFromTick(Math.floor(1e6 / hz))).toBe(hz);
    expect(hzFromTick(0)).toBeNull();
    expect(hzFromTick(-4)).toBeNull();
    expect(hzFromTick(2.5)).toBeNull();
    // Ticks this short fit several HZ values: none is chosen.
    expect(hzFromTick(1)).toBeNull();
  });
});

/** CONFIG_HZ of the running kernel, where it publishes its configuration. */
function configuredHz(): number | null {
  if (!existsSync('/proc/config.gz')) return null;
  const config = gunzipSync(readFileSync('/proc/config.gz')).toString('latin1');
  const match = /^CONFIG_HZ=(\d+)$/m.exec(config);
  return match ? Number(match[1]) : null;
}
const hz = configuredHz();

describe('the probe of this kernel', () => {
  it.skipIf(hz === null)(`learns the HZ the kernel was built with (skipped without /proc/config.gz)`, () => {
    expect(probeKernelUnits().hz).toBe(hz);
  });

  it('finds the deferral constants and SO_BUF_LOCK of any kernel since 5.14', () => {
    const units = probeKernelUnits();
    expect(units.deferAccept).toBe(true);
    expect(units.bufLock).toBe(true);
  });
});
