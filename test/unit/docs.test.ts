/** The help and the man page document every flag the parser accepts, and the man page is installed. */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLI_FLAGS } from '../../src/args.js';
import { HELP } from '../../src/help.js';

const root = new URL('../../', import.meta.url);
const MAN = readFileSync(new URL('man/knetstat.1', root), 'utf8');

describe('documentation', () => {
  it.each(Object.entries(CLI_FLAGS))('--%s is in --help and in the man page', (name, spec) => {
    expect(HELP).toContain(`--${name}`);
    expect(MAN).toContain(`\\-\\-${name}`);
    if ('short' in spec) {
      expect(HELP).toContain(`-${spec.short}, --${name}`);
      expect(MAN).toContain(`\\-${spec.short}`);
    }
  });
  it('package.json installs the man page', () => {
    const packageJson = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
      man: string[];
      files: string[];
    };
    expect(packageJson.man).toEqual(['man/knetstat.1']);
    for (const page of packageJson.man) expect(existsSync(new URL(page, root))).toBe(true);
    expect(packageJson.files).toContain('man');
  });
  it('the help fits 80 columns', () => {
    for (const line of HELP.split('\n')) expect(line.length, line).toBeLessThanOrEqual(80);
  });
});
