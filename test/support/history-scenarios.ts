import type { Client, WorkflowHandle, WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { KnowledgeActivities } from '../../activities/knowledge.js';
import type { LoadTestActivities } from '../../activities/loadtest.js';
import type { CanaryReleaseSpecInput } from '../../src/domain/canary.js';
import type { DecisionGate } from '../../src/domain/control.js';
import { emptyCounters, type ReindexCounters, type ReindexPlan } from '../../src/domain/knowledge.js';
import type { PromotionSpecInput } from '../../src/domain/promotion-spec.js';
import {
  abortUpdate,
  approveSignal,
  approveUpdate,
  pauseUpdate,
  rejectUpdate,
  resumeUpdate,
  setTrafficStepUpdate,
  TASK_QUEUES,
} from '../../workflows/definitions.js';
import { canaryRelease, loadTest, promoteModel, reindexKnowledgeBase } from '../../workflows/index.js';
import { FakeActivities, type FakeOptions, forwardingActivities } from './fake-activities.js';
import { waitForStatus } from './pipeline-status.js';

// The paths whose histories are kept as golden histories (test/fixtures/histories/): one
// scenario per workflow and ending, each run to its end on a Temporal server with scripted
// activities (no cluster, no model, no database). scripts/record-histories.ts records them
// on the dev server; the replay tier (test/replay/) replays the recorded files against the
// current workflow code, and runs a few of them live to replay the client's history objects.
//
// A workflow that gains a path gains a scenario here; its history is recorded with
// `npx tsx scripts/record-histories.ts --only <name>` and committed next to the old ones.

export type WorkflowName = 'promoteModel' | 'canaryRelease' | 'reindexKnowledgeBase' | 'loadTest';

export interface ScenarioContext {
  client: Client;
  /** Makes `fake` answer every promotion/serving activity from now on. */
  use(fake: FakeActivities): FakeActivities;
  /** Workflow id for this scenario (unique per recording). */
  workflowId: string;
}

export interface Scenario {
  /** File stem of the golden history: "<workflow>.<ending>". */
  name: string;
  workflowType: WorkflowName;
  /** How the run ends, in words (the manifest says it). */
  ending: string;
  /** Starts the workflow, drives it to its end, returns its handle (first run). */
  run(ctx: ScenarioContext): Promise<WorkflowHandleWithFirstExecutionRunId>;
}

const promotionSpec = (overrides: Partial<PromotionSpecInput> = {}): PromotionSpecInput => ({
  model: 'qwen/Qwen-7B-Chat',
  requestedBy: 'golden-history',
  ...overrides,
});
const noApprovals = { approvals: { beforeCanary: false, beforePromote: false } };

const canarySpec = (overrides: Partial<CanaryReleaseSpecInput> = {}): CanaryReleaseSpecInput => ({
  serving: { namespace: 'llm-prod', name: 'qwen-7b-chat' },
  storageUri: 's3://models/qwen/Qwen-7B-Chat/v2/awq',
  requestedBy: 'golden-history',
  ...overrides,
});

/**
 * Starts `workflow` with `input` on the default task queue under the scenario's workflow id;
 * with `fake`, that fake answers the promotion/serving activities from now on.
 */
async function start<I>(
  ctx: ScenarioContext,
  workflow: (input: I) => Promise<unknown>,
  input: I,
  fake?: FakeActivities,
) {
  if (fake) ctx.use(fake);
  return ctx.client.workflow.start(workflow, {
    args: [input],
    taskQueue: TASK_QUEUES.default,
    workflowId: ctx.workflowId,
  });
}

async function atGate(handle: WorkflowHandle, gate: DecisionGate): Promise<void> {
  await waitForStatus(handle, (s) => s.pendingDecision?.gate === gate, `the ${gate} gate`);
}

async function approveAt(handle: WorkflowHandle, gate: DecisionGate): Promise<void> {
  await atGate(handle, gate);
  await handle.executeUpdate(approveUpdate, { args: [{ gate, by: 'golden' }] });
}

/** Waits for the end of the run (any ending: the history is what counts). */
async function settle<H extends WorkflowHandle>(handle: H): Promise<H> {
  await handle.result().catch(() => undefined);
  return handle;
}

interface PromotionRun {
  /** The workflow's input; promotionSpec() when absent. */
  spec?: unknown;
  /** How the scripted activities behave (a fresh FakeActivities per run). */
  fake?: FakeOptions;
  /** What happens between the start and the end (approvals, updates, a cancel). */
  drive?: (handle: WorkflowHandle, fake: FakeActivities) => Promise<void>;
}

/** A promoteModel scenario: start, drive, wait for its end. */
function promotion(ending: string, name: string, run: PromotionRun = {}): Scenario {
  return {
    name: `promote-model.${name}`,
    workflowType: 'promoteModel',
    ending,
    async run(ctx) {
      const fake = new FakeActivities(run.fake);
      const handle = await start(ctx, promoteModel, run.spec ?? promotionSpec(), fake);
      await run.drive?.(handle, fake);
      return settle(handle);
    },
  };
}

/** Sources in the scripted knowledge base. */
export const FAKE_KNOWLEDGE_SOURCES = 5;

const beforePromoteOnly = promotionSpec({ approvals: { beforeCanary: false, beforePromote: true } });

/** canaryRelease scenarios: name, ending, how the scripted activities behave. */
const canaryRuns: Array<[name: string, ending: string, fake: FakeOptions]> = [
  ['promoted', 'promoted, unattended', {}],
  ['rolled-back', 'rolled back: the canary analysis failed at 25 %', { verdicts: ['pass', 'fail'] }],
];

export const SCENARIOS: Scenario[] = [
  promotion('promoted, both approval gates passed by update', 'promoted', {
    drive: async (handle) => {
      await approveAt(handle, 'before-canary');
      await approveAt(handle, 'before-promote');
    },
  }),
  promotion('promoted, both approval gates passed by signal (the Temporal UI path)', 'promoted-by-signal', {
    drive: async (handle) => {
      for (const gate of ['before-canary', 'before-promote'] as const) {
        await atGate(handle, gate);
        await handle.signal(approveSignal, { gate, by: 'golden' });
      }
    },
  }),
  promotion('rolled back: the canary analysis failed at 25 %', 'rolled-back-on-analysis', {
    spec: promotionSpec(noApprovals),
    fake: { verdicts: ['pass', 'fail'] },
  }),
  promotion('aborted by update at the before-promote gate (canary at 100 %), compensated', 'aborted', {
    spec: beforePromoteOnly,
    drive: async (handle) => {
      await atGate(handle, 'before-promote');
      await handle.executeUpdate(abortUpdate, { args: [{ by: 'golden', reason: 'golden history' }] });
    },
  }),
  promotion('rejected by update at the before-canary gate', 'rejected', {
    drive: async (handle) => {
      await atGate(handle, 'before-canary');
      await handle.executeUpdate(rejectUpdate, {
        args: [{ gate: 'before-canary', by: 'golden', comment: 'not this week' }],
      });
    },
  }),
  promotion('the before-canary gate timed out (1 s), compensated', 'approval-timed-out', {
    spec: promotionSpec({ approvals: { beforeCanary: true, beforePromote: true, timeoutSeconds: 1 } }),
  }),
  promotion(
    'an inconclusive canary analysis at 10 %, approved by a human, then promoted',
    'inconclusive-then-approved',
    {
      spec: promotionSpec(noApprovals),
      fake: { verdicts: ['inconclusive'] },
      drive: (handle) => approveAt(handle, 'inconclusive-analysis'),
    },
  ),
  promotion(
    'an inconclusive quality gate, approved by a human, then promoted',
    'quality-gate-inconclusive-approved',
    {
      spec: promotionSpec(noApprovals),
      fake: { qualityInterval: [0.6, -0.4, 1.6] },
      drive: (handle) => approveAt(handle, 'inconclusive-quality-gate'),
    },
  ),
  promotion('the quality gate failed (2.5 % drop), compensated', 'quality-gate-failed', {
    spec: promotionSpec(noApprovals),
    fake: { qualityDropPct: 2.5 },
  }),
  promotion(
    'the safety gate failed (7.5 % of normal prompts refused), validation copy deleted',
    'safety-gate-failed',
    {
      spec: promotionSpec(noApprovals),
      fake: { safety: { shouldRefuse: [40, 40], normal: [3, 40] } },
    },
  ),
  promotion(
    'paused during the 10 % step, told to jump to 50 %, resumed, promoted',
    'paused-resumed-step-jump',
    {
      spec: promotionSpec(noApprovals),
      fake: { block: ['shiftCanaryTraffic:10'] },
      drive: async (handle, fake) => {
        await fake.callStarted('shiftCanaryTraffic:10');
        await handle.executeUpdate(pauseUpdate, { args: [{ by: 'golden' }] });
        await handle.executeUpdate(setTrafficStepUpdate, { args: [{ percent: 50, by: 'golden' }] });
        fake.releaseCall('shiftCanaryTraffic:10');
        await waitForStatus(handle, (s) => s.paused && s.analyses >= 1, 'the pause before the next step');
        await handle.executeUpdate(resumeUpdate, { args: [{ by: 'golden' }] });
      },
    },
  ),
  promotion('cancelled from the client at the before-promote gate, compensated', 'cancelled', {
    spec: beforePromoteOnly,
    drive: async (handle) => {
      await atGate(handle, 'before-promote');
      await handle.cancel();
    },
  }),
  promotion('refused at start: InvalidInput naming the bad fields', 'bad-input', {
    spec: { model: 'not a model', quantization: { bits: 3 }, surprise: true },
  }),
  ...canaryRuns.map(
    ([name, ending, fake]): Scenario => ({
      name: `canary-release.${name}`,
      workflowType: 'canaryRelease',
      ending,
      run: async (ctx) => settle(await start(ctx, canaryRelease, canarySpec(), new FakeActivities(fake))),
    }),
  ),
  ...(['full', 'incremental'] as const).map(
    (mode): Scenario => ({
      name: `reindex-knowledge-base.${mode}`,
      workflowType: 'reindexKnowledgeBase',
      ending: `${mode} re-index of ${FAKE_KNOWLEDGE_SOURCES} sources, continued as new after each batch`,
      run: async (ctx) =>
        settle(
          await start(ctx, reindexKnowledgeBase, {
            request: {
              source: { kind: 'directory', path: '/srv/knowledge' },
              mode,
              batch: { sourcesPerActivity: 2, sourcesPerCommit: 1, batchesPerRun: 1 },
              requestedBy: 'golden-history',
            },
          }),
        ),
    }),
  ),
  ...([true, false] as const).map(
    (passed): Scenario => ({
      name: `load-test.${passed ? 'passed' : 'slo-missed'}`,
      workflowType: 'loadTest',
      ending: passed ? 'every SLO met' : 'an SLO missed: LoadTestSloMissed',
      run: async (ctx) =>
        settle(
          await start(ctx, loadTest, {
            request: {
              url: 'http://127.0.0.1:8000',
              mode: 'closed',
              concurrency: 2,
              maxRequests: 20,
              maxTokens: 8,
              slo: passed ? { p99E2eMs: 10_000 } : { p99E2eMs: 1 },
            },
          }),
        ),
    }),
  ),
];

// ---- scripted knowledge and load-test activities --------------------------------------

const counters = (over: Partial<ReindexCounters>): ReindexCounters => ({ ...emptyCounters(), ...over });

/** A knowledge base of FAKE_KNOWLEDGE_SOURCES sources, each one chunk, that always indexes cleanly. */
export function fakeKnowledgeActivities(): KnowledgeActivities {
  const planFor = (mode: 'full' | 'incremental', runId: string, table: string): ReindexPlan => ({
    runId,
    table,
    mode,
    target: mode === 'full' ? 'shadow' : 'live',
    generation: 'g2',
    fingerprint: 'f1',
    embeddingModel: 'lexical',
    embedderLabel: 'lexical (fake)',
    sourceDescription: 'directory /srv/knowledge',
    sourcesListed: FAKE_KNOWLEDGE_SOURCES,
    rowsBefore: mode === 'full' ? 0 : FAKE_KNOWLEDGE_SOURCES,
    pgvectorVersion: '0.8.0',
    embeddedDatabase: true,
  });
  return {
    beginKnowledgeReindex: async (input) =>
      planFor(
        input.request.mode === 'full' ? 'full' : 'incremental',
        input.runId,
        input.request.table ?? 'qwen_knowledge',
      ),
    indexKnowledgeSourceBatch: async (input) => {
      const per = input.request.batch?.sourcesPerActivity ?? 200;
      const next = Math.min(input.position + per, input.plan.sourcesListed);
      const n = next - input.position;
      return {
        nextPosition: next,
        done: next >= input.plan.sourcesListed,
        counters: counters({ documents: n, documentsChanged: n, chunksAdded: n, embeddingCalls: 1 }),
        failures: [],
        chunksInBatch: n,
      };
    },
    removeDeletedKnowledgeSources: async () => counters({ documentsRemoved: 1, chunksRemoved: 1 }),
    buildKnowledgeVectorIndex: async () => ({
      ms: 12,
      maintenanceWorkMemMb: 64,
      rows: FAKE_KNOWLEDGE_SOURCES,
    }),
    verifyKnowledgeShadow: async (input) => ({
      rows: input.expectedRows,
      expectedRows: input.expectedRows,
      recallAt10: 1,
      minRecallAt10: 0.95,
      probes: 5,
      duplicates: 0,
      passed: true,
    }),
    swapKnowledgeGeneration: async () => ({ attempts: 1, replacedPrevious: false }),
    finishKnowledgeReindex: async () => ({ rowsAfter: FAKE_KNOWLEDGE_SOURCES }),
    abortKnowledgeReindex: async () => undefined,
  } as KnowledgeActivities;
}

type EndpointLoadTestResult = Awaited<ReturnType<LoadTestActivities['runEndpointLoadTest']>>;

/** A load test that measures p99 E2E 120 ms and judges it against the request's p99E2eMs. */
export function fakeLoadTestActivities(): Pick<LoadTestActivities, 'runEndpointLoadTest'> {
  return {
    runEndpointLoadTest: async (input): Promise<EndpointLoadTestResult> => {
      const limit = (input.request.slo as { p99E2eMs?: number } | undefined)?.p99E2eMs ?? 10_000;
      const met = 120 <= limit;
      const prefix = `file:///store/${input.reportPrefix}`;
      return {
        passed: met,
        reasons: met ? [] : [`p99 E2E 120 ms misses SLO <= ${limit} ms`],
        summary: { requests: 20, ok: 20, errorRatePct: 0, p99E2eMs: 120 },
        reportUri: `${prefix}/report.html`,
        reportJsonUri: `${prefix}/report.json`,
        reportHtmlUri: `${prefix}/report.html`,
        description: '20 requests, closed loop, concurrency 2 (scripted)',
        slo: [
          {
            key: 'p99E2eMs',
            label: 'p99 E2E',
            comparator: '<=',
            threshold: limit,
            observed: 120,
            met,
            message: met
              ? `p99 E2E 120 ms meets SLO <= ${limit} ms`
              : `p99 E2E 120 ms misses SLO <= ${limit} ms`,
          },
        ],
        warnings: [],
      };
    },
  };
}

// ---- workers and recording ------------------------------------------------------------

/**
 * Workers on every task queue for the scenarios: the workflow bundle and spec resolution on
 * the default queue, scripted activities everywhere else.
 */
export async function startScenarioWorkers(
  env: TestWorkflowEnvironment,
  bundle: WorkflowBundleWithSourceMap,
  current: () => FakeActivities,
): Promise<{ stop(): Promise<void> }> {
  const { promotion, serving } = forwardingActivities(current);
  const connection = env.nativeConnection;
  const workers = await Promise.all([
    Worker.create({
      connection,
      taskQueue: TASK_QUEUES.default,
      workflowBundle: bundle,
      activities: promotion,
    }),
    Worker.create({ connection, taskQueue: TASK_QUEUES.gpuJobs, activities: promotion }),
    Worker.create({
      connection,
      taskQueue: TASK_QUEUES.cluster,
      activities: { ...serving, ...fakeLoadTestActivities() },
    }),
    Worker.create({ connection, taskQueue: TASK_QUEUES.knowledge, activities: fakeKnowledgeActivities() }),
  ]);
  const running = workers.map((w) => w.run());
  return {
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
    },
  };
}

export interface RecordedRun {
  workflowId: string;
  runId: string;
  history: temporal.api.history.v1.IHistory;
}

/** Every run of a workflow execution chain, first to last (following continue-as-new). */
export async function fetchRunChain(
  client: Client,
  handle: WorkflowHandleWithFirstExecutionRunId,
): Promise<RecordedRun[]> {
  const runs: RecordedRun[] = [];
  let runId: string | undefined = handle.firstExecutionRunId;
  while (runId) {
    const history: temporal.api.history.v1.IHistory = await client.workflow
      .getHandle(handle.workflowId, runId)
      .fetchHistory();
    runs.push({ workflowId: handle.workflowId, runId, history });
    const last: temporal.api.history.v1.IHistoryEvent | undefined =
      history.events?.[history.events.length - 1];
    runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}
