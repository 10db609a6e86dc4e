/**
 * Bad input: one line on stderr naming what is wrong, exit 2, nothing on stdout. The
 * arguments are checked before anything is collected, so these need no namespace.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI } from '../helpers/netns.js';

const BAD_INPUTS: ReadonlyArray<readonly [string[], RegExp]> = [
  [['--state', 'NOPE'], /unknown state 'NOPE' in --state/],
  [['--state', 'established', '--state', 'half-open'], /unknown state 'half-open'/],
  [['--state'], /--state <value>' argument missing/],
  [['--pid', 'abc'], /--pid needs a process id, not 'abc'/],
  [['--pid', '0'], /--pid needs a process id from 1 to \d+, not '0'/],
  [['--pid', '12.5'], /--pid needs a process id, not '12\.5'/],
  [['--port', '70000'], /--port needs a port number from 1 to 65535, not '70000'/],
  [['--port', '0'], /--port needs a port number from 1 to 65535, not '0'/],
  [['--port', 'http'], /--port needs a port number, not 'http'/],
  [['--option', 'X=='], /--option 'X==': unknown option name 'X'/],
  [['--option', 'SO_KEEPALIVE=='], /--option 'SO_KEEPALIVE==': '=' is not a number/],
  [['--option', 'NOT_AN_OPTION'], /--option 'NOT_AN_OPTION': unknown option name 'NOT_AN_OPTION'/],
  [['--option', 'SO_KEEPALIVE=yes'], /--option 'SO_KEEPALIVE=yes': 'yes' is not a number/],
  [['--option', 'SO_KEEPALIVE='], /--option 'SO_KEEPALIVE=': a value is missing/],
  [
    ['--option', 'TCP_CONGESTION>3'],
    /--option 'TCP_CONGESTION>3': TCP_CONGESTION is a name, compared with = or != only/,
  ],
  [['--option', 'SO_KEEPALIVE=off'], /--option 'SO_KEEPALIVE=off': 'off' applies to SO_LINGER only/],
  [['--option', '=1'], /--option '=1': expected NAME, NAME=VALUE/],
  [['--local', '300.1.1.1'], /--local '300\.1\.1\.1': '300\.1\.1\.1' is not an IPv4 or IPv6 address/],
  [['--local', '10.0.0.0/33'], /--local '10\.0\.0\.0\/33': prefix length '\/33' is not from 0 to 32/],
  [['--local', 'fe80::/129'], /prefix length '\/129' is not from 0 to 128/],
  [['--local', 'fe80::1%eth0'], /--local 'fe80::1%eth0': 'fe80::1%eth0' is not an IPv4 or IPv6 address/],
  [['--remote', '[::1]:99999'], /--remote '\[::1\]:99999': port 99999 is not from 1 to 65535/],
  [['--remote', '::1]:443'], /--remote '::1\]:443': brackets must enclose the whole address/],
  [['--remote', '1.2.3.4:http'], /--remote '1\.2\.3\.4:http': 'http' is not a port/],
  [['--remote', ':'], /--remote ':': a port is missing after ':'/],
  [['--local', '[]:80'], /--local '\[\]:80': empty address in brackets/],
  [['--command', 'a-name-longer-than-15'], /--command 'a-name-longer-than-15' is longer than a process name/],
  [['--command', ''], /--command needs a process name/],
  [['nope'], /unknown table 'nope' \(expected tcp, tcp6, udp or udp6\)/],
  [['tcp', 'tcp7'], /unknown table 'tcp7'/],
  [['--watch', '0'], /--watch needs a number of seconds from 0\.1 to 86400, not '0'/],
  [['-w', '-1'], /--watch needs a number of seconds from 0\.1 to 86400, not '-1'/],
  [['--watch=abc'], /--watch needs a number of seconds from 0\.1 to 86400, not 'abc'/],
  [['-w0'], /--watch needs a number of seconds .* not '0'/],
  [['--watch', '1e9'], /--watch needs a number of seconds .* not '1e9'/],
  [['--frobnicate'], /unknown flag '--frobnicate'/],
  [['--source', 'x'], /--source must be netlink or proc, not 'x'/],
  [['-o', 'NOPE'], /unknown option name in --options: 'NOPE'/],
  // Combinations no socket can match, or that ask for two things at once.
  [['-l', '--state', 'established'], /no socket can match --listening with --state established/],
  [['--diag', 'udp'], /no socket can match --diag in udp/],
  [['--diag', '-l'], /no socket can match --listening with --diag/],
  [['--state', 'listen', 'udp', 'udp6'], /no socket can match --state listen in udp, udp6/],
  [['--state', 'unconn', 'tcp'], /no socket can match --state unconn in tcp/],
  [['--option', 'TCP_NODELAY', 'udp'], /no socket can match --option TCP_NODELAY in udp/],
  [['--option', 'IPV6_V6ONLY', 'tcp', 'udp'], /no socket can match --option IPV6_V6ONLY in tcp, udp/],
  [
    ['--option', 'TCP_FASTOPEN', '--state', 'established'],
    /no socket can match --state established with --option TCP_FASTOPEN/,
  ],
  [['--state', 'time_wait', '--pid', '1'], /no socket can match --state time_wait with --pid/],
  [['--diag', '--source', 'proc'], /--diag needs tcp_info, which --source proc does not have/],
  [['--summary', '-p'], /--summary shows counts, not rows: -p\/--processes/],
  [['--summary', '-o', 'all'], /--summary counts knetstat's options: -o\/--options does not apply/],
  [['--json', '-o', 'all'], /-o\/--options chooses the text's Options column; --json/],
];

describe('bad input: exit 2, one line on stderr, nothing on stdout', () => {
  it.each(BAD_INPUTS)('knetstat %j', (args, message) => {
    const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^knetstat: [^\n]+\n$/);
    expect(result.stderr).toMatch(message);
    expect(result.status).toBe(2);
  });

  it('reports the bad value even with --json or --watch, and never starts watching', () => {
    for (const args of [
      ['--json', '--port', '70000'],
      ['-w', '1', '--state', 'NOPE'],
    ]) {
      const result = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
      expect(result.status).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr.split('\n')).toHaveLength(2);
    }
  });
});
