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

/**
 * Each chunk is encoded into one buffer, reused as soon as the sink has handed the last
 * one on (stdout to a file, a pipe or a terminal writes at once on Linux). A new buffer per
 * chunk, as Buffer.from(string) makes, is fresh memory each time: at 36k sockets that was
 * about 10,000 page faults and half the time of writing the JSON.
 */
export async function writeInChunks(
  pieces: Iterable<string>,
  sink: ChunkSink,
  chunkSize = CHUNK_SIZE,
): Promise<void> {
  let buffer = Buffer.alloc(0);
  let pending = '';
  const write = (): boolean => {
    const needed = pending.length * MAX_UTF8_BYTES_PER_UNIT;
    if (buffer.length < needed)
      buffer = Buffer.allocUnsafeSlow(Math.max(needed, chunkSize * MAX_UTF8_BYTES_PER_UNIT));
    const length = buffer.write(pending, 0, 'utf8');
    pending = '';
    const flowing = sink.write(buffer.subarray(0, length));
    if (sink.pendingBytes > 0) buffer = Buffer.alloc(0);
    return flowing;
  };
  for (const piece of pieces) {
    pending += piece;
    if (pending.length < chunkSize) continue;
    if (sink.closed) return;
    if (!write()) await sink.drained();
  }
  if (pending !== '' && !sink.closed) write();
}
