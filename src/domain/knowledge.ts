import { z } from 'zod';
import { localPathSchema } from './validation.js';

// The knowledge-base re-index contract: the request (validated at every edge: CLI,
// Schedule, Temporal UI start), the plan a run follows, its counters, status and report.
// Pure: the workflow imports this.

/** bge-m3: 1024-dimensional dense vectors, 8192 input tokens. */
export const KNOWLEDGE_DIMENSIONS = 1024;
export const KNOWLEDGE_MAX_TOKENS = 8192;

export const chunkingSchema = z
  .object({
    /** Tokens per chunk the packer aims for (bge-m3 estimate, heading line included). */
    targetTokens: z
      .number()
      .int()
      .min(32, 'must be >= 32')
      .max(KNOWLEDGE_MAX_TOKENS, `must be <= ${KNOWLEDGE_MAX_TOKENS} (bge-m3 limit)`)
      .default(512),
    /** Tokens of trailing sentences repeated at the start of the next chunk of a section. */
    overlapTokens: z.number().int().min(0, 'must be >= 0').default(64),
    /** Hard ceiling per chunk: the embedding model's input limit. */
    maxTokens: z
      .number()
      .int()
      .min(32, 'must be >= 32')
      .max(KNOWLEDGE_MAX_TOKENS, `must be <= ${KNOWLEDGE_MAX_TOKENS} (bge-m3 limit)`)
      .default(KNOWLEDGE_MAX_TOKENS),
  })
  .strict()
  .refine((c) => c.overlapTokens < c.targetTokens / 2, {
    message: 'must be less than half of targetTokens',
    path: ['overlapTokens'],
  })
  .refine((c) => c.targetTokens <= c.maxTokens, { message: 'must be <= maxTokens', path: ['targetTokens'] });
export type ChunkingOptions = z.output<typeof chunkingSchema>;

export const TABLE_NAME_PATTERN = /^[a-z_][a-z0-9_]{0,31}$/;

export const knowledgeSourceSpecSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('directory'), path: localPathSchema }).strict(),
  z
    .object({
      kind: z.literal('object-store'),
      /** Prefix inside the configured artifact store's bucket ("" = the whole bucket). */
      prefix: z
        .string()
        .max(1024)
        .refine(
          (p) => !p.split('/').some((s) => s === '..' || s === '.'),
          'must not contain "." or ".." segments',
        ),
    })
    .strict(),
]);
export type KnowledgeSourceSpec = z.output<typeof knowledgeSourceSpecSchema>;

/** Batch activities a re-index keeps in flight by default (one worker) and at most. */
export const DEFAULT_BATCH_PARALLELISM = 2;
export const MAX_BATCH_PARALLELISM = 64;

export const REINDEX_MODES = ['auto', 'incremental', 'full'] as const;

export const reindexRequestSchema = z
  .object({
    /** Table of the base (qwen_knowledge by default); the lock and lease are per table. */
    table: z
      .string()
      .regex(TABLE_NAME_PATTERN, 'must be a lower-case SQL identifier of at most 32 characters')
      .default('qwen_knowledge'),
    source: knowledgeSourceSpecSchema,
    /**
     * incremental: change only what changed. full: build a new generation in a shadow
     * table, verify it, swap it in. auto: full when the base is empty, else incremental.
     */
    mode: z.enum(REINDEX_MODES).default('auto'),
    chunking: chunkingSchema.default(chunkingSchema.parse({})),
    batch: z
      .object({
        /** Sources one batch activity handles before it reports back. */
        sourcesPerActivity: z.number().int().min(1).max(100_000).default(200),
        /** Sources per write transaction (and heartbeat checkpoint). */
        sourcesPerCommit: z.number().int().min(1).max(10_000).default(50),
        /** New chunks that end a write transaction early (bounds memory and transaction size). */
        chunksPerCommit: z.number().int().min(1).max(100_000).default(512),
        /** Batch activities per workflow run before continue-as-new (keeps history bounded). */
        batchesPerRun: z.number().int().min(1).max(1000).default(100),
        /**
         * Batch activities in flight at once. The default suits one knowledge worker (its
         * embedder and database connection); raise it for a fleet of workers.
         */
        parallelism: z
          .number()
          .int('must be an integer')
          .min(1, 'must be >= 1')
          .max(MAX_BATCH_PARALLELISM, `must be <= ${MAX_BATCH_PARALLELISM}`)
          .default(DEFAULT_BATCH_PARALLELISM),
      })
      .strict()
      .prefault({}),
    verify: z
      .object({
        minRecallAt10: z.number().min(0).max(1).default(0.95),
        probes: z.number().int().min(1).max(1000).default(20),
        /** hnsw.ef_search for the probe queries; searches use the same default (200). */
        efSearch: z.number().int().min(10).max(1000).default(200),
      })
      .strict()
      .prefault({}),
    index: z
      .object({
        /** halfvec: index 16-bit floats (half the memory), vectors stay 32-bit in the table. */
        kind: z.enum(['vector', 'halfvec']).default('vector'),
        m: z.number().int().min(4).max(100).default(16),
        efConstruction: z.number().int().min(16).max(1000).default(64),
        maxMaintenanceWorkMemMb: z.number().int().min(64).max(65_536).default(2048),
      })
      .strict()
      .prefault({}),
    swap: z
      .object({
        lockTimeoutMs: z.number().int().min(10).max(60_000).default(2000),
        attempts: z.number().int().min(1).max(50).default(5),
      })
      .strict()
      .prefault({}),
    /**
     * How long the base stays taken without a sign of life from this run. The activities
     * renew it every third of this while they run (heartbeat-renewed), so it can be short:
     * a terminated run frees the base this long after its last activity stopped.
     */
    leaseTtlSeconds: z.number().int().min(10).max(86_400).default(90),
    heartbeatTimeoutSeconds: z.number().int().min(1).max(600).default(60),
    /** Larger files are reported, not read. */
    maxSourceBytes: z
      .number()
      .int()
      .min(1)
      .max(1024 * 1024 * 1024)
      .default(64 * 1024 * 1024),
    /**
     * Larger documents (characters of extracted text) are reported, not chunked: chunking
     * is linear, but one document is one activity's work and one transaction's chunks.
     */
    maxDocumentChars: z
      .number()
      .int()
      .min(1)
      .max(512 * 1024 * 1024)
      .default(32 * 1024 * 1024),
    /** Who asked (user, "schedule"); goes into the lease and the report. */
    requestedBy: z.string().min(1).max(200).default('unknown'),
  })
  .strict();
export type ReindexRequest = z.output<typeof reindexRequestSchema>;
export type ReindexRequestInput = z.input<typeof reindexRequestSchema>;

/** What `begin` decided; every later phase gets it. Plain data: it travels in workflow history. */
export interface ReindexPlan {
  runId: string;
  table: string;
  mode: 'incremental' | 'full';
  /** Where this run writes: the live tables (incremental) or the shadow (full). */
  target: 'live' | 'shadow';
  generation: string;
  /** Hash of everything that shapes chunks and vectors; part of every chunk id. */
  fingerprint: string;
  embeddingModel: string;
  embedderLabel: string;
  sourceDescription: string;
  sourcesListed: number;
  rowsBefore: number;
  pgvectorVersion: string;
  embeddedDatabase: boolean;
}

export interface ReindexCounters {
  documents: number;
  documentsUnchanged: number;
  documentsChanged: number;
  documentsFailed: number;
  documentsSkipped: number;
  documentsRemoved: number;
  chunksAdded: number;
  chunksKept: number;
  chunksRemoved: number;
  /** embed() calls; 0 on an unchanged corpus. */
  embeddingCalls: number;
  embeddedInputs: number;
  /** HTTP requests to the embeddings server, retries and 413 splits included. */
  embeddingRequests: number;
  embeddingRetries: number;
  /** Chunks whose vector came from the live generation instead of the embedder (full mode). */
  vectorsReused: number;
  /** Write transactions committed (0 on an unchanged corpus). */
  writeTransactions: number;
  bytesRead: number;
  readMs: number;
  extractMs: number;
  embedMs: number;
  writeMs: number;
}

export function emptyCounters(): ReindexCounters {
  return {
    documents: 0,
    documentsUnchanged: 0,
    documentsChanged: 0,
    documentsFailed: 0,
    documentsSkipped: 0,
    documentsRemoved: 0,
    chunksAdded: 0,
    chunksKept: 0,
    chunksRemoved: 0,
    embeddingCalls: 0,
    embeddedInputs: 0,
    embeddingRequests: 0,
    embeddingRetries: 0,
    vectorsReused: 0,
    writeTransactions: 0,
    bytesRead: 0,
    readMs: 0,
    extractMs: 0,
    embedMs: 0,
    writeMs: 0,
  };
}

export function addCounters(a: ReindexCounters, b: Partial<ReindexCounters>): ReindexCounters {
  const sum = { ...a };
  for (const key of Object.keys(sum) as Array<keyof ReindexCounters>) sum[key] = a[key] + (b[key] ?? 0);
  return sum;
}

/**
 * Full mode rebuilds the whole base, so what it added, kept and removed is measured
 * against the generation it replaced: kept = chunks whose id existed there (their vectors
 * were reused), added = the rest of the new generation, removed = what it no longer has.
 */
export function fullModeCounters(
  counters: ReindexCounters,
  rowsBefore: number,
  rowsAfter: number,
): ReindexCounters {
  const kept = Math.min(counters.vectorsReused, rowsAfter);
  return {
    ...counters,
    chunksKept: kept,
    chunksAdded: rowsAfter - kept,
    chunksRemoved: Math.max(0, rowsBefore - kept),
  };
}

export interface SourceFailure {
  source: string;
  reason: string;
}

/** Failures kept in history and the report; the count says how many there were in all. */
export const MAX_REPORTED_FAILURES = 50;

export function appendFailures(kept: SourceFailure[], more: SourceFailure[]): SourceFailure[] {
  return [...kept, ...more].slice(0, MAX_REPORTED_FAILURES);
}

export interface BatchResult {
  /** Listing position after this batch: the next batch starts here. */
  nextPosition: number;
  done: boolean;
  counters: ReindexCounters;
  failures: SourceFailure[];
  /** Chunks the target holds for the sources of this batch (the full-mode row count check). */
  chunksInBatch: number;
}

export interface VerificationResult {
  rows: number;
  expectedRows: number;
  recallAt10: number;
  minRecallAt10: number;
  probes: number;
  duplicates: number;
  passed: boolean;
  reason?: string;
}

export const REINDEX_PHASES = [
  'prepare',
  'index',
  'sweep',
  'build-index',
  'verify',
  'swap',
  'finish',
] as const;
export type ReindexPhase = (typeof REINDEX_PHASES)[number];

export interface ReindexReport {
  runId: string;
  table: string;
  mode: 'incremental' | 'full';
  source: string;
  embedder: string;
  embeddingModel: string;
  requestedBy: string;
  startedAt: string;
  finishedAt: string;
  outcome: 'succeeded' | 'failed';
  reason?: string;
  counters: ReindexCounters;
  failures: SourceFailure[];
  rowsBefore: number;
  rowsAfter: number;
  indexBuild?: { ms: number; maintenanceWorkMemMb: number; rows: number };
  verification?: VerificationResult;
  swap?: { attempts: number; replacedPrevious: boolean };
  phaseMs: Partial<Record<ReindexPhase, number>>;
}

export interface ReindexStatus {
  kind: 'knowledge-reindex';
  runId?: string;
  table: string;
  mode?: 'incremental' | 'full';
  phase: ReindexPhase;
  progress: { percent: number; message: string };
  sourcesListed?: number;
  sourcesDone: number;
  counters: ReindexCounters;
  failures: SourceFailure[];
  /** Batch activities running now (the index phase). */
  batchesInFlight?: number;
  outcome: 'running' | 'succeeded' | 'failed';
  reason?: string;
  report?: ReindexReport;
}

/** Overall progress: indexing is most of the work; the full-mode tail phases share the rest. */
export function reindexProgress(
  phase: ReindexPhase,
  sourcesDone: number,
  sourcesListed: number | undefined,
): number {
  const indexShare = (fraction: number) => Math.round(5 + 75 * Math.min(1, fraction));
  switch (phase) {
    case 'prepare':
      return 0;
    case 'index':
      return indexShare(sourcesListed ? sourcesDone / sourcesListed : 0);
    case 'sweep':
      return 82;
    case 'build-index':
      return 85;
    case 'verify':
      return 93;
    case 'swap':
      return 97;
    case 'finish':
      return 99;
  }
}
