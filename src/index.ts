/** The library: `import { collectSockets } from 'knetstat'`. */
export { formatEndpoint, formatIPv4, formatIPv6 } from './address.js';
export { type CollectSettings, collectSockets } from './collect.js';
export {
  applyFilter,
  type FilterResult,
  matchesFilter,
  NO_FILTER,
  parseEndpointPattern,
  parseOptionPredicate,
  type SocketFilter,
} from './filter.js';
export * from './model.js';
export { FORBIDDEN_OPTIONS, OPTION_CATALOGUE, type OptionSpec } from './options/catalogue.js';
export { formatOptionsColumn, type OptionSelection } from './options/display.js';
export { readKeepaliveDefaults } from './procfs/sysctl.js';
export { renderJson, toJsonSocket } from './render/json.js';
export { renderSummaryJson, renderSummaryText, type Summary, summarize } from './render/summary.js';
export { renderTable, tableHeader } from './render/text.js';
export { deriveDiag } from './states.js';
export { ProtocolError, SystemCallError, UsageError } from './sys/errors.js';
