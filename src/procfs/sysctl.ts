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

/**
 * The sysctls getsockopt falls back on for a socket that set no value of its own, of the
 * reading process's network namespace (the one knetstat lists); null where unreadable.
 */
export interface OptionDefaults {
  /** tcp_fin_timeout, in seconds: TCP_LINGER2 of a socket with linger2 0. */
  finTimeout: number | null;
  /** ip_default_ttl: IP_TTL of a socket with uc_ttl -1. */
  defaultTtl: number | null;
  /** tcp_pingpong_thresh (Linux 6.x): TCP_QUICKACK is 0 from this many pingpong exchanges. */
  pingpongThreshold: number | null;
}

export function readOptionDefaults(procRoot = '/proc'): OptionDefaults {
  const base = `${procRoot}/sys/net/ipv4`;
  return {
    finTimeout: readInteger(`${base}/tcp_fin_timeout`),
    defaultTtl: readInteger(`${base}/ip_default_ttl`),
    pingpongThreshold: readInteger(`${base}/tcp_pingpong_thresh`),
  };
}
