import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import type { Logger } from '../../observability/logger.js';
import { PgliteWireServer, type WireServerStats } from './wire-server.js';

// The embedded default database: PGlite (PostgreSQL compiled to WASM) with pgvector,
// persisted in a data directory, reachable by `pg` over the wire protocol. One process
// owns the data directory; everything else connects to `url`.

export interface EmbeddedPostgres {
  url: string;
  host: string;
  port: number;
  dataDir: string | undefined;
  /** The wire bridge's counters: how much serialising clients on one session costs. */
  stats(): WireServerStats;
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Directory for the database files; absent: in memory (tests of throwaway data only). */
  dataDir?: string;
  host?: string;
  port?: number;
  logger?: Logger;
  idleInTransactionTimeoutMs?: number;
}

export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgres> {
  if (options.dataDir) await mkdir(options.dataDir, { recursive: true });
  const db = await PGlite.create(options.dataDir ?? 'memory://', { extensions: { vector } });
  await db.exec('CREATE EXTENSION IF NOT EXISTS vector');
  const server = new PgliteWireServer(db, {
    host: options.host,
    port: options.port,
    logger: options.logger,
    idleInTransactionTimeoutMs: options.idleInTransactionTimeoutMs,
  });
  const address = await server.start();
  options.logger?.info(
    { ...address, dataDir: options.dataDir },
    'embedded postgres (PGlite + pgvector) listening',
  );
  return {
    url: server.url,
    ...address,
    dataDir: options.dataDir,
    stats: () => server.stats(),
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
