import { describe, expect, it } from 'vitest';
import { type ChunkSink, writeInChunks } from '../../src/render/chunks.js';

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
  it('writes the pieces as UTF-8, whole, in chunks of at least chunkSize characters', async () => {
    const sink = new KeepingSink(true);
    await writeInChunks(PIECES, sink, 256);
    expect(sink.text()).toBe(PIECES.join(''));
    expect(sink.chunks.length).toBeGreaterThan(10);
    const decoded = sink.chunks.map((c) => Buffer.from(c).toString('utf8'));
    for (const chunk of decoded.slice(0, -1)) expect(chunk.length).toBeGreaterThanOrEqual(256);
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
