/**
 * The second option-reading thread (see parallel.ts): runs the very same OptionReader
 * over the sockets it is sent and answers with what it read. Everything is loaded inside
 * the try, so that any failure reaches the main thread as a message, never as silence.
 */
import { type MessagePort, workerData } from 'node:worker_threads';

interface WorkerSetup {
  port: MessagePort;
  signal: Int32Array;
  only: string[] | null;
}

const { port, signal, only } = workerData as WorkerSetup;

port.once('message', async (sockets: string) => {
  let reply: { results: string; summary: unknown } | { error: string };
  try {
    const { OptionReader } = await import('./reader.js');
    const { PROGRESS, readShare } = await import('./parallel.js');
    const reader = new OptionReader({ only: only ? new Set(only) : undefined });
    try {
      const results = readShare(reader, JSON.parse(sockets), () => Atomics.add(signal, PROGRESS, 1));
      reply = { results: JSON.stringify(results), summary: reader.summary };
    } finally {
      reader.close();
    }
  } catch (error) {
    reply = { error: error instanceof Error ? error.message : String(error) };
  }
  port.postMessage(reply);
  port.close();
  const { DONE } = await import('./parallel.js');
  Atomics.store(signal, DONE, 1);
  Atomics.notify(signal, DONE);
});
