/**
 * This process's effective capabilities, as /proc/self/status shows them: what decides
 * whether a helper, the BPF passes or a full owner scan can do what they need.
 */
import { readFileSync } from 'node:fs';

export const CAP_DAC_READ_SEARCH = 2;
export const CAP_SYS_PTRACE = 19;
export const CAP_SYS_ADMIN = 21;
export const CAP_PERFMON = 38;
export const CAP_BPF = 39;

/**
 * The effective set (CapEff) as a bit mask: 0n where the line is missing, null where
 * /proc/self/status cannot be read at all.
 */
export function effectiveCapabilities(): bigint | null {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'latin1');
  } catch {
    return null;
  }
  const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return match === null ? 0n : BigInt(`0x${match[1]}`);
}

/** Whether this process has every one of the capabilities `caps` in its effective set. */
export function hasCapabilities(...caps: number[]): boolean {
  const effective = effectiveCapabilities();
  return effective !== null && caps.every((cap) => ((effective >> BigInt(cap)) & 1n) === 1n);
}
