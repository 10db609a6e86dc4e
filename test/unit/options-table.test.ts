/**
 * Options objects shared between sockets with the same values: the same object exactly
 * when every value is the same, told apart however their hashes collide, frozen, and made
 * alike with or without code generation.
 */
import { describe, expect, it } from 'vitest';
import type { OptionValue } from '../../src/model.js';
import { OPTION_CATALOGUE, type OptionSpec } from '../../src/options/catalogue.js';
import { compileOptionsList, hashValues, OptionsTable } from '../../src/options/options-table.js';

const specs = ['SO_REUSEADDR', 'SO_RCVBUF', 'TCP_CONGESTION', 'SO_LINGER'].map(
  (name) => OPTION_CATALOGUE.find((o) => o.name === name) as OptionSpec,
);

describe('the options table', () => {
  it('gives sockets with the same values one frozen object, in the spec order', () => {
    const table = new OptionsTable();
    const a = table.optionsOf(specs, [1, 131072, 'bbr', null]);
    // The values array is the reader's scratch array: a later call may reuse it.
    const b = table.optionsOf(specs, [1, 131072, 'bbr', null]);
    expect(b).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.keys(a)).toEqual(['SO_REUSEADDR', 'SO_RCVBUF', 'TCP_CONGESTION', 'SO_LINGER']);
    expect(a).toEqual({ SO_REUSEADDR: 1, SO_RCVBUF: 131072, TCP_CONGESTION: 'bbr', SO_LINGER: null });
    expect(() => {
      (a as Record<string, OptionValue>).SO_REUSEADDR = 0;
    }).toThrow(TypeError);
  });

  it('tells apart sets whose hashes collide', () => {
    const colliding: Array<Array<OptionValue>> = [
      [1, 131072, 'bbr', null],
      [1, 131072 + 2 ** 32, 'bbr', null], // the same low 32 bits
      [1, 131072, 'bar', null], // the same length and end characters
      [1, 131072, 'bbr', 0], // null and 0
    ];
    expect(new Set(colliding.map((values) => hashValues(values, 4))).size).toBeLessThan(colliding.length);
    const table = new OptionsTable();
    const objects = colliding.map((values) => table.optionsOf(specs, values));
    expect(new Set(objects).size).toBe(colliding.length);
    colliding.forEach((values, i) => {
      expect(Object.values(objects[i] as object)).toEqual(values);
      expect(table.optionsOf(specs, [...values])).toBe(objects[i]);
    });
  });

  it('keeps each spec list apart', () => {
    const table = new OptionsTable();
    const fewer = specs.slice(0, 2);
    const long = table.optionsOf(specs, [1, 2, 'bbr', null]);
    const short = table.optionsOf(fewer, [1, 2]);
    expect(short).not.toBe(long);
    expect(short).toEqual({ SO_REUSEADDR: 1, SO_RCVBUF: 2 });
  });

  it('still makes every object once it remembers no more sets', () => {
    const table = new OptionsTable();
    for (let i = 0; i < 5000; i++) table.optionsOf(specs, [i, 0, 'cubic', null]);
    const late = table.optionsOf(specs, [4999, 0, 'cubic', null]);
    expect(late).toEqual({ SO_REUSEADDR: 4999, SO_RCVBUF: 0, TCP_CONGESTION: 'cubic', SO_LINGER: null });
    // An early set is still shared.
    expect(table.optionsOf(specs, [3, 0, 'cubic', null])).toBe(table.optionsOf(specs, [3, 0, 'cubic', null]));
  });

  it('makes and compares alike without code generation', () => {
    const generated = compileOptionsList(specs);
    const plain = compileOptionsList(specs, false);
    const values = [0, 8192, 'reno', 5];
    expect(plain.make(values)).toEqual(generated.make(values));
    expect(Object.keys(plain.make(values))).toEqual(Object.keys(generated.make(values)));
    const made = generated.make(values);
    for (const matcher of [generated.matches, plain.matches]) {
      expect(matcher(made, values)).toBe(true);
      expect(matcher(made, [0, 8192, 'reno', null])).toBe(false);
    }
  });
});
