/**
 * Race-test plumbing: churn.py (loopback connection churn in a private network
 * namespace) and knetstat run asynchronously in that namespace, so that the test keeps
 * reading the churn's output while knetstat runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CLI } from './netns.js';

const CHURN = fileURLToPath(new URL('./churn.py', import.meta.url));

export interface ChurnConfig {
  server_port?: number;
  port_from?: number;
  port_to?: number;
  block?: number;
  workers?: number;
  keep?: number;
  rate?: number;
  duration?: number;
  max_connections?: number;
}

export interface ChurnWorker {
  worker: number;
  from: number;
  to: number;
}

export interface ChurnSummary {
  done: true;
  connections: number;
  failures: number;
  seconds: number;
}

export class Churn {
  readonly workers: ChurnWorker[] = [];
  server = 0;
  listenerUserTimeout = 0;
  private summary: ChurnSummary | null = null;
  private readonly finished: Promise<void>;

  private constructor(private readonly process: ChildProcess) {
    const lines = createInterface({ input: process.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      const record = JSON.parse(line) as Record<string, unknown>;
      if ('worker' in record) this.workers.push(record as unknown as ChurnWorker);
      else if ('server' in record) {
        this.server = record.server as number;
        this.listenerUserTimeout = record.listenerUserTimeout as number;
      } else if ('done' in record) this.summary = record as unknown as ChurnSummary;
    });
    this.finished = new Promise((resolve) => process.once('exit', () => resolve()));
  }

  /** The namespace's pid: unshare and sh exec, so the spawned pid is the supervisor's. */
  get pid(): number {
    return this.process.pid as number;
  }

  static async start(config: ChurnConfig): Promise<Churn> {
    const child = spawn(
      'unshare',
      ['-n', 'sh', '-c', `ip link set lo up && exec python3 -u ${CHURN} '${JSON.stringify(config)}'`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const churn = new Churn(child);
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (churn.server !== 0) {
          clearInterval(poll);
          resolve();
        }
      }, 20);
      child.once('exit', (code) => {
        clearInterval(poll);
        reject(new Error(`churn exited early (${code})`));
      });
    });
    return churn;
  }

  /** Stops the churn (SIGTERM) and returns its summary once every worker is reaped. */
  async stop(): Promise<ChurnSummary> {
    if (this.process.exitCode === null) this.process.kill('SIGTERM');
    await this.finished;
    if (!this.summary) throw new Error('churn ended without a summary');
    return this.summary;
  }
}

export interface KnetstatRun {
  stdout: string;
  stderr: string;
  status: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Runs knetstat in the network namespace of `pid` without blocking the event loop.
 * `timeoutMs` only bounds a hang (the run is killed and `signal` says so); no test
 * asserts how long a run takes.
 */
export function runKnetstatAsync(
  pid: number,
  args: string[],
  options: { wrap?: string[]; timeoutMs?: number } = {},
): Promise<KnetstatRun> {
  return new Promise((resolve) => {
    const child = spawn(
      'nsenter',
      ['-t', String(pid), '-n', ...(options.wrap ?? []), process.execPath, CLI, ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: options.timeoutMs ?? 120_000,
        killSignal: 'SIGKILL',
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('close', (status, signal) => resolve({ stdout, stderr, status, signal }));
  });
}
