/**
 * Where a file of the build is, for code that starts another Node (the helper process)
 * or thread (the iterator reader) on it.
 */
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A file of the build, `path` relative to dist/. This code runs from dist/sys/ (tsc's
 * files), from dist/ itself (the command's bundle: scripts/finish-build.mjs), or from
 * src/sys/ in the tests, which import the sources, which Node 20 cannot run: for them it
 * is the built file too (npm test builds first).
 */
export function builtFile(path: string): string {
  return join(distDirectoryOf(fileURLToPath(import.meta.url)), path);
}

/** dist/, from the file this code runs from (see builtFile). */
export function distDirectoryOf(modulePath: string): string {
  const directory = dirname(modulePath);
  if (modulePath.endsWith('.ts')) return resolve(directory, '../../dist');
  if (basename(directory) === 'sys') return resolve(directory, '..');
  return directory;
}
