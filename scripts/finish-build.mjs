// After tsc: bundles the command, makes it executable, and writes dist/build-id.json.
// With --before (before tsc): removes the last bundle and build id, so that a tsc that
// fails, leaving new files and no new bundle, leaves no command either, rather than an
// old bundle beside new helper and thread files under an id that says they match.
//
// The command (bin/knetstat.cjs) runs dist/knetstat.cjs: dist/cli.js and everything it
// imports, bundled by rolldown into a few files (knetstat-*.cjs chunks beside it, the
// collector among them, still loaded only once the arguments are good). Node loads some
// fifty separate modules one by one, each resolved, read, compiled and linked on its
// own: bundled, a listing of 36,000 sockets took 45 ms less (README, "Performance").
// The bundle is CommonJS so that Node's ES module loader, 15-30 ms to start here, is
// never started in the command's process; rolldown turns each import.meta.url into the
// file's own URL.
// koffi stays outside, loaded from node_modules; the helper process (helper/child.js)
// and the iterator reader thread (sys/iterator-reader-main.js) run tsc's files, found
// through src/sys/built-file.ts. The library (dist/index.js) is tsc's files too.
//
// build-id.json is a hash of every compiled file. knetstat and its helper process each
// read it when they load and compare it (src/helper/protocol.ts): a helper started after
// dist/ was replaced under a running knetstat is another build, and refuses to work for it.
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build } from 'rolldown';

const dist = new URL('../dist/', import.meta.url).pathname;

/** The last build's bundle and id. */
function removeLastBundle() {
  if (!existsSync(dist)) return;
  for (const entry of readdirSync(dist))
    if (entry.startsWith('knetstat') || entry === 'build-id.json') rmSync(join(dist, entry), { force: true });
}

removeLastBundle();
if (process.argv.includes('--before')) process.exit(0);
await build({
  input: join(dist, 'cli.js'),
  platform: 'node',
  external: ['koffi'],
  logLevel: 'warn',
  output: {
    dir: dist,
    format: 'cjs',
    entryFileNames: 'knetstat.cjs',
    chunkFileNames: 'knetstat-[name]-[hash].cjs',
    sourcemap: true,
  },
});
chmodSync(join(dist, 'cli.js'), 0o755);
chmodSync(join(dist, 'knetstat.cjs'), 0o755);

// The bundle finds the helper's and the reader thread's files through builtFile, from
// wherever its chunks landed: check that, for each chunk, that is this dist/.
const { distDirectoryOf } = await import(join(dist, 'sys', 'built-file.js'));
for (const entry of readdirSync(dist))
  if (
    entry.startsWith('knetstat') &&
    entry.endsWith('.cjs') &&
    distDirectoryOf(join(dist, entry)) !== dist.replace(/\/$/, '')
  )
    throw new Error(
      `finish-build: the bundle's ${entry} would look for the build's files elsewhere than ${dist}`,
    );

function* files(directory) {
  for (const entry of readdirSync(directory, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.name.endsWith('.js') || entry.name.endsWith('.cjs')) yield path;
  }
}

const hash = createHash('sha256');
for (const path of files(dist)) hash.update(relative(dist, path)).update('\0').update(readFileSync(path));
writeFileSync(join(dist, 'build-id.json'), `${JSON.stringify({ id: hash.digest('hex').slice(0, 16) })}\n`);
