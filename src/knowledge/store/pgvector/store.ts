import type pg from 'pg';
import type { Logger } from '../../../observability/logger.js';
import type { LeaseLostError } from '../errors.js';
import type {
  Generation,
  KnowledgeStore,
  Lease,
  LeaseTerm,
  SearchHit,
  ServerInfo,
  SourceChanges,
  SourceState,
  TableMeta,
  VectorIndexOptions,
} from '../port.js';
import * as generations from './generations.js';
import * as leases from './leases.js';
import type { PgBase } from './pool.js';
import * as reads from './reads.js';
import * as schema from './schema.js';
import * as vectors from './search.js';
import { checkServer } from './server.js';
import * as writes from './writes.js';

// The knowledge store of one base in PostgreSQL + pgvector: the port (../port.ts) over the
// operations of this folder, one file per concern (schema, generations and swap, leases,
// incremental reads, COPY writes, search and recall). Built by the composition code only.

export interface PgVectorStoreOptions {
  table?: string;
  dimensions?: number;
  logger?: Logger;
}

export class PgVectorStore implements KnowledgeStore {
  readonly table: string;
  readonly dimensions: number;
  private readonly base: PgBase;

  constructor(pool: pg.Pool, options: PgVectorStoreOptions = {}) {
    this.table = schema.assertTableName(options.table ?? 'qwen_knowledge');
    this.dimensions = options.dimensions ?? 1024;
    this.base = { pool, table: this.table, dimensions: this.dimensions, logger: options.logger };
  }

  /** Table names of a generation. */
  names(generation: Generation): { chunks: string; sources: string } {
    return schema.tableNames(this.table, generation);
  }

  // --- generations -------------------------------------------------------------------

  checkServer(): Promise<ServerInfo> {
    return checkServer(this.base.pool);
  }

  exists(generation: Generation): Promise<boolean> {
    return schema.exists(this.base, generation);
  }

  count(generation: Generation = 'live'): Promise<number> {
    return schema.count(this.base, generation);
  }

  meta(generation: Generation = 'live'): Promise<TableMeta | undefined> {
    return schema.readMeta(this.base, generation);
  }

  createGeneration(
    generation: 'live' | 'shadow',
    meta: TableMeta,
    options: { m?: number; efConstruction?: number } = {},
  ): Promise<void> {
    return schema.createGeneration(this.base, generation, meta, options);
  }

  buildIndexes(
    meta: TableMeta,
    options: VectorIndexOptions = {},
  ): Promise<{ maintenanceWorkMemMb: number; rows: number }> {
    return schema.buildIndexes(this.base, meta, options);
  }

  buildVectorIndex(
    generation: 'live' | 'shadow',
    meta: TableMeta,
    options: VectorIndexOptions = {},
  ): Promise<{ maintenanceWorkMemMb: number; rows: number }> {
    return schema.buildVectorIndex(this.base, generation, meta, options);
  }

  dropGeneration(generation: 'shadow' | 'previous'): Promise<void> {
    return generations.dropGeneration(this.base, generation);
  }

  swap(options: { lockTimeoutMs?: number; attempts?: number } = {}) {
    return generations.swap(this.base, options);
  }

  rollback(options: { lockTimeoutMs?: number } = {}): Promise<void> {
    return generations.rollback(this.base, options);
  }

  // --- incremental reads and writes --------------------------------------------------

  sourceStates(generation: Generation, sources: string[]): Promise<Map<string, SourceState>> {
    return reads.sourceStates(this.base, generation, sources);
  }

  chunkIdsOf(generation: Generation, sources: string[]): Promise<Map<string, Set<string>>> {
    return reads.chunkIdsOf(this.base, generation, sources);
  }

  vectorsOf(generation: Generation, chunkIds: string[]): Promise<Map<string, Float32Array>> {
    return reads.vectorsOf(this.base, generation, chunkIds);
  }

  sources(generation: Generation, pageSize?: number): AsyncGenerator<string> {
    return reads.sources(this.base, generation, pageSize);
  }

  copyFromLive(sources: string[], lease: LeaseTerm): Promise<number> {
    return writes.copyFromLive(this.base, sources, lease);
  }

  applyChanges(
    generation: 'live' | 'shadow',
    changes: SourceChanges,
    lease: LeaseTerm,
    embeddingModel: string,
  ): Promise<{ deleted: number; inserted: number }> {
    return writes.applyChanges(this.base, generation, changes, lease, embeddingModel);
  }

  // --- leases ------------------------------------------------------------------------

  ensureLeaseTable(): Promise<void> {
    return leases.ensureLeaseTable(this.base.pool);
  }

  acquireLease(runId: string, holder: string, mode: string, ttlSeconds: number): Promise<Lease> {
    return leases.acquireLease(this.base, runId, holder, mode, ttlSeconds);
  }

  renewLease(lease: LeaseTerm): Promise<void> {
    return leases.renewLease(this.base, lease);
  }

  currentLease(): Promise<Lease | undefined> {
    return leases.currentLease(this.base);
  }

  releaseLease(runId: string): Promise<void> {
    return leases.releaseLease(this.base, runId);
  }

  keepLeaseRenewed(
    lease: LeaseTerm,
    options: { intervalMs?: number; onLost?: (err: LeaseLostError) => void } = {},
  ): () => void {
    return leases.keepLeaseRenewed(this.base, lease, options);
  }

  breakLease(options: { force: boolean }): Promise<{ broken?: Lease; live?: Lease }> {
    return leases.breakLease(this.base, options);
  }

  // --- search and recall -------------------------------------------------------------

  search(
    vector: Float32Array,
    k: number,
    options: { efSearch?: number; generation?: Generation; exact?: boolean } = {},
  ): Promise<SearchHit[]> {
    return vectors.search(this.base, vector, k, options);
  }

  probeVectors(generation: Generation, count: number): Promise<Float32Array[]> {
    return vectors.probeVectors(this.base, generation, count);
  }

  recallAtK(generation: Generation, probes: Float32Array[], k: number, efSearch: number): Promise<number> {
    return vectors.recallAtK(this.base, generation, probes, k, efSearch);
  }

  duplicateChunkIds(generation: Generation = 'live'): Promise<number> {
    return vectors.duplicateChunkIds(this.base, generation);
  }
}
