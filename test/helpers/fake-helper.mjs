// A helper process (see src/helper/child.ts) that misbehaves in the way argv[2] says.
// At the scan request: 'stranger' adds an owner pid it was not asked about, 'strings'
// sends pids as strings. At the read request: 'exit' ends without a word, 'error'
// answers an error message, 'short' half a frame, 'status' an outcome nobody knows,
// 'narrow' fewer values than a row has options, 'silent' nothing, keeping its pipes open.
// 'deaf' never reads a request, 'stop' stops itself (SIGSTOP) at the scan request. With
// argv[3], it writes its pid there before it loads anything, and where it stalls, which
// request it stalled at to argv[3].stalled.
import { writeFileSync, writeSync } from 'node:fs';

const how = process.argv[2] ?? 'exit';
const pidFile = process.argv[3];
if (pidFile) writeFileSync(pidFile, String(process.pid));
const stall = (where) => {
  if (pidFile) writeFileSync(`${pidFile}.stalled`, where);
  if (how === 'stop') process.kill(process.pid, 'SIGSTOP');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
};
if (how === 'deaf') stall('none');

const { encodeFrame, readMessage, writeMessage } = await import('../../dist/helper/protocol.js');
const { read, scan } = await import('../../dist/helper/work.js');
for (;;) {
  const request = readMessage(3);
  if (request === null) break;
  if (how === 'stop') stall(request.type);
  if (request.type === 'scan') {
    const reply = scan(request);
    if (how === 'stranger') {
      reply.pid = Int32Array.of(...reply.pid, 999999999);
      reply.fd = Int32Array.of(...reply.fd, 3);
      reply.inode = Float64Array.of(...reply.inode, reply.inode[0] ?? 1);
    }
    if (how === 'strings') reply.pid = Array.from(reply.pid, String);
    writeMessage(4, reply);
    continue;
  }
  if (how === 'silent') stall(request.type);
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
