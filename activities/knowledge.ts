import { Context } from '@temporalio/activity';
import type { AuditLog } from '../src/audit/audit-log.js';
import {
  type BatchResult,
  type ListingCursor,
  type ReindexCounters,
  type ReindexPlan,
  type ReindexReport,
  type ReindexRequest,
  type ReindexRequestInput,
  reindexRequestSchema,
  type SourceFailure,
  type VerificationResult,
} from '../src/domain/knowledge.js';
import { objectKeySegment } from '../src/domain/names.js';
import { InputValidationError, parseInput } from '../src/domain/validation.js';
import { type KnowledgeAdapters, type KnowledgeWiring, knowledgeAdapters } from '../src/knowledge/compose.js';
import type { Logger } from '../src/observability/logger.js';
import { recordKnowledgeReindexSucceeded } from '../src/observability/pipeline-metrics.js';
import type { ArtifactStore } from '../src/storage/port.js';
import { type ActivityHooks, heartbeating, mapped } from './support.js';

// Thin Temporal adapters over KnowledgeIndexer, one per re-index phase. They heartbeat
// (long SQL and listing included), resume a batch from its last committed checkpoint, and
// map errors: bad input, a base held by another run, a lost lease, an unsupported server
// and an embedding server that rejects the request are not retried; the rest are. They
// construct no adapter: the stores, sources and embedder come in (dependency injection),
// built by the composition code (src/knowledge/compose.ts, from workers/compose.ts).

/**
 * The knowledge adapters: built ones (`knowledge`, what the worker's composition root
 * passes), or a pool and an embedder to build them over (src/knowledge/compose.ts). With
 * the latter, `directoryRoots` are the directories a "directory" source may be under
 * (config.confinement.knowledgeRoots: the path comes from workflow input, so the worker
 * confines it); empty: directories refused.
 */
export type KnowledgeActivityAdapters =
  | { knowledge: KnowledgeAdapters }
  | (Pick<KnowledgeWiring, 'pool' | 'embedder'> & { directoryRoots: readonly string[] });

export type KnowledgeActivityDeps = KnowledgeActivityAdapters & {
  logger: Logger;
  /** The artifact store reports are written to (and, with a pool, object-store sources read from). */
  artifactStore?: ArtifactStore;
  /** Records every change to a knowledge base (swap, finished re-index). */
  audit?: AuditLog;
  /** How often long phases heartbeat while waiting on the database, ms. */
  heartbeatIntervalMs?: number;
};

export interface PhaseInput {
  request: ReindexRequestInput;
  plan: ReindexPlan;
}

interface BatchCheckpoint {
  startPosition: number;
  position: number;
  /** The last key handled: the retry lists from it (absent in checkpoints written before cursors). */
  lastKey?: string;
  counters: ReindexCounters;
  failures: SourceFailure[];
  chunksInBatch: number;
}

/** The batch's listing cursor, checked at the edge: bad input is not retried. */
function parseCursor(cursor: unknown, position: unknown): ListingCursor | undefined {
  const problems: Array<{ path: string; message: string }> = [];
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0)
    problems.push({ path: 'position', message: 'must be a non-negative integer' });
  if (cursor !== undefined && cursor !== null) {
    const c = cursor as Partial<ListingCursor>;
    if (typeof c !== 'object') problems.push({ path: 'cursor', message: 'must be an object' });
    else {
      if (typeof c.startAfter !== 'string' || c.startAfter === '')
        problems.push({ path: 'cursor.startAfter', message: 'must be a non-empty source key' });
      if (
        typeof c.position !== 'number' ||
        !Number.isSafeInteger(c.position) ||
        c.position < 0 ||
        (typeof position === 'number' && c.position > position)
      )
        problems.push({ path: 'cursor.position', message: 'must be an integer between 0 and position' });
    }
  }
  if (problems.length > 0) throw new InputValidationError('knowledge batch', problems);
  if (cursor === undefined || cursor === null) return undefined;
  const { position: at, startAfter } = cursor as ListingCursor;
  return { position: at, startAfter };
}

function parseRequest(input: unknown): ReindexRequest {
  return parseInput('knowledge re-index request', reindexRequestSchema, input);
}

export function createKnowledgeActivities(deps: KnowledgeActivityDeps) {
  const heartbeatEvery = deps.heartbeatIntervalMs ?? 5_000;
  const knowledge =
    'knowledge' in deps
      ? deps.knowledge
      : knowledgeAdapters({
          pool: deps.pool,
          embedder: deps.embedder,
          logger: deps.logger,
          artifactStore: deps.artifactStore,
          directoryRoots: deps.directoryRoots,
        });
  const indexerFor = (request: ReindexRequest) => knowledge.indexer(request);

  /**
   * Keeps the run's lease on the base renewed while an activity runs (every third of its
   * TTL): the lease is heartbeat-renewed, so a run terminated mid-phase stops renewing and
   * frees the base one TTL later (90 s by default) instead of holding it for hours.
   */
  function renewLease(request: ReindexRequest, runId: string): () => void {
    return knowledge.store(request.table).keepLeaseRenewed(
      { runId, ttlSeconds: request.leaseTtlSeconds },
      {
        onLost: (err) =>
          deps.logger.warn({ runId, table: request.table }, `${err.message}; its next write will fail`),
      },
    );
  }

  /**
   * Runs `fn` for one phase in the activity kit's heartbeat (activities/support.ts), renewing
   * the run's lease meanwhile (a CREATE INDEX can take many minutes).
   */
  function phase<T, Checkpoint = never>(
    name: string,
    fn: (hooks: ActivityHooks<Checkpoint>) => Promise<T>,
    lease?: { request: ReindexRequest; runId: string },
  ): Promise<T> {
    return heartbeating<T, Checkpoint>(
      async (hooks) => {
        hooks.onProgress(name);
        const stopRenewing = lease ? renewLease(lease.request, lease.runId) : undefined;
        try {
          return await fn(hooks);
        } finally {
          stopRenewing?.();
        }
      },
      { intervalMs: heartbeatEvery },
    );
  }

  return {
    async beginKnowledgeReindex(input: {
      request: ReindexRequestInput;
      runId: string;
    }): Promise<ReindexPlan> {
      const request = await mapped(async () => parseRequest(input.request));
      return phase('prepare', () => indexerFor(request).begin(request, input.runId), {
        request,
        runId: input.runId,
      });
    },

    /**
     * One batch: `position` is where its slice of the listing starts; `cursor` (optional:
     * inputs recorded before cursors have none) lets it list from the last key before it.
     */
    async indexKnowledgeSourceBatch(
      input: PhaseInput & { position: number; cursor?: ListingCursor },
    ): Promise<BatchResult> {
      const request = await mapped(async () => parseRequest(input.request));
      const cursor = await mapped(async () => parseCursor(input.cursor, input.position));
      return phase<BatchResult, BatchCheckpoint>(
        'index',
        async (hooks) => {
          // A retry after a crash resumes at the last committed group of this same batch.
          const resume = hooks.resumeFrom?.startPosition === input.position ? hooks.resumeFrom : undefined;
          const position = resume?.position ?? input.position;
          const resumeCursor: ListingCursor | undefined =
            resume?.lastKey !== undefined
              ? { position: resume.position, startAfter: resume.lastKey }
              : cursor;
          const sourcesLeft = request.batch.sourcesPerActivity - (position - input.position);
          const result = await indexerFor(request).indexBatch(input.plan, request, Math.max(1, sourcesLeft), {
            position,
            // A checkpoint without a key (older worker) at a later position: list from the start.
            cursor: resumeCursor && resumeCursor.position <= position ? resumeCursor : undefined,
            resumed: resume
              ? { counters: resume.counters, failures: resume.failures, chunksInBatch: resume.chunksInBatch }
              : undefined,
            signal: hooks.signal,
            onCheckpoint: (checkpoint) => hooks.checkpoint({ startPosition: input.position, ...checkpoint }),
          });
          if (resume)
            deps.logger.info(
              { from: resume.position, batchStart: input.position },
              'resumed a knowledge batch after a retry',
            );
          return result;
        },
        { request, runId: input.plan.runId },
      );
    },

    async removeDeletedKnowledgeSources(input: PhaseInput) {
      const request = await mapped(async () => parseRequest(input.request));
      return phase('sweep', () => indexerFor(request).removeDeletedSources(input.plan, request), {
        request,
        runId: input.plan.runId,
      });
    },

    async buildKnowledgeVectorIndex(input: PhaseInput) {
      const request = await mapped(async () => parseRequest(input.request));
      return phase('build-index', () => indexerFor(request).buildIndex(input.plan, request), {
        request,
        runId: input.plan.runId,
      });
    },

    async verifyKnowledgeShadow(input: PhaseInput & { expectedRows: number }): Promise<VerificationResult> {
      const request = await mapped(async () => parseRequest(input.request));
      return phase('verify', () => indexerFor(request).verify(input.plan, request, input.expectedRows), {
        request,
        runId: input.plan.runId,
      });
    },

    async swapKnowledgeGeneration(input: PhaseInput) {
      const request = await mapped(async () => parseRequest(input.request));
      return phase(
        'swap',
        async () => {
          const swapped = await indexerFor(request).swap(input.plan, request);
          await deps.audit?.record({
            actor: request.requestedBy,
            action: 'knowledge.swap-generation',
            workflowId: Context.current().info.workflowExecution?.workflowId,
            target: `knowledge ${input.plan.table}`,
            details: { runId: input.plan.runId, generation: input.plan.generation, ...swapped },
          });
          return swapped;
        },
        { request, runId: input.plan.runId },
      );
    },

    /** Releases the base and stores the report (reports/knowledge/<run>.json) when an artifact store is set. */
    async finishKnowledgeReindex(
      input: PhaseInput & { report: ReindexReport },
    ): Promise<{ rowsAfter: number; reportUri?: string }> {
      const request = await mapped(async () => parseRequest(input.request));
      return phase('finish', async () => {
        const rowsAfter = await indexerFor(request).finish(input.plan);
        let reportUri: string | undefined;
        if (deps.artifactStore) {
          const key = `reports/knowledge/${input.plan.table}/${objectKeySegment(input.plan.runId)}.json`;
          await deps.artifactStore.putJson(key, { ...input.report, rowsAfter });
          reportUri = deps.artifactStore.uri(key);
        }
        await deps.audit?.record({
          actor: request.requestedBy,
          action: 'knowledge.reindex',
          workflowId: Context.current().info.workflowExecution?.workflowId,
          target: `knowledge ${input.plan.table}`,
          details: {
            runId: input.plan.runId,
            mode: input.plan.mode,
            source: input.plan.sourceDescription,
            embeddingModel: input.plan.embeddingModel,
            rowsBefore: input.plan.rowsBefore,
            rowsAfter,
            chunksAdded: input.report.counters.chunksAdded,
            chunksRemoved: input.report.counters.chunksRemoved,
            reportUri,
          },
        });
        // The base is live and released: the re-index succeeded (the freshness alert reads this).
        recordKnowledgeReindexSucceeded(input.plan.table, rowsAfter);
        return { rowsAfter, reportUri };
      });
    },

    async abortKnowledgeReindex(input: {
      request: ReindexRequestInput;
      plan: Pick<ReindexPlan, 'runId' | 'mode'>;
    }): Promise<void> {
      const request = await mapped(async () => parseRequest(input.request));
      return phase('abort', () => indexerFor(request).abort(input.plan));
    },
  };
}

export type KnowledgeActivities = ReturnType<typeof createKnowledgeActivities>;
