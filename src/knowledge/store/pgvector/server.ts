import type pg from 'pg';
import { UnsupportedServerError } from '../errors.js';
import type { ServerInfo } from '../port.js';

// The server a base lives on: pgvector must be there, and recent enough.

export const MIN_PGVECTOR_VERSION = '0.8.4';

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  const pb = b.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Refuses pgvector releases before 0.8.4 (HNSW vacuum and index-build fixes). */
export function assertPgvectorVersion(version: string): void {
  if (compareVersions(version, MIN_PGVECTOR_VERSION) < 0) {
    throw new UnsupportedServerError(
      `pgvector ${version} is older than ${MIN_PGVECTOR_VERSION} (HNSW vacuum fixes); upgrade the extension (ALTER EXTENSION vector UPDATE)`,
    );
  }
}

/** Server facts; refuses a pgvector older than 0.8.4 or a missing extension. */
export async function checkServer(pool: pg.Pool): Promise<ServerInfo> {
  await pool.query('CREATE EXTENSION IF NOT EXISTS vector').catch((err: Error) => {
    throw new UnsupportedServerError(`the pgvector extension is not available: ${err.message}`);
  });
  const { rows } = await pool.query<{ server: string; pgvector: string }>(
    "SELECT version() AS server, (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector",
  );
  const row = rows[0] as { server: string; pgvector: string };
  assertPgvectorVersion(row.pgvector);
  return { server: row.server, pgvector: row.pgvector, embedded: row.server.includes('PGlite') };
}
