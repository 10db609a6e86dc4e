import type { Collection, SocketRecord } from '../../src/model.js';

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

/**
 * What must not depend on how a collection was made (with or without a helper process
 * or the BPF passes): every socket's place, owners and options, key order included.
 * SO_INCOMING_CPU is left out: it may change between two reads.
 */
export function essentials(collection: Collection) {
  return collection.sockets.map((s) => {
    const { SO_INCOMING_CPU: _cpu, ...options } = s.options ?? {};
    return {
      table: `${s.protocol}${s.family}`,
      state: s.state,
      local: s.local,
      remote: s.remote,
      inode: s.inode,
      processes: s.processes,
      options: s.options ? options : null,
      order: s.options ? Object.keys(options) : null,
      optionsError: s.optionsError,
    };
  });
}
