// A helper process (see src/helper/child.ts) that does its scan like the real one and
// then fails at the read request in the way argv[2] says: 'exit' (ends without a word),
// 'error' (answers an error message), 'short' (answers half a frame).
import { writeSync } from 'node:fs';
import { encodeFrame, readMessage, writeMessage } from '../../dist/helper/protocol.js';
import { scan } from '../../dist/helper/work.js';

const how = process.argv[2] ?? 'exit';
for (;;) {
  const request = readMessage(3);
  if (request === null) break;
  if (request.type === 'scan') {
    writeMessage(4, scan(request));
    continue;
  }
  if (how === 'error') writeMessage(4, { type: 'error', message: 'pidfd_open: EMFILE' });
  if (how === 'short') {
    const frame = encodeFrame({ type: 'values', status: new Uint8Array(8) });
    writeSync(4, frame, 0, frame.length - 3);
  }
  process.exit(1);
}
