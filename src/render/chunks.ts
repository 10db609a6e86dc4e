/**
 * Writing a large output (tables, JSON): its pieces, a row or a socket each, are gathered
 * into chunks of about 64 KiB, so that neither one write(2) per piece nor the whole
 * document in memory is needed, and the reader's backpressure is waited for at each chunk.
 */

/** Where the chunks go: stdout, in the CLI. */
export interface ChunkSink {
  /** false once the reader is behind: wait for drained() before the next chunk. */
  write(bytes: Uint8Array): boolean;
  /**
   * Bytes written but not yet handed to the kernel (stream.writableLength): while it is not
   * zero the sink still holds the last chunk's buffer.
   */
  readonly pendingBytes: number;
  /** The reader went away: rendering stops. */
  readonly closed: boolean;
  drained(): Promise<void>;
}

export const CHUNK_SIZE = 64 * 1024;

/** UTF-8 takes at most 3 bytes per UTF-16 code unit (a surrogate pair: 4 for 2). */
const MAX_UTF8_BYTES_PER_UNIT = 3;

/** Up to this many bytes are copied by a loop: TypedArray.set costs more than that for a few bytes. */
const SHORT_COPY = 64;

/**
 * The chunk being filled, as bytes: a renderer writes into it directly (encoded pieces it
 * keeps, decimal numbers, text), so that no string is made per row or socket and the
 * text it does write is encoded once.
 */
export class ChunkBytes {
  /** Bytes filled in `buffer`. */
  length = 0;
  private buffer: Buffer;

  constructor(readonly chunkSize: number = CHUNK_SIZE) {
    this.buffer = Buffer.allocUnsafeSlow(chunkSize * 2);
  }

  /** Whether the chunk has reached its size: time to hand it on (see writeChunks). */
  get full(): boolean {
    return this.length >= this.chunkSize;
  }

  bytes(bytes: Uint8Array): void {
    const n = bytes.length;
    if (this.length + n > this.buffer.length) this.grow(n);
    const buffer = this.buffer;
    const at = this.length;
    if (n > SHORT_COPY) buffer.set(bytes, at);
    else for (let i = 0; i < n; i++) buffer[at + i] = bytes[i] as number;
    this.length = at + n;
  }

  /** `text` as UTF-8. */
  text(text: string): void {
    const most = text.length * MAX_UTF8_BYTES_PER_UNIT;
    if (this.length + most > this.buffer.length) this.grow(most);
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  /** A number as JSON (and JavaScript) writes it: digits alone for a non-negative safe integer. */
  decimal(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0)) {
      this.text(JSON.stringify(n) ?? 'null');
      return;
    }
    let digits = 1;
    for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    if (this.length + digits > this.buffer.length) this.grow(digits);
    const buffer = this.buffer;
    let at = this.length + digits;
    this.length = at;
    let rest = n;
    do {
      const next = Math.floor(rest / 10);
      buffer[--at] = 48 + (rest - next * 10);
      rest = next;
    } while (rest > 0);
  }

  /** The chunk's bytes, for the sink; the chunk is empty after it, in the same buffer unless `detach`ed. */
  take(): Uint8Array {
    const bytes = this.buffer.subarray(0, this.length);
    this.length = 0;
    return bytes;
  }

  /** The sink still holds the bytes last taken: the chunk goes on in a fresh buffer. */
  detach(): void {
    this.buffer = Buffer.allocUnsafeSlow(this.buffer.length);
  }

  private grow(more: number): void {
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, this.length + more));
    this.buffer.copy(bigger, 0, 0, this.length);
    this.buffer = bigger;
  }
}

/**
 * Runs `fill`, which writes into a chunk and yields whenever it is full, handing each
 * chunk to the sink and waiting for the reader where it is behind. The chunk's buffer
 * is used again as soon as the sink has handed the last one on (stdout to a file, a
 * pipe or a terminal writes at once on Linux): a new buffer per chunk is fresh memory
 * each time, which at 36k sockets was about 10,000 page faults and half the time of
 * writing the JSON. Stops once the reader has gone.
 */
export async function writeChunks(
  fill: (chunk: ChunkBytes) => Iterable<void>,
  sink: ChunkSink,
  chunkSize = CHUNK_SIZE,
): Promise<void> {
  const chunk = new ChunkBytes(chunkSize);
  const handOn = (): boolean => {
    const flowing = sink.write(chunk.take());
    if (sink.pendingBytes > 0) chunk.detach();
    return flowing;
  };
  for (const _ of fill(chunk)) {
    if (sink.closed) return;
    if (!handOn()) await sink.drained();
  }
  if (chunk.length > 0 && !sink.closed) handOn();
}

/** Text pieces (a row or a few each) into chunks: each chunk ends where a piece ends. */
export function writeInChunks(
  pieces: Iterable<string>,
  sink: ChunkSink,
  chunkSize = CHUNK_SIZE,
): Promise<void> {
  return writeChunks(
    function* (chunk) {
      for (const piece of pieces) {
        chunk.text(piece);
        if (chunk.full) yield;
      }
    },
    sink,
    chunkSize,
  );
}
