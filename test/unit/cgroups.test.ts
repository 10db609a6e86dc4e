import { describe, expect, it } from 'vitest';
import { parseRetaggingControllers } from '../../src/procfs/cgroups.js';

const HEADER = '#subsys_name\thierarchy\tnum_cgroups\tenabled\n';

describe('parseRetaggingControllers (/proc/cgroups)', () => {
  it('finds none where net_cls and net_prio have only the root cgroup (cgroup v2 hosts)', () => {
    expect(
      parseRetaggingControllers(
        `${HEADER}cpu\t1\t40\t1\nnet_cls\t0\t1\t1\nnet_prio\t0\t1\t1\nmemory\t4\t18\t1\n`,
      ),
    ).toEqual([]);
  });

  it('names each enabled controller that has cgroups besides the root', () => {
    expect(parseRetaggingControllers(`${HEADER}net_cls\t3\t2\t1\nnet_prio\t3\t7\t1\n`)).toEqual([
      'net_cls',
      'net_prio',
    ]);
    expect(parseRetaggingControllers(`${HEADER}net_cls\t3\t1\t1\nnet_prio\t3\t7\t1\n`)).toEqual(['net_prio']);
  });

  it('ignores a disabled controller, other controllers, and a kernel without either', () => {
    expect(parseRetaggingControllers(`${HEADER}net_prio\t3\t7\t0\n`)).toEqual([]);
    expect(parseRetaggingControllers(`${HEADER}memory\t4\t18\t1\npids\t8\t30\t1\n`)).toEqual([]);
    expect(parseRetaggingControllers('')).toEqual([]);
  });
});
