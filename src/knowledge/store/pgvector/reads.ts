import pgvector from 'pgvector';
import type { Generation, SourceState } from '../port.js';
import type { PgBase } from './pool.js';
import { exists, tableNames } from './schema.js';

// Incremental reads: what a generation already holds for a group of sources, so an
// unchanged source costs one lookup and a changed one re-embeds only its new chunks.

export async function sourceStates(
  base: PgBase,
  generation: Generation,
  sources: string[],
): Promise<Map<string, SourceState>> {
  const states = new Map<string, SourceState>();
  if (sources.length === 0 || !(await exists(base, generation))) return states;
  const { rows } = await base.pool.query<{ source: string; source_hash: string; chunk_count: number }>(
    `SELECT source, source_hash, chunk_count FROM ${tableNames(base.table, generation).sources} WHERE source = ANY($1::text[])`,
    [sources],
  );
  for (const row of rows)
    states.set(row.source, { sourceHash: row.source_hash, chunkCount: row.chunk_count });
  return states;
}

export async function chunkIdsOf(
  base: PgBase,
  generation: Generation,
  sources: string[],
): Promise<Map<string, Set<string>>> {
  const result = new Map<string, Set<string>>();
  if (sources.length === 0) return result;
  const { rows } = await base.pool.query<{ source: string; chunk_id: string }>(
    `SELECT source, chunk_id FROM ${tableNames(base.table, generation).chunks} WHERE source = ANY($1::text[])`,
    [sources],
  );
  for (const row of rows) {
    const set = result.get(row.source) ?? new Set<string>();
    set.add(row.chunk_id);
    result.set(row.source, set);
  }
  return result;
}

/** Vectors already computed for these chunk ids (same ids imply same text and model). */
export async function vectorsOf(
  base: PgBase,
  generation: Generation,
  chunkIds: string[],
): Promise<Map<string, Float32Array>> {
  const vectors = new Map<string, Float32Array>();
  if (chunkIds.length === 0 || !(await exists(base, generation))) return vectors;
  const { rows } = await base.pool.query<{ chunk_id: string; embedding: string }>(
    `SELECT chunk_id, embedding::text AS embedding FROM ${tableNames(base.table, generation).chunks} WHERE chunk_id = ANY($1::text[])`,
    [chunkIds],
  );
  for (const row of rows)
    vectors.set(row.chunk_id, Float32Array.from(pgvector.fromSql(row.embedding) as number[]));
  return vectors;
}

/** Sources of a generation in byte-wise key order, in pages (keyset pagination), for the deleted-source sweep. */
export async function* sources(
  base: PgBase,
  generation: Generation,
  pageSize = 1000,
): AsyncGenerator<string> {
  if (!(await exists(base, generation))) return;
  let after = '';
  let first = true;
  for (;;) {
    const { rows } = await base.pool.query<{ source: string }>(
      // Byte order (COLLATE "C"), the order sources list in: the sweep merges the two.
      `SELECT source FROM ${tableNames(base.table, generation).sources} WHERE $1 OR source COLLATE "C" > $2 ORDER BY source COLLATE "C" LIMIT $3`,
      [first, after, pageSize],
    );
    first = false;
    for (const row of rows) yield row.source;
    if (rows.length < pageSize) return;
    after = (rows[rows.length - 1] as { source: string }).source;
  }
}
