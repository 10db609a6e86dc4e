/**
 * Whether duplicating a socket could change it. Since Linux 5.9, pidfd_getfd hands the
 * duplicate over like an SCM_RIGHTS message does, and the kernel then re-tags the socket
 * with the receiver's cgroup v1 net_prio index and (when non-zero) net_cls class id
 * (__receive_sock). Where neither controller has any cgroup but the root, every socket
 * already carries the root's tags and nothing changes; otherwise knetstat must not
 * duplicate anything.
 */
import { readFileSync } from 'node:fs';

const RETAGGING_CONTROLLERS = ['net_cls', 'net_prio'];

/**
 * The controllers of /proc/cgroups (`subsys_name hierarchy num_cgroups enabled`) that
 * are enabled and have cgroups besides the root: each would re-tag a duplicated socket.
 */
export function parseRetaggingControllers(procCgroups: string): string[] {
  const found: string[] = [];
  for (const line of procCgroups.split('\n')) {
    if (line.startsWith('#')) continue;
    const [name, , count, enabled] = line.trim().split(/\s+/);
    if (name === undefined || !RETAGGING_CONTROLLERS.includes(name)) continue;
    if (enabled === '1' && Number(count) > 1) found.push(name);
  }
  return found;
}

/** As parseRetaggingControllers, for this host; none when /proc/cgroups is missing. */
export function readRetaggingControllers(procRoot = '/proc'): string[] {
  try {
    return parseRetaggingControllers(readFileSync(`${procRoot}/cgroups`, 'utf8'));
  } catch {
    return [];
  }
}
