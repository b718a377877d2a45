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
  /**
   * The key of the last source this batch handled (absent when it handled none): the
   * cursor of the batch starting at `nextPosition` (see ListingCursor).
   */
  lastKey?: string;
}

/**
 * Where a batch's listing resumes: after the source key `startAfter`, which is the last
 * one before listing position `position`. A batch starting at position p with a cursor
 * lists from the cursor and skips p - position entries, instead of relisting from the
 * start; without one (runs recorded before cursors) it lists from the start.
 */
export interface ListingCursor {
  position: number;
  startAfter: string;
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
  /** The index phase's rates at its end (absent in reports of runs before it was measured). */
  throughput?: ReindexThroughput;
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
  /** Index-phase rates and ETA, as of the last finished batch (absent before the first one). */
  throughput?: ReindexThroughput;
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

// Throughput of the index phase, for a person watching a long run (status query, CLI, the
// Temporal UI's current details). Computed in the workflow from what finished batches
// return and from workflow time (Date.now() there is the workflow task's time, recorded in
// history: deterministic on replay). Time is index-phase time summed over the runs of a
// continue-as-new chain, so every rate and the ETA continue across it. The state carried
// is a few numbers and a window of at most THROUGHPUT_WINDOW_SAMPLES samples: bounded
// however many batches a run has.

/** Samples the recent rates are measured over (one per workflow task that committed batches). */
export const THROUGHPUT_WINDOW_SAMPLES = 8;

/** Totals at one moment of the index phase. */
export interface ThroughputSample {
  /** Index-phase milliseconds since the chain's index phase began (all runs together). */
  indexMs: number;
  sources: number;
  documents: number;
  /** Chunks the indexed sources have in the target (sum of the batches' chunksInBatch). */
  chunks: number;
  embeddedInputs: number;
}

/** What a run carries across continue-as-new to keep measuring. */
export interface ThroughputState {
  /** Index-phase milliseconds of the runs before this one. */
  indexMs: number;
  /** The newest samples, oldest first (at most THROUGHPUT_WINDOW_SAMPLES). */
  samples: ThroughputSample[];
}

export interface Rates {
  sourcesPerSecond: number;
  documentsPerSecond: number;
  chunksPerSecond: number;
  /** Texts sent to the embedder per second (achieved, all batches in flight together). */
  embeddedInputsPerSecond: number;
}

export interface ReindexThroughput extends Rates {
  /** Index-phase time so far, all runs of the chain together. */
  elapsedMs: number;
  /** Workflow time of the measurement (the rates and ETA are as of then). */
  asOf: string;
  /** Chunks the indexed sources have in the target so far. */
  chunks: number;
  /**
   * Embedder speed per batch: inputs per second of embedding time the batches measured
   * (counters.embedMs). Achieved throughput is about this times the batches embedding at
   * once; absent before anything was embedded.
   */
  embeddedInputsPerEmbedSecond?: number;
  /** Rates over the last samples (up to THROUGHPUT_WINDOW_SAMPLES), when they span some time. */
  recent?: Rates & { windowMs: number };
  /**
   * Time left in the index phase at the recent rate (else the average), from the sources
   * listed at start; absent when that is unknown (nothing done yet, or the listing grew
   * past its count). The phases after indexing (HNSW build, verify, swap) are not in it.
   */
  eta?: { remainingSources: number; remainingMs: number; at: string; basis: 'recent' | 'average' };
}

export function emptyThroughputState(): ThroughputState {
  return { indexMs: 0, samples: [] };
}

/** Adds a sample; one taken at the same index time replaces the last (batches folded together). */
export function pushThroughputSample(
  samples: ThroughputSample[],
  sample: ThroughputSample,
): ThroughputSample[] {
  const last = samples[samples.length - 1];
  const kept = last && last.indexMs >= sample.indexMs ? samples.slice(0, -1) : samples;
  return [...kept, sample].slice(-THROUGHPUT_WINDOW_SAMPLES);
}

const perSecond = (amount: number, ms: number) => (ms > 0 ? round3((amount * 1000) / ms) : 0);
const round3 = (x: number) => Math.round(x * 1000) / 1000;

function ratesBetween(from: ThroughputSample, to: ThroughputSample): Rates {
  const ms = to.indexMs - from.indexMs;
  return {
    sourcesPerSecond: perSecond(to.sources - from.sources, ms),
    documentsPerSecond: perSecond(to.documents - from.documents, ms),
    chunksPerSecond: perSecond(to.chunks - from.chunks, ms),
    embeddedInputsPerSecond: perSecond(to.embeddedInputs - from.embeddedInputs, ms),
  };
}

/** Rates and ETA from the latest sample (the totals now) and the window before it. */
export function reindexThroughput(input: {
  now: number;
  samples: ThroughputSample[];
  sourcesListed?: number;
  embedMs: number;
}): ReindexThroughput | undefined {
  const latest = input.samples[input.samples.length - 1];
  if (!latest) return undefined;
  const origin: ThroughputSample = { indexMs: 0, sources: 0, documents: 0, chunks: 0, embeddedInputs: 0 };
  const average = ratesBetween(origin, latest);
  const oldest = input.samples[0] as ThroughputSample;
  const windowMs = latest.indexMs - oldest.indexMs;
  const recent = windowMs > 0 ? { ...ratesBetween(oldest, latest), windowMs } : undefined;
  const throughput: ReindexThroughput = {
    elapsedMs: latest.indexMs,
    asOf: new Date(input.now).toISOString(),
    chunks: latest.chunks,
    ...average,
  };
  if (input.embedMs > 0 && latest.embeddedInputs > 0)
    throughput.embeddedInputsPerEmbedSecond = perSecond(latest.embeddedInputs, input.embedMs);
  if (recent) throughput.recent = recent;
  const remainingSources = (input.sourcesListed ?? 0) - latest.sources;
  const basis = recent && recent.sourcesPerSecond > 0 ? 'recent' : 'average';
  const rate = basis === 'recent' ? (recent as Rates).sourcesPerSecond : average.sourcesPerSecond;
  if (input.sourcesListed !== undefined && remainingSources >= 0 && rate > 0) {
    const remainingMs = Math.round((remainingSources * 1000) / rate);
    throughput.eta = {
      remainingSources,
      remainingMs,
      at: new Date(input.now + remainingMs).toISOString(),
      basis,
    };
  }
  return throughput;
}

/** "12.5/s", "0.25/s", "1.2k/s": a rate for one line of text. */
export function formatRate(perSecondValue: number): string {
  if (perSecondValue >= 10_000) return `${(perSecondValue / 1000).toFixed(0)}k/s`;
  if (perSecondValue >= 1000) return `${(perSecondValue / 1000).toFixed(1)}k/s`;
  if (perSecondValue >= 10) return `${perSecondValue.toFixed(0)}/s`;
  if (perSecondValue >= 1) return `${perSecondValue.toFixed(1)}/s`;
  return `${perSecondValue.toFixed(2)}/s`;
}

/** "45 s", "12m05s", "3h07m": a remaining time for one line of text. */
export function formatEta(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

/**
 * One line: "now 12/s docs, 36/s chunks, 40/s embedding inputs (15/s per batch while
 * embedding), ETA 3m20s (index phase)"; `average` gives the rates over the whole phase.
 */
export function formatThroughput(t: ReindexThroughput, basis: 'recent' | 'average' = 'recent'): string {
  const recent = basis === 'recent' ? t.recent : undefined;
  const now = recent ?? t;
  const perBatch =
    t.embeddedInputsPerEmbedSecond !== undefined
      ? ` (${formatRate(t.embeddedInputsPerEmbedSecond)} per batch while embedding)`
      : '';
  const eta =
    t.eta && t.eta.remainingSources > 0 ? `, ETA ${formatEta(t.eta.remainingMs)} (index phase)` : '';
  return `${recent ? 'now' : 'average'} ${formatRate(now.documentsPerSecond)} docs, ${formatRate(now.chunksPerSecond)} chunks, ${formatRate(now.embeddedInputsPerSecond)} embedding inputs${perBatch}${eta}`;
}

/**
 * The Temporal UI's "current details" of a re-index (Markdown): phase, progress and, while
 * indexing, the rates and ETA. Set by the workflow whenever its status changes.
 */
export function formatReindexDetails(status: ReindexStatus): string {
  const lines = [
    `**${status.table}**: ${status.outcome}, phase **${status.phase}** (${status.progress.percent}%)`,
  ];
  lines.push(status.progress.message);
  if (status.phase === 'index' && status.outcome === 'running') {
    const inFlight =
      status.batchesInFlight !== undefined ? `, ${status.batchesInFlight} batches in flight` : '';
    lines.push(`sources ${status.sourcesDone}/${status.sourcesListed ?? '?'}${inFlight}`);
  }
  if (status.throughput)
    lines.push(formatThroughput(status.throughput, status.outcome === 'running' ? 'recent' : 'average'));
  if (status.reason) lines.push(`reason: ${status.reason}`);
  return lines.join('\n\n');
}
