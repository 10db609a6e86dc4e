/**
 * Races: sockets open and close, processes exit and fds are reused while knetstat
 * collects. churn.py gives every socket values derived from its own port and its own
 * pid (SO_MARK = pid, TCP_USER_TIMEOUT = 1000 + port, SO_RCVLOWAT = port), so a row that
 * shows another socket's options, or names a process that never held that port, is
 * caught however the race fell.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonSocket as JsonRow } from '../../src/render/json.js';
import { Churn, type ChurnSummary, type KnetstatRun, runKnetstatAsync } from '../helpers/churn.js';
import { netnsUnavailableReason } from '../helpers/netns.js';

const skip = netnsUnavailableReason();

const SERVER_PORT = 10000;
const PORT_FROM = 20000;
const PORT_TO = 59999;
const COLLECTIONS = 20;

/** The only stderr line a collection may print: the count of sockets whose options are unknown. */
const SUMMARY_LINE = /^knetstat: options unknown for \d+ sockets?: [^\n]*$/;
const TEXT_ROW = /^ {0,5}\d+ {1,6}\d+ \S+ +\S+ +/;

describe.skipIf(skip !== null)(
  `collections under connection churn${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let churn: Churn;
    const jsonRuns: KnetstatRun[] = [];
    const textRuns: KnetstatRun[] = [];
    let summary: ChurnSummary;

    beforeAll(async () => {
      churn = await Churn.start({
        server_port: SERVER_PORT,
        port_from: PORT_FROM,
        port_to: PORT_TO,
        // 2 x 1000 connections a second; each lives about 3 s (longer than a collection
        // takes on a loaded host), each worker about 6 s.
        workers: 2,
        rate: 1000,
        block: 6000,
        keep: 3000,
        duration: 300,
        max_connections: 3_000_000,
      });
      // In a row, as an operator's loop would run them; a text run after every fourth.
      for (let i = 0; i < COLLECTIONS; i++) {
        jsonRuns.push(await runKnetstatAsync(churn.pid, ['--json']));
        if (i % 4 === 3) textRuns.push(await runKnetstatAsync(churn.pid, ['-p', '-o', 'all']));
      }
      summary = await churn.stop();
    }, 300_000);

    afterAll(async () => {
      await churn?.stop().catch(() => undefined);
    });

    it('churned while the collections ran', () => {
      expect(summary.connections).toBeGreaterThan(0);
      // More than two worker generations: processes exited and new ones appeared meanwhile.
      expect(churn.workers.length).toBeGreaterThan(2);
    });

    it('every collection exits 0 with valid JSON and at most the summary line on stderr', () => {
      expect(jsonRuns).toHaveLength(COLLECTIONS);
      for (const run of jsonRuns) {
        expect(run.signal).toBeNull();
        expect(run.stderr.split('\n').filter((l) => l !== '' && !SUMMARY_LINE.test(l))).toEqual([]);
        expect(run.stderr.split('\n').filter((l) => l !== '').length).toBeLessThanOrEqual(1);
        expect(run.status).toBe(0);
        expect(Array.isArray(JSON.parse(run.stdout))).toBe(true);
      }
    });

    it('every text collection exits 0 with only headers and well-formed rows', () => {
      for (const run of textRuns) {
        expect(run.status).toBe(0);
        expect(run.stderr.split('\n').filter((l) => l !== '' && !SUMMARY_LINE.test(l))).toEqual([]);
        const lines = run.stdout.split('\n');
        expect(lines.pop()).toBe('');
        for (const line of lines) {
          if (line.startsWith('Recv-Q Send-Q ')) continue;
          expect(line).toMatch(TEXT_ROW);
        }
        expect(lines.filter((l) => l.startsWith('Recv-Q')).length).toBe(4);
      }
    });

    it('attributes every row to a process that held its port and shows only that socket’s options', () => {
      // Every pid that was handed each client port (the cursor may wrap and reuse ports).
      const pidsByPort = new Map<number, Set<number>>();
      for (const w of churn.workers) {
        for (let port = w.from; port <= w.to; port++) {
          const pids = pidsByPort.get(port) ?? new Set<number>();
          pids.add(w.worker);
          pidsByPort.set(port, pids);
        }
      }
      const workerPids = new Set(churn.workers.map((w) => w.worker));
      let checkedOptions = 0;
      let checkedOwners = 0;
      const problems: string[] = [];
      const seenWorkers = new Set<number>();
      for (const [index, run] of jsonRuns.entries()) {
        const rows = JSON.parse(run.stdout) as JsonRow[];
        for (const row of rows) {
          const where = `run ${index}: ${row.protocol} ${row.state} ${row.local.port}->${row.remote.port} inode ${row.inode}`;
          const pids = row.processes.map((p) => p.pid);
          const isServerSide = row.protocol === 'tcp' && row.local.port === SERVER_PORT;
          let expectedOwners: Set<number> | undefined;
          if (isServerSide) expectedOwners = new Set([churn.server]);
          else if (row.local.port >= PORT_FROM && row.local.port <= PORT_TO)
            expectedOwners = pidsByPort.get(row.local.port);
          if (!expectedOwners) {
            problems.push(`${where}: a port the churn never handed out`);
            continue;
          }
          for (const pid of pids) {
            checkedOwners++;
            if (!expectedOwners.has(pid)) problems.push(`${where}: owner ${pid} never held this port`);
            if (workerPids.has(pid)) seenWorkers.add(pid);
          }
          if (row.state === 'TIME_WAIT' || row.state === 'SYN_RECV') {
            if (row.options !== null) problems.push(`${where}: a mini-socket with options`);
            continue;
          }
          if (row.options === null) {
            if (typeof row.optionsError !== 'string' || row.optionsError === '')
              problems.push(`${where}: options null without a reason`);
            continue;
          }
          checkedOptions++;
          const mark = row.options.SO_MARK;
          if (!pids.includes(mark as number))
            problems.push(`${where}: SO_MARK ${mark} is not an owner's pid`);
          if (row.protocol === 'udp') {
            if (row.options.SO_RCVLOWAT !== row.local.port)
              problems.push(`${where}: SO_RCVLOWAT ${row.options.SO_RCVLOWAT}, not its port`);
          } else if (!isServerSide) {
            if (row.options.TCP_USER_TIMEOUT !== 1000 + row.local.port)
              problems.push(
                `${where}: TCP_USER_TIMEOUT ${row.options.TCP_USER_TIMEOUT}, not 1000 + its port`,
              );
          } else if (row.state === 'LISTEN') {
            if (row.options.TCP_USER_TIMEOUT !== churn.listenerUserTimeout)
              problems.push(`${where}: listener TCP_USER_TIMEOUT ${row.options.TCP_USER_TIMEOUT}`);
          } else {
            // Accepted: the listener's inherited value until the server sets 1000 + the peer's port.
            const allowed = [churn.listenerUserTimeout, 1000 + row.remote.port];
            if (!allowed.includes(row.options.TCP_USER_TIMEOUT as number))
              problems.push(`${where}: accepted TCP_USER_TIMEOUT ${row.options.TCP_USER_TIMEOUT}`);
          }
        }
      }
      expect(problems).toEqual([]);
      // The checks above ran on real rows, not on an empty listing.
      expect(checkedOptions).toBeGreaterThan(COLLECTIONS);
      expect(checkedOwners).toBeGreaterThan(COLLECTIONS);
      expect(seenWorkers.size).toBeGreaterThan(1);
    });
  },
);
