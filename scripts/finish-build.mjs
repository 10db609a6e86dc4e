// After tsc: makes the CLI executable and writes dist/build-id.json, a hash of every
// compiled file. knetstat and its helper process each read it when they load and
// compare it (src/helper/protocol.ts): a helper started after dist/ was replaced under
// a running knetstat is another build, and refuses to work for it.
import { createHash } from 'node:crypto';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const dist = new URL('../dist/', import.meta.url).pathname;
chmodSync(join(dist, 'cli.js'), 0o755);

function* files(directory) {
  for (const entry of readdirSync(directory, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.name.endsWith('.js')) yield path;
  }
}

const hash = createHash('sha256');
for (const path of files(dist)) hash.update(relative(dist, path)).update('\0').update(readFileSync(path));
writeFileSync(join(dist, 'build-id.json'), `${JSON.stringify({ id: hash.digest('hex').slice(0, 16) })}\n`);
