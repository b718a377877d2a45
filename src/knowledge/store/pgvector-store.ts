import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import pgvector from 'pgvector';
import type { Logger } from '../../observability/logger.js';
import { copyHeader, copyRow, copyTrailer } from './copy-binary.js';

// The knowledge base in PostgreSQL + pgvector, through `pg` (a real server or the
// embedded PGlite over the wire protocol; the same code either way).
//
// Tables of one base named T (the seed's `qwen_knowledge` by default):
//   T            chunks: the seed's (id, content, source, embedding vector(1024)) plus
//                chunk_id (unique), content_hash, metadata jsonb, embedding_model
//   T_sources    one row per indexed source: its content hash and chunk count, so an
//                unchanged source costs one lookup and nothing else
//   T__shadow / T_sources__shadow      the generation a full re-index is building
//   T__previous / T_sources__previous  the generation the last swap replaced (rollback)
//   qwenops_kb_leases                  who is re-indexing which base
// Index names carry a generation tag, so a renamed generation never clashes with a new one.

export const MIN_PGVECTOR_VERSION = '0.8.4';
/** hnsw.ef_search of searches (pgvector's default is 40); the full-mode verification uses the same. */
export const DEFAULT_EF_SEARCH = 200;
const LEASES = 'qwenops_kb_leases';
const TABLE_NAME = /^[a-z_][a-z0-9_]{0,31}$/;

export type Generation = 'live' | 'shadow' | 'previous';
export type VectorIndexKind = 'vector' | 'halfvec';

export class StoreError extends Error {
  override readonly name: string = 'StoreError';
  readonly failureType: string = 'StoreUnavailable';
  readonly retryable: boolean = true;
}

/** Another run holds the base: refused before anything is written. */
export class ConcurrentReindexError extends StoreError {
  override readonly name = 'ConcurrentReindexError';
  override readonly failureType = 'ConcurrentReindex';
  override readonly retryable = false;
}

/** This run's lease was taken over (it expired): stop writing. */
export class LeaseLostError extends StoreError {
  override readonly name = 'LeaseLostError';
  override readonly failureType = 'ConcurrentReindex';
  override readonly retryable = false;
}

export class UnsupportedServerError extends StoreError {
  override readonly name = 'UnsupportedServerError';
  override readonly failureType = 'Unsupported';
  override readonly retryable = false;
}

export interface StoredChunk {
  chunkId: string;
  content: string;
  source: string;
  contentHash: string;
  metadata: Record<string, unknown>;
  embedding: Float32Array;
}

export interface SourceRecord {
  source: string;
  sourceHash: string;
  chunkCount: number;
  format: string;
  encoding: string | null;
  title: string;
  bytes: number;
}

export interface SourceState {
  sourceHash: string;
  chunkCount: number;
}

/** What one write transaction changes for a group of sources. */
export interface SourceChanges {
  /** Chunk ids to delete (changed or removed sources). */
  removeChunkIds: string[];
  /** Sources whose every chunk and bookkeeping row go (deleted from the corpus). */
  removeSources: string[];
  insertChunks: StoredChunk[];
  upsertSources: SourceRecord[];
}

export interface SearchHit {
  chunkId: string;
  content: string;
  source: string;
  metadata: Record<string, unknown>;
  /** Cosine similarity, 1 = same direction. */
  score: number;
}

export interface TableMeta {
  generation: string;
  embeddingModel: string;
  dimensions: number;
  indexKind: VectorIndexKind;
  runId: string;
}

export interface Lease {
  runId: string;
  holder: string;
  mode: string;
  acquiredAt: string;
  expiresAt: string;
}

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

export function assertTableName(name: string): string {
  if (!TABLE_NAME.test(name)) {
    throw new StoreError(
      `table name ${JSON.stringify(name)} must match ${TABLE_NAME} (lower-case SQL identifier, at most 32 characters)`,
    );
  }
  return name;
}

/** Deterministic advisory-lock key of a base (two int4, from a stable string hash). */
function lockKey(base: string): [number, number] {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < base.length; i++) {
    h1 = Math.imul(h1 ^ base.charCodeAt(i), 0x01000193);
    h2 = Math.imul(h2 ^ base.charCodeAt(i), 0x5bd1e995);
  }
  return [0x71776f70 /* "qwop" */ | 0, (h1 ^ h2) | 0];
}

export interface PgVectorStoreOptions {
  table?: string;
  dimensions?: number;
  logger?: Logger;
}

export class PgVectorStore {
  readonly table: string;
  readonly dimensions: number;

  constructor(
    private readonly pool: pg.Pool,
    private readonly options: PgVectorStoreOptions = {},
  ) {
    this.table = assertTableName(options.table ?? 'qwen_knowledge');
    this.dimensions = options.dimensions ?? 1024;
  }

  /** Table names of a generation. */
  names(generation: Generation): { chunks: string; sources: string } {
    const suffix = generation === 'live' ? '' : generation === 'shadow' ? '__shadow' : '__previous';
    return { chunks: `${this.table}${suffix}`, sources: `${this.table}_sources${suffix}` };
  }

  private async withTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
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

  /** Server facts; refuses a pgvector older than 0.8.4 or a missing extension. */
  async checkServer(): Promise<{ server: string; pgvector: string; embedded: boolean }> {
    await this.pool.query('CREATE EXTENSION IF NOT EXISTS vector').catch((err: Error) => {
      throw new UnsupportedServerError(`the pgvector extension is not available: ${err.message}`);
    });
    const { rows } = await this.pool.query<{ server: string; pgvector: string }>(
      "SELECT version() AS server, (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS pgvector",
    );
    const row = rows[0] as { server: string; pgvector: string };
    assertPgvectorVersion(row.pgvector);
    return { server: row.server, pgvector: row.pgvector, embedded: row.server.includes('PGlite') };
  }

  async exists(generation: Generation): Promise<boolean> {
    const { rows } = await this.pool.query<{ found: string | null }>('SELECT to_regclass($1) AS found', [
      this.names(generation).chunks,
    ]);
    return rows[0]?.found != null;
  }

  async count(generation: Generation = 'live'): Promise<number> {
    if (!(await this.exists(generation))) return 0;
    const { rows } = await this.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${this.names(generation).chunks}`,
    );
    return Number(rows[0]?.n ?? 0);
  }

  async meta(generation: Generation = 'live'): Promise<TableMeta | undefined> {
    if (!(await this.exists(generation))) return undefined;
    const { rows } = await this.pool.query<{ comment: string | null }>(
      "SELECT obj_description($1::regclass, 'pg_class') AS comment",
      [this.names(generation).chunks],
    );
    const comment = rows[0]?.comment;
    if (!comment) return undefined;
    try {
      return JSON.parse(comment) as TableMeta;
    } catch {
      return undefined;
    }
  }

  /**
   * Creates a generation's tables when missing. The live generation (incremental into an
   * empty base) gets every index at once. A shadow is a bulk-load target: its chunks table
   * starts bare (no primary key, unique or source index to maintain row by row) and gets
   * them, then HNSW, in buildIndexes() after the load.
   */
  async createGeneration(
    generation: 'live' | 'shadow',
    meta: TableMeta,
    options: { m?: number; efConstruction?: number } = {},
  ): Promise<void> {
    const { chunks, sources } = this.names(generation);
    const tag = `${this.table}_g${meta.generation}`;
    const bulk = generation === 'shadow';
    await this.withTransaction(async (client) => {
      await client.query(`CREATE TABLE IF NOT EXISTS ${chunks} (
        id bigint GENERATED BY DEFAULT AS IDENTITY,
        chunk_id text NOT NULL,
        content text NOT NULL,
        source varchar(1024) NOT NULL,
        content_hash text NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
        embedding vector(${this.dimensions}) NOT NULL,
        embedding_model text NOT NULL,
        indexed_at timestamptz NOT NULL DEFAULT now()
      )`);
      if (!bulk) await this.addRowIndexes(client, chunks, tag);
      await client.query(`CREATE TABLE IF NOT EXISTS ${sources} (
        source varchar(1024) NOT NULL,
        source_hash text NOT NULL,
        chunk_count integer NOT NULL,
        format text NOT NULL,
        encoding text,
        title text NOT NULL,
        bytes bigint NOT NULL,
        indexed_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ${tag}_sources_pkey PRIMARY KEY (source)
      )`);
      await client.query(`COMMENT ON TABLE ${chunks} IS ${pg.escapeLiteral(JSON.stringify(meta))}`);
    });
    if (!bulk) await this.buildVectorIndex(generation, meta, options);
  }

  private async addRowIndexes(client: pg.PoolClient, chunks: string, tag: string): Promise<void> {
    await client.query(`ALTER TABLE ${chunks} ADD CONSTRAINT ${tag}_pkey PRIMARY KEY (id)`);
    // Fails on a duplicate chunk id: a load that wrote a chunk twice never goes live.
    await client.query(`ALTER TABLE ${chunks} ADD CONSTRAINT ${tag}_chunk_key UNIQUE (chunk_id)`);
    await client.query(`CREATE INDEX ${tag}_source_idx ON ${chunks} (source)`);
  }

  /** After a shadow's bulk load: the row indexes, then HNSW (see buildVectorIndex). */
  async buildIndexes(
    meta: TableMeta,
    options: { m?: number; efConstruction?: number; maxMaintenanceWorkMemMb?: number } = {},
  ): Promise<{ maintenanceWorkMemMb: number; rows: number }> {
    const { chunks } = this.names('shadow');
    const tag = `${this.table}_g${meta.generation}`;
    const { rows } = await this.pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM pg_constraint WHERE conname = $1',
      [`${tag}_pkey`],
    );
    if (Number(rows[0]?.n ?? 0) === 0) {
      await this.withTransaction(async (client) => {
        await client.query("SET LOCAL maintenance_work_mem = '256MB'");
        await this.addRowIndexes(client, chunks, tag);
      });
    }
    return this.buildVectorIndex('shadow', meta, options);
  }

  /** HNSW cosine index, built after the load with maintenance_work_mem sized for the graph. */
  async buildVectorIndex(
    generation: 'live' | 'shadow',
    meta: TableMeta,
    options: { m?: number; efConstruction?: number; maxMaintenanceWorkMemMb?: number } = {},
  ): Promise<{ maintenanceWorkMemMb: number; rows: number }> {
    const { chunks } = this.names(generation);
    const m = options.m ?? 16;
    const efConstruction = options.efConstruction ?? 64;
    const rows = await this.count(generation);
    // The in-memory graph: each element holds its vector and up to 2*m level-0 neighbours
    // (plus upper levels); pgvector warns when the graph stops fitting and slows down.
    const bytesPerVector = meta.indexKind === 'halfvec' ? 2 * this.dimensions : 4 * this.dimensions;
    const estimate = Math.ceil((rows * (bytesPerVector + m * 2 * 10 + 128) * 1.3) / (1024 * 1024));
    const maintenanceWorkMemMb = Math.min(options.maxMaintenanceWorkMemMb ?? 2048, Math.max(64, estimate));
    const tag = `${this.table}_g${meta.generation}`;
    const expression =
      meta.indexKind === 'halfvec'
        ? `((embedding::halfvec(${this.dimensions})) halfvec_cosine_ops)`
        : '(embedding vector_cosine_ops)';
    await this.withTransaction(async (client) => {
      await client.query(`SET LOCAL maintenance_work_mem = '${maintenanceWorkMemMb}MB'`);
      await client.query('SET LOCAL max_parallel_maintenance_workers = 7');
      await client.query(
        `CREATE INDEX IF NOT EXISTS ${tag}_embedding_hnsw ON ${chunks} USING hnsw ${expression} WITH (m = ${m}, ef_construction = ${efConstruction})`,
      );
    });
    return { maintenanceWorkMemMb, rows };
  }

  async sourceStates(generation: Generation, sources: string[]): Promise<Map<string, SourceState>> {
    const states = new Map<string, SourceState>();
    if (sources.length === 0 || !(await this.exists(generation))) return states;
    const { rows } = await this.pool.query<{ source: string; source_hash: string; chunk_count: number }>(
      `SELECT source, source_hash, chunk_count FROM ${this.names(generation).sources} WHERE source = ANY($1::text[])`,
      [sources],
    );
    for (const row of rows)
      states.set(row.source, { sourceHash: row.source_hash, chunkCount: row.chunk_count });
    return states;
  }

  async chunkIdsOf(generation: Generation, sources: string[]): Promise<Map<string, Set<string>>> {
    const result = new Map<string, Set<string>>();
    if (sources.length === 0) return result;
    const { rows } = await this.pool.query<{ source: string; chunk_id: string }>(
      `SELECT source, chunk_id FROM ${this.names(generation).chunks} WHERE source = ANY($1::text[])`,
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
  async vectorsOf(generation: Generation, chunkIds: string[]): Promise<Map<string, Float32Array>> {
    const vectors = new Map<string, Float32Array>();
    if (chunkIds.length === 0 || !(await this.exists(generation))) return vectors;
    const { rows } = await this.pool.query<{ chunk_id: string; embedding: string }>(
      `SELECT chunk_id, embedding::text AS embedding FROM ${this.names(generation).chunks} WHERE chunk_id = ANY($1::text[])`,
      [chunkIds],
    );
    for (const row of rows)
      vectors.set(row.chunk_id, Float32Array.from(pgvector.fromSql(row.embedding) as number[]));
    return vectors;
  }

  /**
   * Full mode: unchanged sources move from the live generation to the shadow inside the
   * database. Only sources the shadow does not have yet are given (its sources row is
   * written in the same transaction as its chunks), and chunk ids include the source, so
   * nothing here can collide.
   */
  async copyFromLive(sources: string[], lease: { runId: string; ttlSeconds: number }): Promise<number> {
    if (sources.length === 0) return 0;
    const live = this.names('live');
    const shadow = this.names('shadow');
    return this.withTransaction(async (client) => {
      await this.fence(client, lease);
      const inserted = await client.query(
        `INSERT INTO ${shadow.chunks} (chunk_id, content, source, content_hash, metadata, embedding, embedding_model)
         SELECT chunk_id, content, source, content_hash, metadata, embedding, embedding_model FROM ${live.chunks}
         WHERE source = ANY($1::text[])`,
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
  async applyChanges(
    generation: 'live' | 'shadow',
    changes: SourceChanges,
    lease: { runId: string; ttlSeconds: number },
    embeddingModel: string,
  ): Promise<{ deleted: number; inserted: number }> {
    const { chunks, sources } = this.names(generation);
    return this.withTransaction(async (client) => {
      await this.fence(client, lease);
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
      if (changes.insertChunks.length > 0) {
        await this.copyChunks(client, chunks, changes.insertChunks, embeddingModel);
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
      return { deleted, inserted: changes.insertChunks.length };
    });
  }

  private async copyChunks(
    client: pg.PoolClient,
    table: string,
    rows: StoredChunk[],
    embeddingModel: string,
  ): Promise<void> {
    const dimensions = this.dimensions;
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

  /** Sources of a generation in pages (keyset pagination), for the deleted-source sweep. */
  async *sources(generation: Generation, pageSize = 1000): AsyncGenerator<string> {
    if (!(await this.exists(generation))) return;
    let after = '';
    let first = true;
    for (;;) {
      const { rows } = await this.pool.query<{ source: string }>(
        `SELECT source FROM ${this.names(generation).sources} WHERE $1 OR source > $2 ORDER BY source LIMIT $3`,
        [first, after, pageSize],
      );
      first = false;
      for (const row of rows) yield row.source;
      if (rows.length < pageSize) return;
      after = (rows[rows.length - 1] as { source: string }).source;
    }
  }

  // --- leases: one re-index per base at a time ------------------------------------------

  async ensureLeaseTable(): Promise<void> {
    await this.pool.query(`CREATE TABLE IF NOT EXISTS ${LEASES} (
      base text PRIMARY KEY,
      run_id text NOT NULL,
      holder text NOT NULL,
      mode text NOT NULL,
      acquired_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL
    )`);
  }

  /**
   * Takes the base for `runId`, or refuses with ConcurrentReindexError naming the holder.
   * The transaction-scoped advisory lock serialises concurrent takers on a real server
   * (one of two simultaneous starts sees `false` and refuses); the lease row then keeps
   * the base taken between this run's activities, which may run on different workers, and
   * expires if the run dies without releasing it. Re-taking by the same run id (a retried
   * activity) succeeds.
   */
  async acquireLease(runId: string, holder: string, mode: string, ttlSeconds: number): Promise<Lease> {
    await this.ensureLeaseTable();
    const [k1, k2] = lockKey(this.table);
    return this.withTransaction(async (client) => {
      const { rows: lock } = await client.query<{ ok: boolean }>(
        'SELECT pg_try_advisory_xact_lock($1, $2) AS ok',
        [k1, k2],
      );
      if (!lock[0]?.ok)
        throw new ConcurrentReindexError(`another re-index of ${this.table} is starting right now`);
      const { rows } = await client.query<{
        run_id: string;
        holder: string;
        acquired_at: Date;
        expires_at: Date;
        live: boolean;
      }>(
        `SELECT run_id, holder, acquired_at, expires_at, expires_at > now() AS live FROM ${LEASES} WHERE base = $1 FOR UPDATE`,
        [this.table],
      );
      const current = rows[0];
      if (current && current.run_id !== runId && current.live) {
        throw new ConcurrentReindexError(
          `knowledge base ${this.table} is being re-indexed by run ${current.run_id} (${current.holder}, since ${current.acquired_at.toISOString()}, lease until ${current.expires_at.toISOString()})`,
        );
      }
      const { rows: taken } = await client.query<{ acquired_at: Date; expires_at: Date }>(
        `INSERT INTO ${LEASES} (base, run_id, holder, mode, acquired_at, expires_at)
         VALUES ($1, $2, $3, $4, now(), now() + make_interval(secs => $5))
         ON CONFLICT (base) DO UPDATE SET run_id = EXCLUDED.run_id, holder = EXCLUDED.holder, mode = EXCLUDED.mode,
           acquired_at = CASE WHEN ${LEASES}.run_id = EXCLUDED.run_id THEN ${LEASES}.acquired_at ELSE EXCLUDED.acquired_at END,
           expires_at = EXCLUDED.expires_at
         RETURNING acquired_at, expires_at`,
        [this.table, runId, holder, mode, ttlSeconds],
      );
      const row = taken[0] as { acquired_at: Date; expires_at: Date };
      return {
        runId,
        holder,
        mode,
        acquiredAt: row.acquired_at.toISOString(),
        expiresAt: row.expires_at.toISOString(),
      };
    });
  }

  /** Extends this run's lease; LeaseLostError when another run has it now. */
  async renewLease(lease: { runId: string; ttlSeconds: number }): Promise<void> {
    const client = await this.pool.connect();
    try {
      await this.fence(client, lease);
    } finally {
      client.release();
    }
  }

  private async fence(client: pg.PoolClient, lease: { runId: string; ttlSeconds: number }): Promise<void> {
    const r = await client.query(
      `UPDATE ${LEASES} SET expires_at = now() + make_interval(secs => $3) WHERE base = $1 AND run_id = $2`,
      [this.table, lease.runId, lease.ttlSeconds],
    );
    if ((r.rowCount ?? 0) === 0) {
      throw new LeaseLostError(
        `run ${lease.runId} no longer holds knowledge base ${this.table} (its lease expired and was taken)`,
      );
    }
  }

  async currentLease(): Promise<Lease | undefined> {
    await this.ensureLeaseTable();
    const { rows } = await this.pool.query<{
      run_id: string;
      holder: string;
      mode: string;
      acquired_at: Date;
      expires_at: Date;
    }>(
      `SELECT run_id, holder, mode, acquired_at, expires_at FROM ${LEASES} WHERE base = $1 AND expires_at > now()`,
      [this.table],
    );
    const row = rows[0];
    return row
      ? {
          runId: row.run_id,
          holder: row.holder,
          mode: row.mode,
          acquiredAt: row.acquired_at.toISOString(),
          expiresAt: row.expires_at.toISOString(),
        }
      : undefined;
  }

  async releaseLease(runId: string): Promise<void> {
    await this.ensureLeaseTable();
    await this.pool.query(`DELETE FROM ${LEASES} WHERE base = $1 AND run_id = $2`, [this.table, runId]);
  }

  /**
   * Keeps this run's lease renewed every `intervalMs` (a third of its TTL by default) while
   * an activity works, so a short TTL holds through a long phase (a CREATE INDEX, a slow
   * listing) and a run that is terminated stops renewing and frees the base one TTL later.
   * A refused renewal (LeaseLostError) stops it and is reported to `onLost`; the run's next
   * write is fenced and fails. Transient errors are logged and retried at the next tick.
   * Returns the function that stops it.
   */
  keepLeaseRenewed(
    lease: { runId: string; ttlSeconds: number },
    options: { intervalMs?: number; onLost?: (err: LeaseLostError) => void } = {},
  ): () => void {
    const intervalMs = options.intervalMs ?? Math.max(1000, Math.floor((lease.ttlSeconds * 1000) / 3));
    let stopped = false;
    let running = false;
    const timer = setInterval(() => {
      if (stopped || running) return;
      running = true;
      this.renewLease(lease)
        .catch((err: unknown) => {
          if (err instanceof LeaseLostError) {
            stop();
            options.onLost?.(err);
          } else {
            this.options.logger?.warn(
              { err, runId: lease.runId, table: this.table },
              'lease renewal failed; retrying',
            );
          }
        })
        .finally(() => {
          running = false;
        });
    }, intervalMs);
    timer.unref?.();
    const stop = () => {
      stopped = true;
      clearInterval(timer);
    };
    return stop;
  }

  /**
   * An operator frees the base of a run that is gone (`qwenops kb unlock`). An expired lease
   * is deleted; a live one (its run still renews it) only with `force`. Returns the lease
   * deleted, or `live` with the lease kept when refused, or nothing when there was none.
   */
  async breakLease(options: { force: boolean }): Promise<{ broken?: Lease; live?: Lease }> {
    await this.ensureLeaseTable();
    type Row = { run_id: string; holder: string; mode: string; acquired_at: Date; expires_at: Date };
    const toLease = (row: Row): Lease => ({
      runId: row.run_id,
      holder: row.holder,
      mode: row.mode,
      acquiredAt: row.acquired_at.toISOString(),
      expiresAt: row.expires_at.toISOString(),
    });
    const { rows } = await this.pool.query<Row>(
      `DELETE FROM ${LEASES} WHERE base = $1 AND ($2::boolean OR expires_at <= now())
       RETURNING run_id, holder, mode, acquired_at, expires_at`,
      [this.table, options.force],
    );
    if (rows[0]) return { broken: toLease(rows[0]) };
    const { rows: kept } = await this.pool.query<Row>(
      `SELECT run_id, holder, mode, acquired_at, expires_at FROM ${LEASES} WHERE base = $1`,
      [this.table],
    );
    return kept[0] ? { live: toLease(kept[0]) } : {};
  }

  // --- blue/green ------------------------------------------------------------------------

  async dropGeneration(generation: 'shadow' | 'previous'): Promise<void> {
    const { chunks, sources } = this.names(generation);
    await this.pool.query(`DROP TABLE IF EXISTS ${chunks}; DROP TABLE IF EXISTS ${sources}`);
  }

  /**
   * Makes the shadow live by renames in one transaction. The generation it replaces becomes
   * `previous` (kept for rollback). The generation before that is dropped first, in its own
   * statement, never inside the swap. A short lock_timeout keeps the swap from queueing
   * readers behind it; it is retried with backoff.
   */
  async swap(
    options: { lockTimeoutMs?: number; attempts?: number } = {},
  ): Promise<{ attempts: number; replaced: boolean }> {
    if (!(await this.exists('shadow')))
      throw new StoreError(`no shadow generation of ${this.table} to swap in`);
    await this.dropGeneration('previous');
    const live = this.names('live');
    const shadow = this.names('shadow');
    const previous = this.names('previous');
    const replaced = await this.exists('live');
    const attempts = options.attempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.withTransaction(async (client) => {
          await client.query(`SET LOCAL lock_timeout = '${options.lockTimeoutMs ?? 2000}ms'`);
          if (replaced) {
            await client.query(`ALTER TABLE ${live.chunks} RENAME TO ${previous.chunks}`);
            await client.query(`ALTER TABLE ${live.sources} RENAME TO ${previous.sources}`);
          }
          await client.query(`ALTER TABLE ${shadow.chunks} RENAME TO ${live.chunks}`);
          await client.query(`ALTER TABLE ${shadow.sources} RENAME TO ${live.sources}`);
        });
        return { attempts: attempt, replaced };
      } catch (err) {
        // 55P03 lock_not_available: readers hold the table; try again shortly.
        if ((err as { code?: string }).code !== '55P03' || attempt >= attempts) throw err;
        this.options.logger?.warn(
          { attempt, table: this.table },
          'swap could not take its locks in time; retrying',
        );
        await sleep(200 * 2 ** attempt);
      }
    }
  }

  /** Puts the previous generation back (and the current one becomes previous). */
  async rollback(options: { lockTimeoutMs?: number } = {}): Promise<void> {
    if (!(await this.exists('previous')))
      throw new StoreError(`${this.table} has no previous generation to roll back to`);
    const live = this.names('live');
    const previous = this.names('previous');
    await this.withTransaction(async (client) => {
      await client.query(`SET LOCAL lock_timeout = '${options.lockTimeoutMs ?? 2000}ms'`);
      for (const kind of ['chunks', 'sources'] as const) {
        const parking = `${live[kind]}__rollback`;
        await client.query(`ALTER TABLE ${live[kind]} RENAME TO ${parking}`);
        await client.query(`ALTER TABLE ${previous[kind]} RENAME TO ${live[kind]}`);
        await client.query(`ALTER TABLE ${parking} RENAME TO ${previous[kind]}`);
      }
    });
  }

  // --- queries ---------------------------------------------------------------------------

  private orderExpression(meta: TableMeta | undefined): { order: string; cast: string } {
    return meta?.indexKind === 'halfvec'
      ? {
          order: `embedding::halfvec(${this.dimensions}) <=> $1::halfvec(${this.dimensions})`,
          cast: 'halfvec',
        }
      : { order: `embedding <=> $1::vector`, cast: 'vector' };
  }

  /** Approximate top-k by cosine distance through the HNSW index. */
  async search(
    vector: Float32Array,
    k: number,
    options: { efSearch?: number; generation?: Generation; exact?: boolean } = {},
  ): Promise<SearchHit[]> {
    const generation = options.generation ?? 'live';
    if (!(await this.exists(generation))) return [];
    const meta = await this.meta(generation);
    const { order } = this.orderExpression(meta);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
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
        `SELECT chunk_id, content, source, metadata, ${order} AS distance FROM ${this.names(generation).chunks} ORDER BY ${order} LIMIT $2`,
        [pgvector.toSql(Array.from(vector)), k],
      );
      await client.query('COMMIT');
      return rows.map((r) => ({
        chunkId: r.chunk_id,
        content: r.content,
        source: r.source,
        metadata: r.metadata,
        score: 1 - Number(r.distance),
      }));
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Probe vectors for verification: mixtures of two stored vectors, chosen deterministically. */
  async probeVectors(generation: Generation, count: number): Promise<Float32Array[]> {
    const { rows } = await this.pool.query<{ embedding: string }>(
      `SELECT embedding::text AS embedding FROM ${this.names(generation).chunks} ORDER BY md5(chunk_id) LIMIT $1`,
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
  async recallAtK(
    generation: Generation,
    probes: Float32Array[],
    k: number,
    efSearch: number,
  ): Promise<number> {
    if (probes.length === 0) return 1;
    let total = 0;
    for (const probe of probes) {
      const exact = await this.search(probe, k, { generation, exact: true });
      const approx = await this.search(probe, k, { generation, efSearch });
      const truth = new Set(exact.map((h) => h.chunkId));
      const found = approx.filter((h) => truth.has(h.chunkId)).length;
      total += truth.size === 0 ? 1 : found / truth.size;
    }
    return total / probes.length;
  }

  /** Checks a row-level invariant the tests and the verifier rely on: one row per chunk id. */
  async duplicateChunkIds(generation: Generation = 'live'): Promise<number> {
    if (!(await this.exists(generation))) return 0;
    const { rows } = await this.pool.query<{ n: string }>(
      `SELECT count(*) - count(DISTINCT chunk_id) AS n FROM ${this.names(generation).chunks}`,
    );
    return Number(rows[0]?.n ?? 0);
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
export function knowledgePoolFactory(config: { databaseUrl?: string }): {
  get: () => pg.Pool;
  close: () => Promise<void>;
} {
  let pool: pg.Pool | undefined;
  return {
    get() {
      pool ??= createKnowledgePool(knowledgeDatabaseUrl(config));
      return pool;
    },
    async close() {
      await pool?.end();
    },
  };
}
