import pgvector from 'pgvector';
import type { Generation, SearchHit, TableMeta } from '../port.js';
import { type PgBase, withTransaction } from './pool.js';
import { exists, readMeta, tableNames } from './schema.js';

// Search through the HNSW index (or exact, for verification), and the recall check a full
// re-index runs on its shadow before the swap: the index must find what exact search finds.

/** hnsw.ef_search of searches (pgvector's default is 40); the full-mode verification uses the same. */
export const DEFAULT_EF_SEARCH = 200;

function orderExpression(base: PgBase, meta: TableMeta | undefined): string {
  return meta?.indexKind === 'halfvec'
    ? `embedding::halfvec(${base.dimensions}) <=> $1::halfvec(${base.dimensions})`
    : `embedding <=> $1::vector`;
}

/** Approximate top-k by cosine distance through the HNSW index. */
export async function search(
  base: PgBase,
  vector: Float32Array,
  k: number,
  options: { efSearch?: number; generation?: Generation; exact?: boolean } = {},
): Promise<SearchHit[]> {
  const generation = options.generation ?? 'live';
  if (!(await exists(base, generation))) return [];
  const order = orderExpression(base, await readMeta(base, generation));
  return withTransaction(base.pool, async (client) => {
    await client.query(`SET LOCAL hnsw.ef_search = ${Math.max(k, options.efSearch ?? DEFAULT_EF_SEARCH)}`);
    if (options.exact) {
      await client.query('SET LOCAL enable_indexscan = off');
      await client.query('SET LOCAL enable_bitmapscan = off');
    }
    const { rows } = await client.query<{
      chunk_id: string;
      content: string;
      source: string;
      metadata: Record<string, unknown>;
      distance: number;
    }>(
      `SELECT chunk_id, content, source, metadata, ${order} AS distance FROM ${tableNames(base.table, generation).chunks} ORDER BY ${order} LIMIT $2`,
      [pgvector.toSql(Array.from(vector)), k],
    );
    return rows.map((r) => ({
      chunkId: r.chunk_id,
      content: r.content,
      source: r.source,
      metadata: r.metadata,
      score: 1 - Number(r.distance),
    }));
  });
}

/** Probe vectors for verification: mixtures of two stored vectors, chosen deterministically. */
export async function probeVectors(
  base: PgBase,
  generation: Generation,
  count: number,
): Promise<Float32Array[]> {
  const { rows } = await base.pool.query<{ embedding: string }>(
    `SELECT embedding::text AS embedding FROM ${tableNames(base.table, generation).chunks} ORDER BY md5(chunk_id) LIMIT $1`,
    [count * 2],
  );
  const vectors = rows.map((r) => Float32Array.from(pgvector.fromSql(r.embedding) as number[]));
  const probes: Float32Array[] = [];
  for (let i = 0; i + 1 < vectors.length && probes.length < count; i += 2) {
    const a = vectors[i] as Float32Array;
    const b = vectors[i + 1] as Float32Array;
    const mixed = new Float32Array(a.length);
    let norm = 0;
    for (let j = 0; j < a.length; j++) {
      mixed[j] = 0.7 * (a[j] as number) + 0.3 * (b[j] as number);
      norm += (mixed[j] as number) ** 2;
    }
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < a.length; j++) mixed[j] = (mixed[j] as number) / norm;
    probes.push(mixed);
  }
  if (probes.length === 0 && vectors.length === 1) probes.push(vectors[0] as Float32Array);
  return probes;
}

/** recall@k of the index against exact search, averaged over the probes. */
export async function recallAtK(
  base: PgBase,
  generation: Generation,
  probes: Float32Array[],
  k: number,
  efSearch: number,
): Promise<number> {
  if (probes.length === 0) return 1;
  let total = 0;
  for (const probe of probes) {
    const exact = await search(base, probe, k, { generation, exact: true });
    const approx = await search(base, probe, k, { generation, efSearch });
    const truth = new Set(exact.map((h) => h.chunkId));
    const found = approx.filter((h) => truth.has(h.chunkId)).length;
    total += truth.size === 0 ? 1 : found / truth.size;
  }
  return total / probes.length;
}

/** Checks a row-level invariant the tests and the verifier rely on: one row per chunk id. */
export async function duplicateChunkIds(base: PgBase, generation: Generation): Promise<number> {
  if (!(await exists(base, generation))) return 0;
  const { rows } = await base.pool.query<{ n: string }>(
    `SELECT count(*) - count(DISTINCT chunk_id) AS n FROM ${tableNames(base.table, generation).chunks}`,
  );
  return Number(rows[0]?.n ?? 0);
}
