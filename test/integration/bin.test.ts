/**
 * The knetstat command as npm installs it: bin/knetstat.cjs, reached through a symlink,
 * a shell script first that starts Node on itself (and so on dist/knetstat.cjs, the
 * bundled program) with the heap flags it is measured with, passes every argument
 * through unchanged, and exits with the program's status; run by Node directly, the
 * same file is the program. (That the bundle finds the build's other files through
 * src/sys/built-file.ts from where its chunks are, scripts/finish-build.mjs checks at
 * every build, and test/unit/built-file.test.ts the rule it checks.)
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'knetstat.cjs');

describe('bin/knetstat.cjs', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'knetstat-bin-'));
  // A `node` first on PATH that notes its arguments, then runs the real one.
  const log = join(scratch, 'argv');
  const fakeNode = join(scratch, 'path', 'node');
  const linked = join(scratch, 'node_modules', '.bin', 'knetstat');
  for (const dir of [dirname(fakeNode), dirname(linked)]) mkdirSync(dir, { recursive: true });
  writeFileSync(fakeNode, `#!/bin/sh\nprintf '%s\\n' "$@" > '${log}'\nexec '${process.execPath}' "$@"\n`);
  chmodSync(fakeNode, 0o755);
  symlinkSync(BIN, linked);
  const env = { ...process.env, PATH: `${dirname(fakeNode)}:${process.env.PATH}` };

  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it('runs Node with its heap flags on itself, through the symlink npm makes', () => {
    const run = spawnSync(linked, ['--version'], { encoding: 'utf8', env, cwd: scratch });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^knetstat \d+\.\d+\.\d+\n$/);
    // Node is handed the symlink, which it resolves to find dist/ next to bin/.
    expect(readFileSync(log, 'utf8').split('\n')).toEqual([
      '--max-semi-space-size=2',
      '--initial-old-space-size=64',
      linked,
      '--version',
      '',
    ]);
  });

  it('is the program itself when Node runs it', () => {
    const run = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^knetstat \d+\.\d+\.\d+\n$/);
  });

  it('is the same program unbundled, as tsc emits it (node dist/cli.js)', () => {
    const bundled = spawnSync(process.execPath, [join(ROOT, 'dist', 'knetstat.cjs'), '--help'], {
      encoding: 'utf8',
    });
    const unbundled = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), '--help'], {
      encoding: 'utf8',
    });
    expect(bundled.status).toBe(0);
    expect(unbundled.status).toBe(0);
    expect(unbundled.stdout).toBe(bundled.stdout);
    const bad = spawnSync(process.execPath, [join(ROOT, 'dist', 'cli.js'), '--state', 'nope'], {
      encoding: 'utf8',
    });
    expect(bad.status).toBe(2);
  });

  it("passes arguments through unchanged, and exits with the program's status", () => {
    const run = spawnSync(BIN, ['--state', 'no such state', '--json'], { encoding: 'utf8', env });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^knetstat: .*no such state/);
    expect(readFileSync(log, 'utf8').split('\n').slice(3, 6)).toEqual(['--state', 'no such state', '--json']);
  });
});
