export * from './byte-reader.js';
export * from './inet-diag.js';
export * from './message.js';
export * from './sock-diag.js';
