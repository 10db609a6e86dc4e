/**
 * Bad command lines, for the flags knetstat has on main: each exits 2 with one line on
 * stderr that names the problem, and nothing on stdout. (The filter and watch flags
 * have their own table, with their own issue.) knetstat rejects these before it looks
 * at any socket, so no namespace or privilege is needed.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI } from '../helpers/netns.js';

interface BadInput {
  why: string;
  argv: string[];
  /** What the one stderr line must say. */
  says: RegExp;
}

const BAD_INPUTS: BadInput[] = [
  { why: 'an unknown long flag', argv: ['--nope'], says: /unknown flag '--nope'/ },
  { why: 'an unknown short flag', argv: ['-x'], says: /unknown flag '-x'/ },
  { why: 'an unknown flag in a group of short flags', argv: ['-jx'], says: /unknown flag '-x'/ },
  { why: 'an unknown flag after --help', argv: ['--help', '--nope'], says: /unknown flag '--nope'/ },
  { why: 'a value given to a boolean flag', argv: ['--json=1'], says: /--json' does not take an argument/ },
  { why: 'a value given to -p', argv: ['--processes=yes'], says: /--processes' does not take an argument/ },
  { why: '--source with no value', argv: ['--source'], says: /--source <value>' argument missing/ },
  {
    why: '--source followed by a flag',
    argv: ['--source', '--json'],
    says: /'--source' argument is ambiguous/,
  },
  {
    why: '--source with an unknown source',
    argv: ['--source', 'bogus'],
    says: /--source must be netlink or proc, not 'bogus'/,
  },
  {
    why: '--source with an empty value',
    argv: ['--source='],
    says: /--source must be netlink or proc, not ''/,
  },
  { why: '--source in upper case', argv: ['--source', 'NETLINK'], says: /not 'NETLINK'/ },
  { why: '-o with no value', argv: ['-o'], says: /--options <value>' argument missing/ },
  { why: '--options with no value', argv: ['--options'], says: /--options <value>' argument missing/ },
  { why: '-o followed by a flag', argv: ['-o', '--json'], says: /'-o' argument is ambiguous/ },
  { why: "--options ''", argv: ['--options', ''], says: /unknown option name in --options: ''/ },
  {
    why: '--options with an unknown name',
    argv: ['--options', 'SO_NOPE'],
    says: /unknown option name in --options: 'SO_NOPE'/,
  },
  {
    why: '--options with one unknown name among known ones',
    argv: ['--options', 'SO_KEEPALIVE,SO_NOPE,TCP_NODELAY'],
    says: /'SO_NOPE'/,
  },
  { why: '--options with an empty name in the list', argv: ['-o', 'SO_KEEPALIVE,,TCP_NODELAY'], says: /''/ },
  {
    why: '--options mixing a set name with option names',
    argv: ['-o', 'knetstat,SO_MARK'],
    says: /'KNETSTAT'/,
  },
  { why: 'a forbidden option (it clears the error it reads)', argv: ['-o', 'SO_ERROR'], says: /'SO_ERROR'/ },
  {
    why: 'an unknown table',
    argv: ['tcp7'],
    says: /unknown table 'tcp7' \(expected tcp, tcp6, udp or udp6\)/,
  },
  { why: 'an unknown table after a good one', argv: ['tcp', 'bogus'], says: /unknown table 'bogus'/ },
  { why: 'an empty table name', argv: [''], says: /unknown table ''/ },
  { why: 'a flag after --, read as a table', argv: ['--', '--json'], says: /unknown table '--json'/ },
  { why: 'a bad value that holds a newline', argv: ['--source', 'a\nb'], says: /not 'a\\x0ab'/ },
  { why: 'a bad value that holds an escape sequence', argv: ['tc\x1b[31mp'], says: /'tc\\x1b\[31mp'/ },
];

describe('bad command lines', () => {
  for (const { why, argv, says } of BAD_INPUTS) {
    it(`${why}: exit 2, one line on stderr, nothing on stdout (${JSON.stringify(argv)})`, () => {
      const run = spawnSync(process.execPath, [CLI, ...argv], { encoding: 'utf8' });
      expect(run.stdout).toBe('');
      expect(run.status).toBe(2);
      expect(run.stderr.endsWith('\n')).toBe(true);
      const lines = run.stderr.slice(0, -1).split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^knetstat: /);
      expect(lines[0]).toMatch(says);
      // The message is inert: no control character reaches the terminal.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
      expect(lines[0]).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    });
  }
});
