import { describe, expect, it } from 'vitest';
import { extractWatch, parseCliArguments } from '../../src/args.js';
import { UsageError } from '../../src/sys/errors.js';
import { collectSettingsFor } from '../../src/view.js';

describe('-w/--watch [SECONDS]', () => {
  it('takes a number right after the flag as the interval, and defaults to 2', () => {
    expect(extractWatch(['-w'])).toEqual({ rest: ['-w'], watch: 2 });
    expect(extractWatch(['-w', '5'])).toEqual({ rest: ['-w'], watch: 5 });
    expect(extractWatch(['--watch', '0.5', 'tcp'])).toEqual({ rest: ['--watch', 'tcp'], watch: 0.5 });
    expect(extractWatch(['--watch=3'])).toEqual({ rest: ['--watch'], watch: 3 });
    expect(extractWatch(['-w7'])).toEqual({ rest: ['-w'], watch: 7 });
    expect(extractWatch(['-lpw', '1'])).toEqual({ rest: ['-lpw'], watch: 1 });
  });
  it('leaves a table or a flag after -w alone', () => {
    expect(extractWatch(['-w', 'tcp'])).toEqual({ rest: ['-w', 'tcp'], watch: 2 });
    expect(extractWatch(['-w', '-l'])).toEqual({ rest: ['-w', '-l'], watch: 2 });
  });
  it('does not mistake the value of another flag for -w', () => {
    expect(extractWatch(['--command', '-w', '5'])).toEqual({ rest: ['--command', '-w', '5'], watch: null });
    expect(extractWatch(['-o', 'w'])).toEqual({ rest: ['-o', 'w'], watch: null });
    expect(extractWatch(['--', '-w', '1'])).toEqual({ rest: ['--', '-w', '1'], watch: null });
  });
  it('refuses 0, negative, absurd and non-numeric intervals', () => {
    for (const argv of [
      ['-w', '0'],
      ['-w', '-1'],
      ['--watch=abc'],
      ['--watch=0'],
      ['-w', '100000'],
      ['-w', '.05'],
    ]) {
      expect(() => extractWatch(argv), argv.join(' ')).toThrow(UsageError);
    }
  });
});

describe('parseCliArguments', () => {
  it('builds the filter from every flag', () => {
    const request = parseCliArguments([
      '-l',
      '--state',
      'listen',
      '--port',
      '22',
      '--local',
      '[::1]:22',
      '--remote',
      '10.0.0.0/8',
      '--pid',
      '1',
      '--pid',
      '2',
      '--command',
      'sshd',
      '--option',
      'SO_KEEPALIVE=0',
      'tcp6',
    ]);
    expect(request.tables).toEqual(['tcp6']);
    expect(request.filter).toMatchObject({
      listening: true,
      states: ['LISTEN'],
      ports: [22],
      pids: [1, 2],
      commands: ['sshd'],
      diag: false,
    });
    expect(request.filter.local[0]).toMatchObject({ port: 22 });
    expect(request.filter.options.map((o) => o.text)).toEqual(['SO_KEEPALIVE=0']);
    expect(request.watch).toBeNull();
    expect(request.summary).toBe(false);
  });
  it('sets watch, summary and json', () => {
    expect(parseCliArguments(['-w']).watch).toBe(2);
    expect(parseCliArguments(['--summary', '--json', '-w', '1']).watch).toBe(1);
    expect(parseCliArguments(['--summary']).summary).toBe(true);
  });
  it('lets the helper process start unless --no-helper, and tells the collection so', () => {
    expect(parseCliArguments([]).helper).toBe(true);
    expect(collectSettingsFor(parseCliArguments([])).parallel).toBe('auto');
    const single = parseCliArguments(['--no-helper', '--json', 'tcp']);
    expect(single.helper).toBe(false);
    expect(single.json).toBe(true);
    expect(collectSettingsFor(single).parallel).toBe('off');
  });
  it('lets the BPF pass run unless --no-bpf, and tells the collection so', () => {
    expect(parseCliArguments([]).bpf).toBe(true);
    expect(collectSettingsFor(parseCliArguments([])).bpf).toBe('auto');
    const plain = parseCliArguments(['--no-bpf', '-p']);
    expect(plain.bpf).toBe(false);
    expect(collectSettingsFor(plain).bpf).toBe('off');
  });
});
