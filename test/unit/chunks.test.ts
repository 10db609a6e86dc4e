import { describe, expect, it } from 'vitest';
import { ChunkBytes, type ChunkSink, writeChunks, writeInChunks } from '../../src/render/chunks.js';

/** A sink that keeps every chunk it is given (not a copy) and says how many bytes it holds. */
class KeepingSink implements ChunkSink {
  chunks: Uint8Array[] = [];
  closed = false;
  /** What pendingBytes reports: a sink that hands each chunk on at once reports 0. */
  holds: boolean;
  flowing = true;
  drains = 0;
  constructor(holds: boolean) {
    this.holds = holds;
  }
  write(bytes: Uint8Array): boolean {
    this.chunks.push(bytes);
    return this.flowing;
  }
  get pendingBytes(): number {
    return this.holds ? this.chunks.reduce((n, c) => n + c.length, 0) : 0;
  }
  drained(): Promise<void> {
    this.drains++;
    return Promise.resolve();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

// Pieces with one-, two-, three- and four-byte characters, so that chunk ends fall
// between characters of every width.
const PIECES = Array.from({ length: 200 }, (_, i) => `${i} é ✓ 🙂 ${'x'.repeat(i % 37)}\n`);

describe('writeInChunks', () => {
  it('writes the pieces as UTF-8, whole, in chunks of at least chunkSize bytes', async () => {
    const sink = new KeepingSink(true);
    await writeInChunks(PIECES, sink, 256);
    expect(sink.text()).toBe(PIECES.join(''));
    expect(sink.chunks.length).toBeGreaterThan(10);
    for (const chunk of sink.chunks.slice(0, -1)) expect(chunk.length).toBeGreaterThanOrEqual(256);
    const decoded = sink.chunks.map((c) => Buffer.from(c).toString('utf8'));
    // A chunk ends where a piece ends.
    for (const chunk of decoded) expect(chunk.endsWith('\n')).toBe(true);
  });

  it('never overwrites a chunk that the sink still holds', async () => {
    const sink = new KeepingSink(true);
    await writeInChunks(PIECES, sink, 100);
    expect(sink.text()).toBe(PIECES.join(''));
  });

  it('writes the same bytes to a sink that hands each chunk on at once', async () => {
    const sink = new KeepingSink(false);
    const copies: Buffer[] = [];
    const write = sink.write.bind(sink);
    sink.write = (bytes) => {
      copies.push(Buffer.from(bytes));
      return write(bytes);
    };
    await writeInChunks(PIECES, sink, 100);
    expect(Buffer.concat(copies).toString('utf8')).toBe(PIECES.join(''));
  });

  it('a piece longer than a chunk is written whole', async () => {
    const sink = new KeepingSink(true);
    const long = `${'🙂'.repeat(100)}\n`;
    await writeInChunks(['a\n', long, 'b\n'], sink, 64);
    expect(sink.chunks.map((c) => Buffer.from(c).toString('utf8'))).toEqual([`a\n${long}`, 'b\n']);
  });

  it('waits for the reader after a chunk it could not take', async () => {
    const sink = new KeepingSink(true);
    sink.flowing = false;
    await writeInChunks(PIECES, sink, 256);
    // Every chunk but the last is followed by a wait; nothing is pending after the last.
    expect(sink.drains).toBe(sink.chunks.length - 1);
    expect(sink.text()).toBe(PIECES.join(''));
  });

  it('stops rendering once the reader has gone', async () => {
    const sink = new KeepingSink(false);
    let rendered = 0;
    function* pieces() {
      for (const piece of PIECES) {
        rendered++;
        yield piece;
      }
    }
    const write = sink.write.bind(sink);
    sink.write = (bytes) => {
      sink.closed = true;
      return write(bytes);
    };
    await writeInChunks(pieces(), sink, 256);
    expect(sink.chunks).toHaveLength(1);
    expect(rendered).toBeLessThan(PIECES.length);
  });

  it('writes nothing for no pieces', async () => {
    const sink = new KeepingSink(false);
    await writeInChunks([], sink);
    expect(sink.chunks).toHaveLength(0);
  });
});

describe('ChunkBytes', () => {
  const written = (write: (chunk: ChunkBytes) => void, size = 16): string => {
    const chunk = new ChunkBytes(size);
    write(chunk);
    return Buffer.from(chunk.take()).toString('utf8');
  };

  it('writes numbers as JSON.stringify does', () => {
    const numbers = [0, 7, 9, 10, 99, 100, 65_535, 4_294_967_295, 2 ** 53 - 1, 2 ** 53, -1, -0, 1.5, 1e21];
    for (const n of numbers) expect(written((c) => c.decimal(n))).toBe(JSON.stringify(n));
    for (const n of [Number.NaN, Number.POSITIVE_INFINITY]) expect(written((c) => c.decimal(n))).toBe('null');
  });

  it('copies bytes short and long, and text of every width, growing past its buffer', () => {
    const long = Buffer.from('x'.repeat(200));
    const text = written((c) => {
      c.bytes(Buffer.from('ab'));
      c.bytes(long);
      c.text('é✓🙂');
      c.decimal(123_456_789);
      c.bytes(new Uint8Array(0));
    }, 8);
    expect(text).toBe(`ab${'x'.repeat(200)}é✓🙂123456789`);
  });

  it('is full from its chunk size on, and empty again once taken', () => {
    const chunk = new ChunkBytes(4);
    chunk.text('abc');
    expect(chunk.full).toBe(false);
    chunk.decimal(4);
    expect(chunk.full).toBe(true);
    expect(Buffer.from(chunk.take()).toString()).toBe('abc4');
    expect(chunk.length).toBe(0);
    expect(chunk.full).toBe(false);
  });

  it('keeps a taken chunk intact once detached, and reuses its buffer otherwise', () => {
    const chunk = new ChunkBytes(4);
    chunk.text('one');
    const first = chunk.take();
    chunk.text('two');
    expect(Buffer.from(first).toString()).toBe('two'); // the same buffer, overwritten
    const second = chunk.take();
    chunk.detach();
    chunk.text('three');
    expect(Buffer.from(second).toString()).toBe('two');
    expect(Buffer.from(chunk.take()).toString()).toBe('three');
  });
});

describe('writeChunks', () => {
  it('hands on a chunk at each yield and the rest at the end', async () => {
    const sink = new KeepingSink(false);
    const copies: string[] = [];
    const write = sink.write.bind(sink);
    sink.write = (bytes) => {
      copies.push(Buffer.from(bytes).toString());
      return write(bytes);
    };
    await writeChunks(
      function* (chunk) {
        for (let i = 0; i < 10; i++) {
          chunk.decimal(i);
          if (chunk.full) yield;
        }
      },
      sink,
      3,
    );
    expect(copies).toEqual(['012', '345', '678', '9']);
  });
});
