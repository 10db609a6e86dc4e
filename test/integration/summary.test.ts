/** `--summary`: its counts are the counts of the rows the same filters list. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsUnavailableReason, SocketChild } from '../helpers/netns.js';
import type { JsonRow } from '../helpers/rows.js';

const skip = netnsUnavailableReason();

interface SummaryJson {
  total: number;
  tables: Record<string, { total: number; states: Record<string, number> }>;
  diag: Record<string, number>;
  options: Record<string, Record<string, Record<string, number>>>;
  optionsUnknown: Record<string, Record<string, Record<string, number>>>;
}

function tableOf(row: JsonRow): string {
  return `${row.protocol}${row.family === 6 ? '6' : ''}`;
}

/** Adds one to counts[outer][inner]. */
function bump(counts: Record<string, Record<string, number>>, outer: string, inner: string): void {
  const entry = counts[outer] ?? {};
  entry[inner] = (entry[inner] ?? 0) + 1;
  counts[outer] = entry;
}

/** Counts per table and state, from rows. */
function countRows(rows: readonly JsonRow[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const row of rows) bump(out, tableOf(row), row.state);
  return out;
}

describe.skipIf(skip !== null)(`--summary${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  beforeAll(async () => {
    child = await SocketChild.start();
    await child.run({ op: 'listen', id: 'L' });
    await child.run({ op: 'connect', id: 'C1', to: 'L', accept_as: 'A1', options: [[1, 9, 1]] });
    await child.run({ op: 'connect', id: 'C2', to: 'L', accept_as: 'A2' });
    await child.run({ op: 'connect', id: 'C3', to: 'L', accept_as: 'A3', options: [[6, 1, 1]] });
    await child.run({ op: 'timewait', to: 'L' });
    await child.run({ op: 'listen', id: 'L6', family: 6, address: '::1', options: [[1, 9, 1]] });
    await child.run({ op: 'udp', id: 'U', options: [[1, 6, 1]] });
    await child.run({ op: 'udp', id: 'U6', family: 6, address: '::1' });
  });
  afterAll(async () => {
    await child?.stop();
  });

  for (const filters of [[], ['--state', 'established'], ['-l'], ['--option', 'SO_KEEPALIVE=0', 'tcp']]) {
    it(`counts the rows per table and state (${filters.join(' ') || 'no filter'})`, () => {
      const rows = JSON.parse(child.knetstat(['--json', ...filters]).stdout) as JsonRow[];
      const summary = JSON.parse(child.knetstat(['--summary', '--json', ...filters]).stdout) as SummaryJson;
      expect(summary.total).toBe(rows.length);
      const counted = countRows(rows);
      for (const [table, entry] of Object.entries(summary.tables)) {
        expect(entry.states).toEqual(counted[table] ?? {});
        expect(entry.total).toBe(rows.filter((r) => tableOf(r) === table).length);
      }
      expect(Object.keys(counted).every((t) => t in summary.tables)).toBe(true);

      // Per value of a knetstat option that is always shown: as the rows have it.
      for (const [protocol, name] of [
        ['tcp', 'SO_KEEPALIVE'],
        ['tcp', 'TCP_NODELAY'],
        ['udp', 'SO_BROADCAST'],
      ] as const) {
        const expected: Record<string, Record<string, number>> = {};
        for (const row of rows) {
          if (row.protocol !== protocol || row.options === null) continue;
          bump(expected, `${name}=${row.options[name]}`, row.state);
        }
        const shown = Object.fromEntries(
          Object.entries(summary.options[protocol] ?? {}).filter(([token]) => token.startsWith(`${name}=`)),
        );
        expect(shown).toEqual(expected);
      }
    });
  }

  it('has the counts in text as `NAME=VALUE: N state`', () => {
    const rows = JSON.parse(child.knetstat(['--json', 'tcp']).stdout) as JsonRow[];
    const withoutKeepalive = rows.filter((r) => r.state === 'ESTABLISHED' && r.options?.SO_KEEPALIVE === 0);
    const { stdout, stderr, status } = child.knetstat(['--summary', 'tcp']);
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(withoutKeepalive.length).toBeGreaterThan(0);
    expect(stdout).toContain(`\n  SO_KEEPALIVE=0: ${withoutKeepalive.length} established`);
    expect(stdout).toMatch(new RegExp(`^Sockets: ${rows.length}\\n  tcp +${rows.length}  `));
    // TIME_WAIT rows are counted as sockets but have no options to count.
    const timeWait = rows.filter((r) => r.state === 'TIME_WAIT').length;
    expect(timeWait).toBeGreaterThan(0);
    expect(stdout).toContain(`${timeWait} time_wait`);
    expect(stdout).not.toMatch(/=.*time_wait/);
  });
});
