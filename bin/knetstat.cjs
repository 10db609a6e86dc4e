#!/bin/sh
':' //; exec node --max-semi-space-size=2 --initial-old-space-size=64 "$0" "$@"

// The knetstat command. Run as a program, this file is a shell script first: the line
// above execs Node on this same file (through whatever symlink npm made, which Node
// resolves) with a young generation of 2 MB per semi-space rather than Node's 16, and
// an old generation that starts at 64 MB. To Node that line is a directive and a
// comment, and what follows starts the CLI. knetstat builds one large listing that
// lives until it is printed: every young-generation collection copies what has
// survived, and each time the old generation reaches its limit a full collection
// marks it all only to find nearly everything alive. With the smaller young
// generation a listing of 36,000 sockets took 7-10% less time, and with the larger
// start of the old one, which skips two full collections, 1-3% less (README,
// "Performance"). Node takes these flags only when it starts (its command line, or
// NODE_OPTIONS, which is the user's), hence this file; `node dist/cli.js` runs the
// same program without them.
//
// This file and the bundle it loads, dist/knetstat.cjs (scripts/finish-build.mjs), are
// CommonJS, though the sources are ES modules: Node then never starts its ES module
// loader in this process, which costs 15-30 ms before any of knetstat runs. (Kept out of
// the formatter by biome.json, not the linter: the formatter would put a semicolon
// after the directive, which would break the shell's line.)
require('../dist/knetstat.cjs');
