import { parseArgs } from 'node:util';
import { createLogger } from '../../observability/logger.js';
import { startEmbeddedPostgres } from './embedded.js';

// Process entrypoint of the embedded database:
//   node src/knowledge/pglite/main.js --data-dir .qwenops/pgdata --port 54329
// Prints one JSON log line with the address when it accepts connections; SIGTERM/SIGINT
// stop it cleanly (PGlite flushes its files on close). SIGUSR2 logs the wire bridge's
// counters ({"pglite_stats": {units, busyMs, waitMs, ...}}): what serialising every client
// on PGlite's one session costs.

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '54329' },
    'idle-in-transaction-timeout-ms': { type: 'string', default: '60000' },
  },
});

const logger = createLogger('embedded-postgres');
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  logger.fatal({ port: values.port }, '--port must be an integer in 0..65535');
  process.exit(64);
}
const database = await startEmbeddedPostgres({
  dataDir: values['data-dir'],
  host: values.host,
  port,
  logger,
  idleInTransactionTimeoutMs: Number(values['idle-in-transaction-timeout-ms']),
});
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await database.stop();
  logger.info('embedded postgres stopped');
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.on('SIGUSR2', () => logger.info({ pglite_stats: database.stats() }, 'wire bridge counters'));
