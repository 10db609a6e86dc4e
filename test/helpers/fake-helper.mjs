// A helper process (see src/helper/child.ts) that misbehaves in the way argv[2] says.
// At its first scan request: 'blind' answers that its processes hold no sockets (as if
// it had scanned them before they opened any); later scans are real. At the read
// request: 'exit' ends without a word, 'error' answers an error message, 'short' half a
// frame, 'status' an outcome nobody knows, 'narrow' fewer values than a row has options.
import { writeSync } from 'node:fs';
import { encodeFrame, readMessage, writeMessage } from '../../dist/helper/protocol.js';
import { read, scan } from '../../dist/helper/work.js';

const how = process.argv[2] ?? 'exit';
let scans = 0;
for (;;) {
  const request = readMessage(3);
  if (request === null) break;
  if (request.type === 'scan') {
    const reply = scan(request);
    if (how === 'blind' && scans++ === 0) {
      for (const column of ['pid', 'fd', 'inode']) reply[column] = reply[column].subarray(0, 0);
    }
    writeMessage(4, reply);
    continue;
  }
  if (how === 'blind') {
    writeMessage(4, read(request));
    continue;
  }
  if (how === 'error') writeMessage(4, { type: 'error', message: 'pidfd_open: EMFILE' });
  if (how === 'short') {
    const frame = encodeFrame({ type: 'values', status: new Uint8Array(8) });
    writeSync(4, frame, 0, frame.length - 3);
  }
  if (how === 'status' || how === 'narrow') {
    const reply = read(request);
    if (how === 'status') reply.status[0] = 99;
    else {
      reply.status.fill(0);
      reply.values = {
        width: 1,
        kinds: new Uint8Array(reply.status.length),
        numbers: new Float64Array(reply.status.length),
        strings: [],
      };
    }
    writeMessage(4, reply);
  }
  process.exit(1);
}
