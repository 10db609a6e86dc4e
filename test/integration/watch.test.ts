/**
 * `-w/--watch`: under a pseudo-terminal (util-linux `script`) it redraws in place,
 * highlights a socket that appeared between two refreshes and gives the terminal back
 * on `q`; without a terminal it writes one snapshot per interval (NDJSON with --json)
 * and ends cleanly on SIGINT or SIGTERM. Nothing here measures time: each step waits
 * for the output it needs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, netnsUnavailableReason, SocketChild } from '../helpers/netns.js';

const skip = netnsUnavailableReason();

type Address = [string, number];

/** A spawned process whose output is collected, with a way to wait for a condition on it. */
class Collected {
  output = '';
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];

  constructor(readonly process: ChildProcess) {
    process.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.exit = new Promise((resolve) => process.once('close', (code, signal) => resolve({ code, signal })));
    void this.exit.then(() => {
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Resolves once `condition(output)` holds; rejects if the process ends first. */
  async until<T>(condition: (output: string) => T | undefined | false): Promise<T> {
    let exited = false;
    void this.exit.then(() => {
      exited = true;
    });
    for (;;) {
      const result = condition(this.output);
      if (result) return result;
      if (exited || this.process.exitCode !== null) {
        throw new Error(
          `exited before the expected output; got:\n${JSON.stringify(this.output.slice(-2000))}`,
        );
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
}

/** The complete frames drawn so far: each starts with cursor-home and ends with clear-below. */
function frames(output: string): string[][] {
  return output
    .split('\x1b[H')
    .slice(1)
    .filter((f) => f.includes('\x1b[J'))
    .map((f) =>
      (f.split('\x1b[J')[0] as string)
        .split('\x1b[K')
        .map((l) => l.replace(/^\r?\n/, ''))
        .filter((l) => l !== ''),
    );
}

const INVERSE = '\x1b[7m';

describe.skipIf(skip !== null)(`watch mode${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let child: SocketChild;
  const running: ChildProcess[] = [];
  beforeAll(async () => {
    child = await SocketChild.start();
  });
  afterAll(async () => {
    for (const p of running) if (p.exitCode === null) p.kill('SIGKILL');
    await child?.stop();
  });

  function environment(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm' };
    delete env.NO_COLOR;
    return env;
  }

  it('on a terminal: redraws, highlights a new socket, restores the terminal on q', async () => {
    const first = await child.run<{ local: Address }>({ op: 'listen', id: 'First' });
    const knetstat = `nsenter -t ${child.pid} -n ${process.execPath} ${CLI} -w 0.2 -p tcp`;
    // stty sets a size (a fresh pty has none) and, after knetstat, shows the modes it left.
    const shell = `stty rows 40 cols 200; ${knetstat}; echo "knetstat-exit=$?"; stty -a`;
    const run = new Collected(
      spawn('script', ['-qfec', shell, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: environment() }),
    );
    running.push(run.process);
    const firstPort = `127.0.0.1:${first.local[1]} `;
    await run.until((out) => frames(out).length >= 2);
    expect(run.output.startsWith('\x1b[?1049h\x1b[?25l')).toBe(true); // alternate screen, cursor hidden
    const [status] = frames(run.output)[0] as [string];
    expect(status).toContain('1 socket: tcp 1');
    expect(status).toContain('every 0.2s');

    const second = await child.run<{ local: Address }>({ op: 'listen', id: 'Second' });
    const secondPort = `127.0.0.1:${second.local[1]} `;
    const appeared = await run.until((out) => frames(out).find((f) => f.some((l) => l.includes(secondPort))));
    const newRow = appeared.find((l) => l.includes(secondPort)) as string;
    const oldRow = appeared.find((l) => l.includes(firstPort)) as string;
    expect(newRow.startsWith(INVERSE)).toBe(true);
    expect(oldRow.startsWith(INVERSE)).toBe(false);
    expect(oldRow).toContain(`${child.pid}/python3`);
    expect(appeared[0]).toContain('2 sockets: tcp 2');
    // One refresh later nothing changed: no highlight.
    const seen = frames(run.output).length;
    const calm = await run.until((out) => frames(out).slice(seen)[0]);
    expect(calm.find((l) => l.includes(secondPort))?.startsWith(INVERSE)).toBe(false);

    run.process.stdin?.write('q');
    expect((await run.exit).code).toBe(0);
    const tail = run.output.slice(run.output.lastIndexOf('\x1b[J'));
    expect(tail).toContain('\x1b[?25h\x1b[?1049l'); // cursor shown, alternate screen left
    expect(tail).toContain('knetstat-exit=0');
    const modes = tail.slice(tail.indexOf('speed'));
    // Raw mode is off again: canonical input and echo are back.
    expect(modes).toMatch(/(^|\s)icanon(\s|$)/);
    expect(modes).toMatch(/(^|\s)echo(\s|$)/);
    expect(modes).not.toMatch(/-icanon|(^|\s)-echo(\s|$)/);
  });

  it('on a terminal: Ctrl-C leaves cleanly too', async () => {
    const knetstat = `nsenter -t ${child.pid} -n ${process.execPath} ${CLI} --watch=0.2 tcp`;
    const run = new Collected(
      spawn(
        'script',
        ['-qfec', `stty rows 30 cols 160; ${knetstat}; echo "knetstat-exit=$?"; stty -a`, '/dev/null'],
        {
          stdio: ['pipe', 'pipe', 'pipe'],
          env: environment(),
        },
      ),
    );
    running.push(run.process);
    await run.until((out) => frames(out).length >= 1);
    run.process.stdin?.write('\x03');
    expect((await run.exit).code).toBe(0);
    const tail = run.output.slice(run.output.lastIndexOf('\x1b[J'));
    expect(tail).toContain('\x1b[?25h\x1b[?1049l');
    expect(tail).toContain('knetstat-exit=0');
    expect(tail.slice(tail.indexOf('speed'))).toMatch(/(^|\s)icanon(\s|$)/);
  });

  function spawnInNetns(args: string[]): Collected {
    const run = new Collected(
      spawn('nsenter', ['-t', String(child.pid), '-n', process.execPath, CLI, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    running.push(run.process);
    return run;
  }

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`without a terminal, --json: one NDJSON line per refresh, clean exit on ${signal}`, async () => {
      const run = spawnInNetns(['--json', '-w', '0.2', 'tcp']);
      await run.until((out) => out.split('\n').length > 1);
      const added = await child.run<{ local: Address }>({ op: 'listen', id: `Added${signal}` });
      const linesBefore = run.output.split('\n').length - 1;
      // A later line shows the socket made after the earlier ones were written.
      await run.until((out) => {
        const lines = out.split('\n').slice(linesBefore, -1);
        return (
          lines.some((l) => l.includes(`"port":${added.local[1]}`)) &&
          out.split('\n').length > linesBefore + 2
        );
      });
      run.process.kill(signal);
      const exit = await run.exit;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(run.output.endsWith('\n')).toBe(true);
      const lines = run.output.trimEnd().split('\n');
      expect(lines.length).toBeGreaterThanOrEqual(3);
      for (const line of lines) {
        const document = JSON.parse(line) as { time: string; sockets: Array<{ local: { port: number } }> };
        expect(Number.isNaN(Date.parse(document.time))).toBe(false);
        expect(Array.isArray(document.sockets)).toBe(true);
      }
      const first = JSON.parse(lines[0] as string) as { sockets: Array<{ local: { port: number } }> };
      expect(first.sockets.some((s) => s.local.port === added.local[1])).toBe(false);
    });
  }

  it('without a terminal, text: a status line and the tables per refresh; --summary --json as NDJSON', async () => {
    const text = spawnInNetns(['-w', '0.2', '-l', 'tcp']);
    await text.until((out) => (out.match(/^knetstat \d\d:\d\d:\d\d · /gm) ?? []).length >= 2);
    text.process.kill('SIGINT');
    expect((await text.exit).code).toBe(0);
    const snapshot = text.output.split('\n\n')[0] as string;
    const [status, header] = snapshot.split('\n') as [string, string];
    expect(status).toMatch(/ · \d+ sockets?: tcp \d+ · every 0\.2s$/);
    expect(header).toMatch(/^Recv-Q Send-Q Local Address/);
    expect(text.output).not.toContain('\x1b');

    const summary = spawnInNetns(['--summary', '--json', '-w', '0.2', 'tcp']);
    await summary.until((out) => out.split('\n').length > 2);
    summary.process.kill('SIGTERM');
    expect((await summary.exit).code).toBe(0);
    for (const line of summary.output.trimEnd().split('\n')) {
      const document = JSON.parse(line) as { summary: { total: number; tables: Record<string, unknown> } };
      expect(Object.keys(document.summary.tables)).toEqual(['tcp']);
    }
  });
});
