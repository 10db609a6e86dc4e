/**
 * Where a file of the build is, for code that starts another Node (the helper process)
 * or thread (the iterator reader) on it.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A file of the build, `path` relative to dist/. The tests import the sources, which
 * Node 20 cannot run: for them it is the built file too (npm test builds first).
 */
export function builtFile(path: string): string {
  const here = fileURLToPath(import.meta.url);
  const dist = here.endsWith('.ts') ? resolve(dirname(here), '../../dist') : resolve(dirname(here), '..');
  return join(dist, path);
}
