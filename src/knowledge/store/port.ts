import type { LeaseLostError } from './errors.js';

// The knowledge-store port: what the re-index service (../indexer.ts), retrieval
// (../retrieval.ts), the activities and the CLI need from the store of one base. Small
// interfaces, one per concern; KnowledgeStore is all of them. The adapter is pgvector
// (./pgvector/), built only by the composition code (../compose.ts).
//
// A base has generations: `live` (what searches read), `shadow` (what a full re-index
// builds, swapped in atomically once verified) and `previous` (what the last swap replaced,
// kept for rollback). One re-index at a time holds a base, by a lease that expires unless
// renewed; every write is fenced by it.

export type Generation = 'live' | 'shadow' | 'previous';
export type VectorIndexKind = 'vector' | 'halfvec';

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

/** The lease a write is fenced by: the run that must still hold the base, and how long to extend it. */
export interface LeaseTerm {
  runId: string;
  ttlSeconds: number;
}

export interface ServerInfo {
  server: string;
  pgvector: string;
  embedded: boolean;
}

export interface VectorIndexOptions {
  m?: number;
  efConstruction?: number;
  maxMaintenanceWorkMemMb?: number;
}

/** Which base a store holds, and the size of its vectors. */
export interface KnowledgeBaseRef {
  readonly table: string;
  readonly dimensions: number;
}

/** Generations: facts, creation, index build, and the blue/green swap. */
export interface GenerationStore {
  /** Server facts; refuses a server the store cannot run on. */
  checkServer(): Promise<ServerInfo>;
  exists(generation: Generation): Promise<boolean>;
  count(generation?: Generation): Promise<number>;
  meta(generation?: Generation): Promise<TableMeta | undefined>;
  createGeneration(
    generation: 'live' | 'shadow',
    meta: TableMeta,
    options?: Omit<VectorIndexOptions, 'maxMaintenanceWorkMemMb'>,
  ): Promise<void>;
  /** After a shadow's bulk load: its row indexes, then the vector index. */
  buildIndexes(
    meta: TableMeta,
    options?: VectorIndexOptions,
  ): Promise<{ maintenanceWorkMemMb: number; rows: number }>;
  dropGeneration(generation: 'shadow' | 'previous'): Promise<void>;
  /** Makes the shadow live; the live generation becomes `previous`. */
  swap(options?: {
    lockTimeoutMs?: number;
    attempts?: number;
  }): Promise<{ attempts: number; replaced: boolean }>;
  /** Puts the previous generation back live. */
  rollback(options?: { lockTimeoutMs?: number }): Promise<void>;
}

/** Incremental reads: what a generation already holds for a group of sources. */
export interface ChunkReader {
  sourceStates(generation: Generation, sources: string[]): Promise<Map<string, SourceState>>;
  chunkIdsOf(generation: Generation, sources: string[]): Promise<Map<string, Set<string>>>;
  /** Vectors already computed for these chunk ids (same ids imply same text and model). */
  vectorsOf(generation: Generation, chunkIds: string[]): Promise<Map<string, Float32Array>>;
  /** Every source a generation holds, in pages, for the deleted-source sweep. */
  sources(generation: Generation, pageSize?: number): AsyncIterable<string>;
}

/** Writes, each one transaction fenced by the run's lease. */
export interface ChunkWriter {
  /** Full mode: moves unchanged sources from live to the shadow; returns the chunks copied. */
  copyFromLive(sources: string[], lease: LeaseTerm): Promise<number>;
  applyChanges(
    generation: 'live' | 'shadow',
    changes: SourceChanges,
    lease: LeaseTerm,
    embeddingModel: string,
  ): Promise<{ deleted: number; inserted: number }>;
}

/** One re-index per base at a time. */
export interface LeaseStore {
  /** Takes the base for `runId`, or refuses with ConcurrentReindexError naming the holder. */
  acquireLease(runId: string, holder: string, mode: string, ttlSeconds: number): Promise<Lease>;
  /** Extends this run's lease; LeaseLostError when another run has it now. */
  renewLease(lease: LeaseTerm): Promise<void>;
  releaseLease(runId: string): Promise<void>;
  currentLease(): Promise<Lease | undefined>;
  /** Frees the base of a run that is gone: an expired lease, or a live one with `force`. */
  breakLease(options: { force: boolean }): Promise<{ broken?: Lease; live?: Lease }>;
  /** Renews the lease in the background until the returned function is called. */
  keepLeaseRenewed(
    lease: LeaseTerm,
    options?: { intervalMs?: number; onLost?: (err: LeaseLostError) => void },
  ): () => void;
}

/** Nearest chunks by cosine similarity. */
export interface VectorSearch {
  search(
    vector: Float32Array,
    k: number,
    options?: { efSearch?: number; generation?: Generation; exact?: boolean },
  ): Promise<SearchHit[]>;
}

/** What verifies a shadow before it goes live. */
export interface RecallCheck {
  duplicateChunkIds(generation?: Generation): Promise<number>;
  probeVectors(generation: Generation, count: number): Promise<Float32Array[]>;
  /** recall@k of the approximate index against exact search, averaged over the probes. */
  recallAtK(generation: Generation, probes: Float32Array[], k: number, efSearch: number): Promise<number>;
}

/** The store of one knowledge base. */
export interface KnowledgeStore
  extends KnowledgeBaseRef,
    GenerationStore,
    ChunkReader,
    ChunkWriter,
    LeaseStore,
    VectorSearch,
    RecallCheck {}

/** What retrieval needs: which model embedded the live generation, and search. */
export type KnowledgeSearchStore = KnowledgeBaseRef & Pick<GenerationStore, 'meta'> & VectorSearch;
