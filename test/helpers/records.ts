import type { SocketRecord } from '../../src/model.js';

/**
 * A hand-made SocketRecord for unit tests: an established IPv4 TCP socket with no owner
 * and no options, with `fields` laid over it.
 */
export function socketRecord(fields: Partial<SocketRecord> = {}): SocketRecord {
  return {
    protocol: 'tcp',
    family: 4,
    state: 'ESTABLISHED',
    local: { address: '127.0.0.1', port: 40000 },
    remote: { address: '127.0.0.1', port: 8080 },
    recvQ: 0,
    sendQ: 0,
    inode: 1,
    cookie: null,
    uid: 0,
    minisocket: false,
    diag: '',
    tcpInfo: null,
    memInfo: null,
    processes: [],
    options: {},
    ...fields,
  };
}
