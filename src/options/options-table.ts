/**
 * The options objects of one collection. Sockets whose options all have the same values
 * share one object: on a host, most sockets of a service carry the same options (the
 * bench's 36,000 have under 400 different sets), and one object per set rather than per
 * socket is far less to make, to keep, and for the garbage collector to copy while the
 * listing is built. Every object is frozen, shared or not, so that no caller can change
 * one socket's options through another's.
 */

import { HASH_START, HashBuckets, mixHash, valueWord } from '../hash-buckets.js';
import type { OptionValue, SocketOptions } from '../model.js';
import type { OptionSpec } from './catalogue.js';

type Maker = (values: ReadonlyArray<OptionValue | undefined>) => SocketOptions;
type Matcher = (options: SocketOptions, values: ReadonlyArray<OptionValue | undefined>) => boolean;

/**
 * Past this many different sets in one spec list, new sets are no longer remembered
 * (each still gets its object): a host whose sockets all differ pays for the lookups,
 * not for a table as large as the listing.
 */
const MAX_REMEMBERED = 4096;

interface ListTable {
  make: Maker;
  matches: Matcher;
  /** Objects by the hash of their values. */
  kept: HashBuckets<SocketOptions>;
}

export class OptionsTable {
  private readonly lists = new Map<readonly OptionSpec[], ListTable>();

  /**
   * The options object for `specs` with `values`, all present (the caller makes the
   * object of a socket that lacks some itself): an existing one with the same values,
   * or a new one.
   */
  optionsOf(specs: readonly OptionSpec[], values: ReadonlyArray<OptionValue | undefined>): SocketOptions {
    const table = this.tableOf(specs);
    const hash = hashValues(values, specs.length);
    const bucket = table.kept.get(hash);
    if (bucket) for (const options of bucket) if (table.matches(options, values)) return options;
    const options = Object.freeze(table.make(values));
    table.kept.add(hash, options);
    return options;
  }

  private tableOf(specs: readonly OptionSpec[]): ListTable {
    let table = this.lists.get(specs);
    if (!table) {
      table = { ...compileOptionsList(specs), kept: new HashBuckets(MAX_REMEMBERED, 'stop') };
      this.lists.set(specs, table);
    }
    return table;
  }
}

/** A hash of the first `count` values, to look a set up by (collisions are told apart by comparing every value). */
export function hashValues(values: ReadonlyArray<OptionValue | undefined>, count: number): number {
  let hash = HASH_START;
  for (let i = 0; i < count; i++) hash = mixHash(hash, valueWord(values[i]));
  return hash;
}

/**
 * The maker of a spec list's objects and the test of one against values, each compiled
 * once per list: the maker as one object literal with the list's names in order, the
 * test as a chain of comparisons by those names (the names are the catalogue's, quoted
 * by JSON.stringify). An object made of dozens of keys stored one by one by computed
 * name turns into a hash table, several times the memory of a plain object; measured,
 * the literal is 2–3× faster than filling a copy of a template. (`generate` false: the
 * fallback, for its test.)
 */
export function compileOptionsList(
  specs: readonly OptionSpec[],
  generate = true,
): { make: Maker; matches: Matcher } {
  const names = specs.map((spec) => JSON.stringify(spec.name));
  try {
    if (!generate) throw new EvalError('code generation not wanted');
    return {
      make: new Function(
        'values',
        `return { ${names.map((name, i) => `${name}: values[${i}]`).join(', ')} };`,
      ) as Maker,
      matches: new Function(
        'options',
        'values',
        `return ${names.map((name, i) => `options[${name}] === values[${i}]`).join(' && ') || 'true'};`,
      ) as Matcher,
    };
  } catch {
    // Code generation refused (node --disallow-code-generation-from-strings): the same,
    // key by key.
    return {
      make: (values) => Object.fromEntries(specs.map((spec, i) => [spec.name, values[i] as OptionValue])),
      matches: (options, values) => specs.every((spec, i) => options[spec.name] === values[i]),
    };
  }
}
