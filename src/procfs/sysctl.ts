import { readFileSync } from 'node:fs';

/** The keepalive sysctls of the reading process's network namespace, in seconds / probes. */
export interface KeepaliveDefaults {
  time: number | null;
  probes: number | null;
  interval: number | null;
}

function readInteger(path: string): number | null {
  try {
    const value = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

export function readKeepaliveDefaults(procRoot = '/proc'): KeepaliveDefaults {
  const base = `${procRoot}/sys/net/ipv4`;
  return {
    time: readInteger(`${base}/tcp_keepalive_time`),
    probes: readInteger(`${base}/tcp_keepalive_probes`),
    interval: readInteger(`${base}/tcp_keepalive_intvl`),
  };
}
