/**
 * Where the build's own files are (src/sys/built-file.ts), from each place its code runs:
 * tsc's dist/sys/, the command's bundle in dist/ itself, the sources under test.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { builtFile, distDirectoryOf } from '../../src/sys/built-file.js';

describe('distDirectoryOf', () => {
  it('finds dist/ from tsc files, from the bundle and from the sources', () => {
    expect(distDirectoryOf('/opt/knetstat/dist/sys/built-file.js')).toBe('/opt/knetstat/dist');
    expect(distDirectoryOf('/opt/knetstat/dist/knetstat-view-B_0W9hGE.cjs')).toBe('/opt/knetstat/dist');
    expect(distDirectoryOf('/opt/knetstat/dist/knetstat.cjs')).toBe('/opt/knetstat/dist');
    expect(distDirectoryOf('/opt/knetstat/src/sys/built-file.ts')).toBe('/opt/knetstat/dist');
  });

  it('names files of this build that exist (npm test builds first)', () => {
    expect(existsSync(builtFile('sys/iterator-reader-main.js'))).toBe(true);
    expect(existsSync(builtFile('helper/child.js'))).toBe(true);
    expect(existsSync(builtFile('knetstat.cjs'))).toBe(true);
  });
});
