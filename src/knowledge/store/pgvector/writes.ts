import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { StoreError } from '../errors.js';
import type { LeaseTerm, SourceChanges, StoredChunk } from '../port.js';
import { copyHeader, copyRow, copyTrailer } from './copy-binary.js';
import { fence } from './leases.js';
import { type PgBase, withTransaction } from './pool.js';
import { tableNames } from './schema.js';

// Writes: each one transaction that first checks this run still holds the base (fencing),
// so a run whose lease was taken over writes nothing. New chunks go in by binary COPY.
//
// Several writers (parallel batches, on several workers): the fence's UPDATE of the lease
// row is every write transaction's first lock, so writers to a base queue on it and take
// no other lock before it (no deadlock), and each sees what the ones before it committed.
// A source is written with its sources row in one transaction, so a writer that finds the
// row already at the hash it is about to write (a retried batch racing the attempt it
// replaces, or two batches overlapping after the listing moved) skips its chunks: the
// shadow, which has no unique index while it loads, never gets a chunk twice.

/**
 * Full mode: unchanged sources move from the live generation to the shadow inside the
 * database. Only sources the shadow does not have yet are given (its sources row is
 * written in the same transaction as its chunks), and chunk ids include the source, so
 * nothing here can collide.
 */
export async function copyFromLive(base: PgBase, sources: string[], lease: LeaseTerm): Promise<number> {
  if (sources.length === 0) return 0;
  const live = tableNames(base.table, 'live');
  const shadow = tableNames(base.table, 'shadow');
  return withTransaction(base.pool, async (client) => {
    await fence(client, base.table, lease);
    const inserted = await client.query(
      `INSERT INTO ${shadow.chunks} (chunk_id, content, source, content_hash, metadata, embedding, embedding_model)
         SELECT chunk_id, content, source, content_hash, metadata, embedding, embedding_model FROM ${live.chunks} c
         WHERE c.source = ANY($1::text[])
           AND NOT EXISTS (SELECT 1 FROM ${shadow.sources} s WHERE s.source = c.source)`,
      [sources],
    );
    await client.query(
      `INSERT INTO ${shadow.sources} (source, source_hash, chunk_count, format, encoding, title, bytes)
         SELECT source, source_hash, chunk_count, format, encoding, title, bytes FROM ${live.sources}
         WHERE source = ANY($1::text[]) ON CONFLICT (source) DO NOTHING`,
      [sources],
    );
    return inserted.rowCount ?? 0;
  });
}

/**
 * Applies one group of changes in one transaction, after checking this run still holds
 * the base (fencing): deletes, then a binary COPY of the new chunks, then the source rows.
 * Returns the rows deleted.
 */
export async function applyChanges(
  base: PgBase,
  generation: 'live' | 'shadow',
  changes: SourceChanges,
  lease: LeaseTerm,
  embeddingModel: string,
): Promise<{ deleted: number; inserted: number }> {
  const { chunks, sources } = tableNames(base.table, generation);
  return withTransaction(base.pool, async (client) => {
    await fence(client, base.table, lease);
    let deleted = 0;
    if (changes.removeChunkIds.length > 0) {
      const r = await client.query(`DELETE FROM ${chunks} WHERE chunk_id = ANY($1::text[])`, [
        changes.removeChunkIds,
      ]);
      deleted += r.rowCount ?? 0;
    }
    if (changes.removeSources.length > 0) {
      const r = await client.query(`DELETE FROM ${chunks} WHERE source = ANY($1::text[])`, [
        changes.removeSources,
      ]);
      deleted += r.rowCount ?? 0;
      await client.query(`DELETE FROM ${sources} WHERE source = ANY($1::text[])`, [changes.removeSources]);
    }
    let insertChunks = changes.insertChunks;
    if (insertChunks.length > 0 && changes.upsertSources.length > 0) {
      const { rows } = await client.query<{ source: string; source_hash: string }>(
        `SELECT source, source_hash FROM ${sources} WHERE source = ANY($1::text[])`,
        [changes.upsertSources.map((r) => r.source)],
      );
      const stored = new Map(rows.map((r) => [r.source, r.source_hash]));
      const written = new Set(
        changes.upsertSources.filter((r) => stored.get(r.source) === r.sourceHash).map((r) => r.source),
      );
      if (written.size > 0) insertChunks = insertChunks.filter((c) => !written.has(c.source));
    }
    if (insertChunks.length > 0) {
      await copyChunks(client, chunks, base.dimensions, insertChunks, embeddingModel);
    }
    if (changes.upsertSources.length > 0) {
      const s = changes.upsertSources;
      await client.query(
        `INSERT INTO ${sources} (source, source_hash, chunk_count, format, encoding, title, bytes, indexed_at)
           SELECT *, now() FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[])
           ON CONFLICT (source) DO UPDATE SET source_hash = EXCLUDED.source_hash, chunk_count = EXCLUDED.chunk_count,
             format = EXCLUDED.format, encoding = EXCLUDED.encoding, title = EXCLUDED.title, bytes = EXCLUDED.bytes,
             indexed_at = EXCLUDED.indexed_at`,
        [
          s.map((r) => r.source),
          s.map((r) => r.sourceHash),
          s.map((r) => r.chunkCount),
          s.map((r) => r.format),
          s.map((r) => r.encoding),
          s.map((r) => r.title),
          s.map((r) => r.bytes),
        ],
      );
    }
    return { deleted, inserted: insertChunks.length };
  });
}

async function copyChunks(
  client: pg.PoolClient,
  table: string,
  dimensions: number,
  rows: StoredChunk[],
  embeddingModel: string,
): Promise<void> {
  function* encode(): Generator<Buffer> {
    yield copyHeader();
    for (const row of rows) {
      if (row.embedding.length !== dimensions) {
        throw new StoreError(
          `chunk ${row.chunkId}: ${row.embedding.length}-dimensional vector, the table holds ${dimensions}`,
        );
      }
      yield copyRow([
        { type: 'text', value: row.chunkId },
        { type: 'text', value: row.content },
        { type: 'text', value: row.source },
        { type: 'text', value: row.contentHash },
        { type: 'jsonb', value: row.metadata },
        { type: 'vector', value: row.embedding },
        { type: 'text', value: embeddingModel },
      ]);
    }
    yield copyTrailer();
  }
  const stream = client.query(
    copyFrom(
      `COPY ${table} (chunk_id, content, source, content_hash, metadata, embedding, embedding_model) FROM STDIN (FORMAT binary)`,
    ),
  );
  await pipeline(Readable.from(encode()), stream);
}
