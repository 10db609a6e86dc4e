#!/bin/sh
':' //; exec node --max-semi-space-size=2 "$0" "$@"

// The knetstat command. Run as a program, this file is a shell script first: the line
// above execs Node on this same file (through whatever symlink npm made, which Node
// resolves) with a young generation of 2 MB per semi-space rather than Node's 16. To
// Node that line is a directive and a comment, and what follows starts the CLI.
// knetstat builds one large listing that lives until it is printed, and every
// young-generation collection copies what has survived; with the smaller one, a
// listing of 36,000 sockets took 7-10% less time (README, "Performance"). Node takes
// the flag only when it starts (its command line, or NODE_OPTIONS, which is the
// user's), hence this file; `node dist/cli.js` runs the same program without it. (Kept
// out of the formatter by biome.json, not the linter: the formatter would put a
// semicolon after the directive, which would break the shell's line.)
import '../dist/cli.js';
