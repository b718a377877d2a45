import { Context } from '@temporalio/activity';
import type pg from 'pg';
import type { AuditLog } from '../src/audit/audit-log.js';
import {
  type BatchResult,
  emptyCounters,
  type ReindexCounters,
  type ReindexPlan,
  type ReindexReport,
  type ReindexRequest,
  type ReindexRequestInput,
  reindexRequestSchema,
  type SourceFailure,
  type VerificationResult,
} from '../src/domain/knowledge.js';
import { parseInput } from '../src/domain/validation.js';
import type { Embedder } from '../src/knowledge/embedders/port.js';
import { KnowledgeIndexer } from '../src/knowledge/indexer.js';
import { createKnowledgeSource } from '../src/knowledge/sources/index.js';
import { PgVectorStore } from '../src/knowledge/store/pgvector-store.js';
import type { Logger } from '../src/observability/logger.js';
import type { ArtifactStore } from '../src/storage/port.js';
import { toTemporalFailure } from './support.js';

// Thin Temporal adapters over KnowledgeIndexer, one per re-index phase. They heartbeat
// (long SQL and listing included), resume a batch from its last committed checkpoint, and
// map errors: bad input, a base held by another run, a lost lease, an unsupported server
// and an embedding server that rejects the request are not retried; the rest are.

export interface KnowledgeActivityDeps {
  /** The knowledge database pool (one per worker process); created on first use. */
  pool: () => pg.Pool;
  embedder: Embedder;
  logger: Logger;
  /** The artifact store: object-store sources are read from it, reports are written to it. */
  store?: ArtifactStore;
  /** Records every change to a knowledge base (swap, finished re-index). */
  audit?: AuditLog;
  /** How often long phases heartbeat while waiting on the database, ms. */
  heartbeatIntervalMs?: number;
  /**
   * Directories a "directory" source may be under (config.confinement.knowledgeRoots): the
   * path comes from workflow input, so the worker confines it. Empty: directories refused.
   */
  directoryRoots: readonly string[];
}

export interface PhaseInput {
  request: ReindexRequestInput;
  plan: ReindexPlan;
}

interface BatchCheckpoint {
  startPosition: number;
  position: number;
  counters: ReindexCounters;
  failures: SourceFailure[];
  chunksInBatch: number;
}

function parseRequest(input: unknown): ReindexRequest {
  return parseInput('knowledge re-index request', reindexRequestSchema, input);
}

export function createKnowledgeActivities(deps: KnowledgeActivityDeps) {
  const heartbeatEvery = deps.heartbeatIntervalMs ?? 5_000;

  const indexerFor = (request: ReindexRequest) =>
    new KnowledgeIndexer({
      store: new PgVectorStore(deps.pool(), { table: request.table, logger: deps.logger }),
      source: createKnowledgeSource(request.source, deps.store, { directoryRoots: deps.directoryRoots }),
      embedder: deps.embedder,
      logger: deps.logger,
    });

  /**
   * Keeps the run's lease on the base renewed while an activity runs (every third of its
   * TTL): the lease is heartbeat-renewed, so a run terminated mid-phase stops renewing and
   * frees the base one TTL later (90 s by default) instead of holding it for hours.
   */
  function renewLease(request: ReindexRequest, runId: string): () => void {
    const store = new PgVectorStore(deps.pool(), { table: request.table, logger: deps.logger });
    return store.keepLeaseRenewed(
      { runId, ttlSeconds: request.leaseTtlSeconds },
      {
        onLost: (err) =>
          deps.logger.warn({ runId, table: request.table }, `${err.message}; its next write will fail`),
      },
    );
  }

  /** Runs `fn`, heartbeating and renewing the lease meanwhile (a CREATE INDEX can take many minutes). */
  async function withHeartbeats<T>(
    phase: string,
    fn: () => Promise<T>,
    lease?: { request: ReindexRequest; runId: string },
  ): Promise<T> {
    const context = Context.current();
    const timer = setInterval(() => context.heartbeat({ phase }), heartbeatEvery);
    const stopRenewing = lease ? renewLease(lease.request, lease.runId) : undefined;
    try {
      return await fn();
    } catch (err) {
      throw toTemporalFailure(err);
    } finally {
      clearInterval(timer);
      stopRenewing?.();
    }
  }

  return {
    async beginKnowledgeReindex(input: {
      request: ReindexRequestInput;
      runId: string;
    }): Promise<ReindexPlan> {
      const request = (() => {
        try {
          return parseRequest(input.request);
        } catch (err) {
          throw toTemporalFailure(err);
        }
      })();
      return withHeartbeats('prepare', () => indexerFor(request).begin(request, input.runId), {
        request,
        runId: input.runId,
      });
    },

    async indexKnowledgeSourceBatch(input: PhaseInput & { position: number }): Promise<BatchResult> {
      const request = parseRequest(input.request);
      const context = Context.current();
      // A retry after a crash resumes at the last committed group of this same batch.
      const previous = context.info.heartbeatDetails as BatchCheckpoint | undefined;
      const resume = previous?.startPosition === input.position ? previous : undefined;
      let last: BatchCheckpoint = resume ?? {
        startPosition: input.position,
        position: input.position,
        counters: emptyCounters(),
        failures: [],
        chunksInBatch: 0,
      };
      const timer = setInterval(() => context.heartbeat(last), heartbeatEvery);
      const stopRenewing = renewLease(request, input.plan.runId);
      try {
        const sourcesLeft = request.batch.sourcesPerActivity - (last.position - input.position);
        const result = await indexerFor(request).indexBatch(input.plan, request, Math.max(1, sourcesLeft), {
          position: last.position,
          resumed: resume
            ? { counters: resume.counters, failures: resume.failures, chunksInBatch: resume.chunksInBatch }
            : undefined,
          signal: context.cancellationSignal,
          onCheckpoint: (checkpoint) => {
            last = { startPosition: input.position, ...checkpoint };
            context.heartbeat(last);
          },
        });
        if (resume)
          deps.logger.info(
            { from: resume.position, batchStart: input.position },
            'resumed a knowledge batch after a retry',
          );
        return result;
      } catch (err) {
        throw toTemporalFailure(err);
      } finally {
        clearInterval(timer);
        stopRenewing();
      }
    },

    async removeDeletedKnowledgeSources(input: PhaseInput) {
      const request = parseRequest(input.request);
      return withHeartbeats('sweep', () => indexerFor(request).removeDeletedSources(input.plan, request), {
        request,
        runId: input.plan.runId,
      });
    },

    async buildKnowledgeVectorIndex(input: PhaseInput) {
      const request = parseRequest(input.request);
      return withHeartbeats('build-index', () => indexerFor(request).buildIndex(input.plan, request), {
        request,
        runId: input.plan.runId,
      });
    },

    async verifyKnowledgeShadow(input: PhaseInput & { expectedRows: number }): Promise<VerificationResult> {
      const request = parseRequest(input.request);
      return withHeartbeats(
        'verify',
        () => indexerFor(request).verify(input.plan, request, input.expectedRows),
        {
          request,
          runId: input.plan.runId,
        },
      );
    },

    async swapKnowledgeGeneration(input: PhaseInput) {
      const request = parseRequest(input.request);
      return withHeartbeats(
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

    /** Releases the base and stores the report (reports/knowledge/<run>.json) when a store is set. */
    async finishKnowledgeReindex(
      input: PhaseInput & { report: ReindexReport },
    ): Promise<{ rowsAfter: number; reportUri?: string }> {
      const request = parseRequest(input.request);
      return withHeartbeats('finish', async () => {
        const rowsAfter = await indexerFor(request).finish(input.plan);
        let reportUri: string | undefined;
        if (deps.store) {
          const key = `reports/knowledge/${input.plan.table}/${input.plan.runId.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`;
          await deps.store.putJson(key, { ...input.report, rowsAfter });
          reportUri = deps.store.uri(key);
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
        return { rowsAfter, reportUri };
      });
    },

    async abortKnowledgeReindex(input: {
      request: ReindexRequestInput;
      plan: Pick<ReindexPlan, 'runId' | 'mode'>;
    }): Promise<void> {
      const request = parseRequest(input.request);
      return withHeartbeats('abort', () => indexerFor(request).abort(input.plan));
    },
  };
}

export type KnowledgeActivities = ReturnType<typeof createKnowledgeActivities>;
