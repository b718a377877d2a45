import pg from 'pg';
import type { Logger } from '../../../observability/logger.js';

// The knowledge database through `pg`: a real server or the embedded PGlite over the wire
// protocol, the same code either way. What every operation of the adapter works on (the
// pool and the base), and its one transaction helper.

/** One base in one database: the pool, the base's table name and the size of its vectors. */
export interface PgBase {
  readonly pool: pg.Pool;
  readonly table: string;
  readonly dimensions: number;
  readonly logger?: Logger;
}

/** Runs `fn` in a transaction on one client: COMMIT when it returns, ROLLBACK when it throws. */
export async function withTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/** A `pg` pool for the knowledge database. */
export function createKnowledgePool(url: string, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, idleTimeoutMillis: 10_000 });
  // An idle client's socket error (server restart) must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/** Port of the embedded database (`qwenops kb db`), the default when no URL is configured. */
export const EMBEDDED_DATABASE_PORT = 54329;

/** The knowledge database URL: configured (QWENOPS_DATABASE_URL), else the embedded default. */
export function knowledgeDatabaseUrl(config: { databaseUrl?: string }): string {
  return config.databaseUrl ?? `postgres://postgres@127.0.0.1:${EMBEDDED_DATABASE_PORT}/postgres`;
}

/** A lazily created pool: workers that never run a knowledge activity never connect. */
export function knowledgePoolFactory(
  config: { databaseUrl?: string },
  max?: number,
): {
  get: () => pg.Pool;
  close: () => Promise<void>;
} {
  let pool: pg.Pool | undefined;
  return {
    get() {
      pool ??= createKnowledgePool(knowledgeDatabaseUrl(config), max);
      return pool;
    },
    async close() {
      await pool?.end();
    },
  };
}
