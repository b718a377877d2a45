// reindexKnowledgeBase: prepare -> index (batches) -> sweep deleted sources (incremental)
// or build HNSW -> verify -> swap (full) -> finish, one activity per phase, progress in
// the `status` query. A corpus of any size keeps history bounded: each batch activity
// handles `batch.sourcesPerActivity` sources, up to `batch.parallelism` of them run at once,
// and the run continues as new after `batch.batchesPerRun` batches, carrying its plan, the
// position below which every batch finished, and the counters of those batches.

import {
  ApplicationFailure,
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  patched,
  setCurrentDetails,
  setHandler,
  setWorkflowOptions,
  workflowInfo,
} from '@temporalio/workflow';
import {
  addCounters,
  appendFailures,
  type BatchResult,
  DEFAULT_BATCH_PARALLELISM,
  emptyCounters,
  formatReindexDetails,
  fullModeCounters,
  type ListingCursor,
  pushThroughputSample,
  type ReindexCounters,
  type ReindexPhase,
  type ReindexPlan,
  type ReindexReport,
  type ReindexRequest,
  type ReindexRequestInput,
  type ReindexStatus,
  reindexProgress,
  reindexRequestSchema,
  reindexThroughput,
  type SourceFailure,
  type ThroughputState,
} from '../src/domain/knowledge.js';
import { parseInput } from '../src/domain/validation.js';
import { knowledgeActivities } from './activity-options.js';
import { FAILURE_TYPES, reindexStatusQuery } from './definitions.js';
import { classifyFailure } from './failures.js';
import { runBatchWindow } from './reindex-batches.js';
import { rawText, resolveSpecOnce } from './resolve-spec.js';
import { versioningBehavior } from './versioning.js';
import { publishOutcome, publishStage, publishStart } from './visibility.js';

/**
 * Runs that took this patch index with the batch window (up to `batch.parallelism` batch
 * activities in flight); runs recorded before it replay the sequential loop.
 */
export const PARALLEL_BATCHES_PATCH = 'reindex-parallel-batches';

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
  /** The request as the first run resolved it (absent in runs continued before it was carried). */
  request?: ReindexRequest;
  /**
   * Index-phase time and the recent-rate window, for the rates and ETA in `status` (absent
   * in runs continued before they were measured: those start from phaseMs.index).
   */
  throughput?: ThroughputState;
  /** The listing cursor at `position` (absent in runs continued before cursors: list from the start). */
  cursor?: ListingCursor;
}

export interface ReindexWorkflowInput {
  request: ReindexRequestInput;
  /** Set only by continue-as-new. */
  carried?: ReindexCarriedState;
}

function parseReindexRequest(input: unknown): ReindexRequest {
  return parseInput('knowledge re-index request', reindexRequestSchema, input);
}

// Worker Versioning: the nightly re-index moves to the current worker version at its next
// workflow task (and every continue-as-new starts on it); its golden histories prove each
// version can replay the last one's runs.
setWorkflowOptions(versioningBehavior('AUTO_UPGRADE'), reindexKnowledgeBase);

export async function reindexKnowledgeBase(input: ReindexWorkflowInput): Promise<ReindexReport> {
  const carried = input?.carried;
  let counters = carried?.counters ?? emptyCounters();
  let failures = carried?.failures ?? [];
  let plan = carried?.plan;
  const status: ReindexStatus = {
    kind: 'knowledge-reindex',
    runId: plan?.runId,
    table: rawText(input?.request, 'table'),
    mode: plan?.mode,
    phase: carried ? 'index' : 'prepare',
    progress: { percent: 0, message: carried ? 'continuing' : 'starting' },
    sourcesListed: plan?.sourcesListed,
    sourcesDone: carried?.position ?? 0,
    counters,
    failures,
    outcome: 'running',
  };
  // Before the request is resolved: the status query answers from the first moment.
  setHandler(reindexStatusQuery, () => status);
  // Rates and ETA (src/domain/knowledge.ts, reindexThroughput): from the totals of committed
  // batches and workflow time. Date.now() here is the workflow task's time, recorded in
  // history, so replay computes the same; none of this issues a command (the status query
  // and the UI's current details are not in history).
  const carriedThroughput: ThroughputState = carried?.throughput ?? {
    indexMs: carried?.phaseMs?.index ?? 0,
    samples: [],
  };
  let samples = carriedThroughput.samples;
  let indexStartedAt: number | undefined;
  const indexMs = () =>
    carriedThroughput.indexMs + (indexStartedAt === undefined ? 0 : Date.now() - indexStartedAt);
  const measure = () => {
    status.throughput = reindexThroughput({
      now: Date.now(),
      samples,
      sourcesListed: status.sourcesListed,
      embedMs: counters.embedMs,
    });
  };
  const showDetails = () => setCurrentDetails(formatReindexDetails(status));
  if (carried) measure();

  // Resolved once and recorded in history: a later change of a default never reaches this
  // run. A run continued as new works with the request the first run resolved (runs
  // continued before the request was carried parse theirs, as they did).
  const request: ReindexRequest = carried
    ? (carried.request ?? parseReindexRequest(input.request))
    : await resolveSpecOnce('resolveReindexRequest', input?.request, parseReindexRequest, (reason) => {
        status.outcome = 'failed';
        status.reason = reason;
      });
  status.table = request.table;
  const { phases: acts, cleanup } = knowledgeActivities(request);
  const phaseMs: Partial<Record<ReindexPhase, number>> = { ...(carried?.phaseMs ?? {}) };

  const enter = (phase: ReindexPhase, message: string) => {
    status.phase = phase;
    status.progress = { percent: reindexProgress(phase, status.sourcesDone, status.sourcesListed), message };
    publishStage(phase);
    showDetails();
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
  if (!carried) publishStart({ service: `knowledge/${request.table}` });
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
    ...(status.throughput ? { throughput: status.throughput } : {}),
    ...rest,
  });

  let expectedRows = carried?.expectedRows ?? 0;
  let position = carried?.position ?? 0;
  let cursor = carried?.cursor?.position === position ? carried.cursor : undefined;
  const extra: Partial<ReindexReport> = {};
  try {
    if (!plan) {
      enter('prepare', 'checking the database and taking the knowledge base');
      const runId = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
      plan = await timed('prepare', () => acts.beginKnowledgeReindex({ request, runId }));
      status.runId = plan.runId;
      status.mode = plan.mode;
      status.sourcesListed = plan.sourcesListed;
    }
    const activePlan = plan;
    indexStartedAt = Date.now();
    enter('index', `indexing ${activePlan.sourcesListed} sources (${activePlan.mode})`);
    const continueWith = (state: { position: number; cursor?: ListingCursor }) =>
      continueAsNew<typeof reindexKnowledgeBase>({
        request,
        carried: {
          plan: activePlan,
          position: state.position,
          counters,
          failures,
          expectedRows,
          startedAt,
          phaseMs,
          runs: (carried?.runs ?? 1) + 1,
          request,
          throughput: { indexMs: indexMs(), samples },
          ...(state.cursor?.position === state.position ? { cursor: state.cursor } : {}),
        },
      });
    const commitBatch = (batch: BatchResult, committed: number) => {
      counters = addCounters(counters, batch.counters);
      failures = appendFailures(failures, batch.failures);
      expectedRows += batch.chunksInBatch;
      position = committed;
      status.counters = counters;
      status.failures = failures;
      status.sourcesDone = position;
      samples = pushThroughputSample(samples, {
        indexMs: indexMs(),
        sources: position,
        documents: counters.documents,
        chunks: expectedRows,
        embeddedInputs: counters.embeddedInputs,
      });
      measure();
      enter('index', `${position}/${activePlan.sourcesListed} sources, ${counters.chunksAdded} chunks added`);
    };
    if (patched(PARALLEL_BATCHES_PATCH)) {
      // Up to batch.parallelism batch activities in flight, folded in listing order; the
      // window drains before continue-as-new (workflows/reindex-batches.ts).
      const batches = new CancellationScope();
      const window = await timed('index', () =>
        runBatchWindow({
          start: position,
          sourcesPerBatch: request.batch.sourcesPerActivity,
          // A request carried from a run before the field existed has none.
          parallelism: request.batch.parallelism ?? DEFAULT_BATCH_PARALLELISM,
          maxBatches: request.batch.batchesPerRun,
          listed: activePlan.sourcesListed,
          startCursor: cursor,
          runBatch: (at, from) =>
            batches.run(() =>
              acts.indexKnowledgeSourceBatch({
                request,
                plan: activePlan,
                position: at,
                ...(from ? { cursor: from } : {}),
              }),
            ),
          stopStarting: () => workflowInfo().continueAsNewSuggested,
          onCommit: commitBatch,
          onInFlight: (n) => {
            status.batchesInFlight = n;
            showDetails();
          },
          // One batch failed for good: the others stop (their writes would meet an aborted run).
          onFailure: () => batches.cancel(),
        }).finally(() => {
          status.batchesInFlight = undefined;
        }),
      );
      if (!window.done) await continueWith({ position: window.position, cursor: window.cursor });
    } else {
      // The sequential loop of runs recorded before the batch window (golden histories).
      let batchesThisRun = 0;
      for (;;) {
        const batch = await timed('index', () =>
          acts.indexKnowledgeSourceBatch({
            request,
            plan: activePlan,
            position,
            ...(cursor?.position === position ? { cursor } : {}),
          }),
        );
        batchesThisRun++;
        commitBatch(batch, batch.nextPosition);
        if (batch.lastKey !== undefined) cursor = { position: batch.nextPosition, startAfter: batch.lastKey };
        if (batch.done) break;
        if (batchesThisRun >= request.batch.batchesPerRun || workflowInfo().continueAsNewSuggested)
          await continueWith({ position, cursor });
      }
    }
    if (activePlan.mode === 'incremental') {
      enter('sweep', 'removing the chunks of deleted sources');
      const swept = await timed('sweep', () =>
        acts.removeDeletedKnowledgeSources({ request, plan: activePlan }),
      );
      counters = addCounters(counters, swept);
      status.counters = counters;
    } else {
      enter('build-index', `building the HNSW index over ${expectedRows} chunks`);
      extra.indexBuild = await timed('build-index', () =>
        acts.buildKnowledgeVectorIndex({ request, plan: activePlan }),
      );
      enter('verify', 'checking row count and recall@10 against exact search');
      const verification = await timed('verify', () =>
        acts.verifyKnowledgeShadow({ request, plan: activePlan, expectedRows }),
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
      extra.swap = await timed('swap', () => acts.swapKnowledgeGeneration({ request, plan: activePlan }));
    }
    enter('finish', 'releasing the knowledge base and writing the report');
    const draft = report('succeeded', extra);
    const finished = await timed('finish', () =>
      acts.finishKnowledgeReindex({ request, plan: activePlan, report: draft }),
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
    showDetails();
    publishOutcome('succeeded');
    return final;
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    const failedPlan = plan;
    if (failedPlan) {
      await CancellationScope.nonCancellable(() =>
        cleanup.abortKnowledgeReindex({
          request,
          plan: { runId: failedPlan.runId, mode: failedPlan.mode },
        }),
      ).catch(() => undefined);
    }
    // The same classification as the promotion pipelines: a cancellation stays one, a
    // typed failure keeps its type, and the reason keeps the whole cause chain.
    const classified = classifyFailure(err, undefined);
    status.outcome = 'failed';
    status.reason = classified.reason;
    status.report = report('failed', { ...extra, reason: status.reason });
    showDetails();
    publishOutcome('failed', { text: status.reason, summary: `failed in phase ${status.phase}` });
    if (err instanceof ApplicationFailure || isCancellation(err)) throw err;
    const failure = classified.failure as ApplicationFailure;
    throw ApplicationFailure.create({
      type: failure.type ?? FAILURE_TYPES.pipelineFailed,
      message: status.reason,
      nonRetryable: true,
      cause: err instanceof Error ? err : undefined,
      details: [status.report],
    });
  }
}
