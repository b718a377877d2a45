// reindexKnowledgeBase: prepare -> index (batches) -> sweep deleted sources (incremental)
// or build HNSW -> verify -> swap (full) -> finish, one activity per phase, progress in
// the `status` query. A corpus of any size keeps history bounded: each batch activity
// handles `batch.sourcesPerActivity` sources and the run continues as new after
// `batch.batchesPerRun` batches, carrying its plan, position and counters.

import {
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { KnowledgeActivities } from '../activities/knowledge.js';
import {
  addCounters,
  appendFailures,
  emptyCounters,
  fullModeCounters,
  type ReindexCounters,
  type ReindexPhase,
  type ReindexPlan,
  type ReindexReport,
  type ReindexRequest,
  type ReindexRequestInput,
  type ReindexStatus,
  reindexProgress,
  reindexRequestSchema,
  type SourceFailure,
} from '../src/domain/knowledge.js';
import { issuesFromZod } from '../src/domain/validation.js';
import { NON_RETRYABLE, QUEUE_WAIT_TIMEOUT } from './activity-options.js';
import { FAILURE_TYPES, reindexStatusQuery, SEARCH_ATTRIBUTES, TASK_QUEUES } from './definitions.js';
import { searchableReason } from './visibility.js';

/** What a run hands to the next one when it continues as new. */
export interface ReindexCarriedState {
  plan: ReindexPlan;
  position: number;
  counters: ReindexCounters;
  failures: SourceFailure[];
  expectedRows: number;
  startedAt: string;
  phaseMs: Partial<Record<ReindexPhase, number>>;
  /** Workflow runs so far (1 = no continue-as-new yet). */
  runs: number;
}

export interface ReindexWorkflowInput {
  request: ReindexRequestInput;
  /** Set only by continue-as-new. */
  carried?: ReindexCarriedState;
}

function activities(request: ReindexRequest) {
  const retry = {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1m',
    maximumAttempts: 10,
    nonRetryableErrorTypes: NON_RETRYABLE,
  };
  const heartbeatTimeout = `${request.heartbeatTimeoutSeconds}s`;
  const phases = proxyActivities<KnowledgeActivities>({
    taskQueue: TASK_QUEUES.knowledge,
    scheduleToStartTimeout: QUEUE_WAIT_TIMEOUT,
    startToCloseTimeout: '2h',
    heartbeatTimeout,
    retry,
  });
  // Clean-up must outlive a cancelled workflow and a flaky database.
  const cleanup = proxyActivities<Pick<KnowledgeActivities, 'abortKnowledgeReindex'>>({
    taskQueue: TASK_QUEUES.knowledge,
    scheduleToStartTimeout: QUEUE_WAIT_TIMEOUT,
    startToCloseTimeout: '10m',
    heartbeatTimeout,
    retry: { ...retry, maximumAttempts: 20 },
  });
  // Proxies have no own keys: hand them out as they are, never spread.
  return { phases, cleanup };
}

export async function reindexKnowledgeBase(input: ReindexWorkflowInput): Promise<ReindexReport> {
  const parsed = reindexRequestSchema.safeParse(input?.request);
  if (!parsed.success) {
    const issues = issuesFromZod(parsed.error);
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.invalidInput,
      message: `invalid knowledge re-index request: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
      nonRetryable: true,
      details: [issues],
    });
  }
  const request = parsed.data;
  const { phases: acts, cleanup } = activities(request);
  const carried = input.carried;
  const phaseMs: Partial<Record<ReindexPhase, number>> = { ...(carried?.phaseMs ?? {}) };
  let counters = carried?.counters ?? emptyCounters();
  let failures = carried?.failures ?? [];
  let plan = carried?.plan;
  const status: ReindexStatus = {
    kind: 'knowledge-reindex',
    runId: plan?.runId,
    table: request.table,
    mode: plan?.mode,
    phase: carried ? 'index' : 'prepare',
    progress: { percent: 0, message: carried ? 'continuing' : 'starting' },
    sourcesListed: plan?.sourcesListed,
    sourcesDone: carried?.position ?? 0,
    counters,
    failures,
    outcome: 'running',
  };
  setHandler(reindexStatusQuery, () => status);

  const enter = (phase: ReindexPhase, message: string) => {
    status.phase = phase;
    status.progress = { percent: reindexProgress(phase, status.sourcesDone, status.sourcesListed), message };
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.stage, value: phase }]);
  };
  const timed = async <T>(phase: ReindexPhase, fn: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await fn();
    } finally {
      phaseMs[phase] = (phaseMs[phase] ?? 0) + (Date.now() - started);
    }
  };

  const startedAt = carried?.startedAt ?? new Date(Date.now()).toISOString();
  if (!carried) {
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.service, value: `knowledge/${request.table}` },
      { key: SEARCH_ATTRIBUTES.outcome, value: 'running' },
    ]);
  }
  const report = (outcome: 'succeeded' | 'failed', rest: Partial<ReindexReport> = {}): ReindexReport => ({
    runId: plan?.runId ?? workflowInfo().runId,
    table: request.table,
    mode: plan?.mode ?? 'incremental',
    source: plan?.sourceDescription ?? JSON.stringify(request.source),
    embedder: plan?.embedderLabel ?? '',
    embeddingModel: plan?.embeddingModel ?? '',
    requestedBy: request.requestedBy,
    startedAt,
    finishedAt: new Date(Date.now()).toISOString(),
    outcome,
    counters,
    failures,
    rowsBefore: plan?.rowsBefore ?? 0,
    rowsAfter: plan?.rowsBefore ?? 0,
    phaseMs,
    ...rest,
  });

  let expectedRows = carried?.expectedRows ?? 0;
  let position = carried?.position ?? 0;
  const extra: Partial<ReindexReport> = {};
  try {
    if (!plan) {
      enter('prepare', 'checking the database and taking the knowledge base');
      const runId = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
      plan = await timed('prepare', () => acts.beginKnowledgeReindex({ request: input.request, runId }));
      status.runId = plan.runId;
      status.mode = plan.mode;
      status.sourcesListed = plan.sourcesListed;
    }
    const activePlan = plan;
    let batchesThisRun = 0;
    enter('index', `indexing ${activePlan.sourcesListed} sources (${activePlan.mode})`);
    for (;;) {
      const batch = await timed('index', () =>
        acts.indexKnowledgeSourceBatch({ request: input.request, plan: activePlan, position }),
      );
      counters = addCounters(counters, batch.counters);
      failures = appendFailures(failures, batch.failures);
      expectedRows += batch.chunksInBatch;
      position = batch.nextPosition;
      batchesThisRun++;
      status.counters = counters;
      status.failures = failures;
      status.sourcesDone = position;
      enter('index', `${position}/${activePlan.sourcesListed} sources, ${counters.chunksAdded} chunks added`);
      if (batch.done) break;
      if (batchesThisRun >= request.batch.batchesPerRun || workflowInfo().continueAsNewSuggested) {
        await continueAsNew<typeof reindexKnowledgeBase>({
          request: input.request,
          carried: {
            plan: activePlan,
            position,
            counters,
            failures,
            expectedRows,
            startedAt,
            phaseMs,
            runs: (carried?.runs ?? 1) + 1,
          },
        });
      }
    }
    if (activePlan.mode === 'incremental') {
      enter('sweep', 'removing the chunks of deleted sources');
      const swept = await timed('sweep', () =>
        acts.removeDeletedKnowledgeSources({ request: input.request, plan: activePlan }),
      );
      counters = addCounters(counters, swept);
      status.counters = counters;
    } else {
      enter('build-index', `building the HNSW index over ${expectedRows} chunks`);
      extra.indexBuild = await timed('build-index', () =>
        acts.buildKnowledgeVectorIndex({ request: input.request, plan: activePlan }),
      );
      enter('verify', 'checking row count and recall@10 against exact search');
      const verification = await timed('verify', () =>
        acts.verifyKnowledgeShadow({ request: input.request, plan: activePlan, expectedRows }),
      );
      extra.verification = verification;
      if (!verification.passed) {
        throw ApplicationFailure.create({
          type: FAILURE_TYPES.indexVerification,
          message: `the new generation was not swapped in: ${verification.reason}`,
          nonRetryable: true,
        });
      }
      enter('swap', 'swapping the new generation in');
      extra.swap = await timed('swap', () =>
        acts.swapKnowledgeGeneration({ request: input.request, plan: activePlan }),
      );
    }
    enter('finish', 'releasing the knowledge base and writing the report');
    const draft = report('succeeded', extra);
    const finished = await timed('finish', () =>
      acts.finishKnowledgeReindex({ request: input.request, plan: activePlan, report: draft }),
    );
    if (activePlan.mode === 'full')
      counters = fullModeCounters(counters, activePlan.rowsBefore, finished.rowsAfter);
    const final = report('succeeded', { ...extra, rowsAfter: finished.rowsAfter });
    status.outcome = 'succeeded';
    status.report = final;
    status.progress = {
      percent: 100,
      message: `done: ${final.rowsAfter} chunks (${counters.chunksAdded} added, ${counters.chunksRemoved} removed)`,
    };
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.outcome, value: 'succeeded' }]);
    return final;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    const reason = (err as Error)?.message ?? String(err);
    const failedPlan = plan;
    if (failedPlan) {
      await CancellationScope.nonCancellable(() =>
        cleanup.abortKnowledgeReindex({
          request: input.request,
          plan: { runId: failedPlan.runId, mode: failedPlan.mode },
        }),
      ).catch(() => undefined);
    }
    status.outcome = 'failed';
    status.reason = rootMessage(err) ?? reason;
    status.report = report('failed', { ...extra, reason: status.reason });
    upsertSearchAttributes([
      { key: SEARCH_ATTRIBUTES.outcome, value: 'failed' },
      {
        key: SEARCH_ATTRIBUTES.reason,
        value: searchableReason(status.reason, `failed in phase ${status.phase}`),
      },
    ]);
    if (err instanceof ApplicationFailure || isCancellation(err)) throw err;
    const type = failureType(err);
    throw ApplicationFailure.create({
      type,
      message: status.reason,
      nonRetryable: true,
      cause: err instanceof Error ? err : undefined,
      details: [status.report],
    });
  }
}

function rootMessage(err: unknown): string | undefined {
  let current = err as { cause?: unknown; message?: string } | undefined;
  while (current?.cause) current = current.cause as { cause?: unknown; message?: string };
  return current?.message;
}

function failureType(err: unknown): string {
  let current = err as { cause?: unknown; type?: string } | undefined;
  while (current) {
    if (current.type) return current.type;
    current = current.cause as { cause?: unknown; type?: string } | undefined;
  }
  return 'ReindexFailed';
}
