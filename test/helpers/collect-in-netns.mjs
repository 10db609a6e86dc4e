// Runs the library's collectSockets (the built one, dist/) and prints the Collection as
// JSON. The tests start it with nsenter so that it collects in the socket child's network
// namespace, which the test process itself cannot enter. argv[2]: CollectSettings as JSON.
import { collectSockets } from '../../dist/index.js';

const settings = JSON.parse(process.argv[2] ?? '{}');
// JSON has no Set: a list of option names stands for one.
if (Array.isArray(settings.options)) settings.options = new Set(settings.options);
process.stdout.write(JSON.stringify(collectSockets(settings)));
