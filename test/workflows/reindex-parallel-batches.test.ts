import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  bundleWorkflowCode,
  DefaultLogger,
  Worker,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KnowledgeActivities } from '../../activities/knowledge.js';
import { specActivities } from '../../activities/spec.js';
import {
  emptyCounters,
  type ReindexReport,
  type ReindexRequestInput,
  type SourceFailure,
} from '../../src/domain/knowledge.js';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { reindexStatusQuery, TASK_QUEUES } from '../../workflows/definitions.js';
import { PARALLEL_BATCHES_PATCH, reindexKnowledgeBase } from '../../workflows/reindex-knowledge-base.js';
import { patchIdsOf, replayAll, variantDir } from '../support/golden-histories.js';
import { fakeKnowledgeActivities } from '../support/history-scenarios.js';
import { stopAll } from '../support/processes.js';
import { createTimeSkippingEnv } from '../support/temporal.js';

// The batch window of reindexKnowledgeBase (batch.parallelism) on the time-skipping server
// with scripted batch activities that finish in reverse order: never more than
// `parallelism` in flight, every slice of the listing indexed exactly once, counters and
// failures exact (failures in listing order) across out-of-order completion and
// continue-as-new.

let env: TestWorkflowEnvironment;
const dirs: string[] = [];

beforeAll(async () => {
  env = await createTimeSkippingEnv();
});

afterAll(async () => {
  await env?.teardown();
  await stopAll();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const GUARD = 'if (patched(PARALLEL_BATCHES_PATCH)) {';

/** workflows/ and src/domain/ copied, with the batch window's patch guard replaced by `replacement`. */
async function variant(name: string, replacement: string): Promise<string> {
  const root = await variantDir(name);
  dirs.push(root);
  await cp(path.join(repoRoot, 'workflows'), path.join(root, 'workflows'), { recursive: true });
  await cp(path.join(repoRoot, 'src', 'domain'), path.join(root, 'src', 'domain'), { recursive: true });
  const file = path.join(root, 'workflows', 'reindex-knowledge-base.ts');
  const text = await readFile(file, 'utf8');
  expect(text).toContain(GUARD);
  await writeFile(file, text.replace(GUARD, replacement));
  return file;
}

const CHUNKS_PER_SOURCE = 3;

/** A listing of `sources` sources; every fifth one fails; later batches finish first. */
function scriptedKnowledge(sources: number, failAt?: number) {
  const calls: number[] = [];
  let aborted = 0;
  const finished: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const fake = fakeKnowledgeActivities();
  const activities: KnowledgeActivities = {
    ...fake,
    beginKnowledgeReindex: async (input) => ({
      ...(await fake.beginKnowledgeReindex(input)),
      sourcesListed: sources,
    }),
    indexKnowledgeSourceBatch: async (input) => {
      const per = input.request.batch?.sourcesPerActivity ?? 200;
      calls.push(input.position);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (input.position === failAt) {
          await sleep(20);
          throw ApplicationFailure.nonRetryable('batch exploded', 'KnowledgeBatchBroken');
        }
        // Reverse order: the batch nearest the start of the listing takes the longest.
        await sleep((failAt === undefined ? 40 : 400) + 4 * Math.max(0, sources - input.position));
      } finally {
        inFlight--;
      }
      finished.push(input.position);
      const end = Math.min(input.position + per, sources);
      const n = Math.max(0, end - input.position);
      const failures: SourceFailure[] = [];
      for (let i = input.position; i < end; i++)
        if (i % 5 === 0) failures.push({ source: `doc-${i}`, reason: 'unreadable' });
      return {
        nextPosition: input.position + n,
        done: input.position + per >= sources,
        counters: {
          ...emptyCounters(),
          documents: n,
          documentsChanged: n - failures.length,
          documentsFailed: failures.length,
          chunksAdded: CHUNKS_PER_SOURCE * (n - failures.length),
          embeddingCalls: 1,
        },
        failures,
        chunksInBatch: CHUNKS_PER_SOURCE * (n - failures.length),
      };
    },
    verifyKnowledgeShadow: async (input) => ({
      rows: input.expectedRows,
      expectedRows: input.expectedRows,
      recallAt10: 1,
      minRecallAt10: 0.95,
      probes: 5,
      duplicates: 0,
      passed: true,
    }),
  };
  activities.abortKnowledgeReindex = async () => {
    aborted++;
  };
  return { activities, calls, finished, maxInFlight: () => maxInFlight, aborted: () => aborted };
}

async function reindex(
  workflowId: string,
  sources: number,
  batch: NonNullable<ReindexRequestInput['batch']>,
  workflowBundle?: WorkflowBundleWithSourceMap,
  failAt?: number,
) {
  const knowledge = scriptedKnowledge(sources, failAt);
  const workflowWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUES.default,
    ...(workflowBundle
      ? { workflowBundle }
      : { workflowsPath: path.join(repoRoot, 'workflows', 'reindex-knowledge-base.ts') }),
    activities: specActivities,
  });
  const activityWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUES.knowledge,
    activities: knowledge.activities,
  });
  const result = await workflowWorker.runUntil(
    activityWorker.runUntil(async () => {
      const handle = await env.client.workflow.start(reindexKnowledgeBase, {
        args: [
          {
            request: {
              source: { kind: 'directory', path: '/srv/knowledge' },
              mode: 'full',
              batch: { sourcesPerCommit: 1, ...batch },
              requestedBy: 'test',
            },
          },
        ],
        taskQueue: TASK_QUEUES.default,
        workflowId,
      });
      let error: unknown;
      // A run told to fail has no report: its error comes back instead.
      const report = (await handle.result().catch((err: unknown) => {
        if (failAt === undefined) throw err;
        error = err;
      })) as ReindexReport;
      const described = await env.client.workflow.getHandle(workflowId).describe();
      const status = await env.client.workflow.getHandle(workflowId).query(reindexStatusQuery);
      const firstRun = await env.client.workflow
        .getHandle(workflowId, handle.firstExecutionRunId)
        .fetchHistory();
      return {
        report,
        error,
        continuedAsNew: described.runId !== handle.firstExecutionRunId,
        status,
        firstRun,
      };
    }),
  );
  return { ...result, knowledge };
}

const failingSources = (sources: number) =>
  Array.from({ length: sources }, (_, i) => i)
    .filter((i) => i % 5 === 0)
    .map((i) => `doc-${i}`);

describe('reindexKnowledgeBase batch window', () => {
  it('keeps at most batch.parallelism batches in flight, exact counters across out-of-order completion and continue-as-new', async () => {
    const sources = 41;
    // 21 batches of 2, 4 at a time, 6 per run: four runs, each ending with batches in flight.
    const { report, continuedAsNew, status, knowledge, firstRun } = await reindex(
      'reindex-parallel',
      sources,
      {
        sourcesPerActivity: 2,
        parallelism: 4,
        batchesPerRun: 6,
      },
    );
    expect(report.outcome).toBe('succeeded');
    expect(knowledge.maxInFlight()).toBe(4);
    // They did finish out of order.
    expect(knowledge.finished).not.toEqual([...knowledge.finished].sort((a, b) => a - b));
    // Every slice exactly once: continue-as-new redid nothing and skipped nothing.
    expect([...knowledge.calls].sort((a, b) => a - b)).toEqual(Array.from({ length: 21 }, (_, i) => 2 * i));
    expect(continuedAsNew).toBe(true);
    const failed = failingSources(sources);
    expect(report.counters.documents).toBe(sources);
    expect(report.counters.documentsFailed).toBe(failed.length);
    expect(report.counters.documentsChanged).toBe(sources - failed.length);
    expect(report.counters.embeddingCalls).toBe(21);
    // In listing order, as the sequential loop reported them.
    expect(report.failures.map((f) => f.source)).toEqual(failed);
    expect(report.verification?.expectedRows).toBe(CHUNKS_PER_SOURCE * (sources - failed.length));
    expect(status.sourcesDone).toBe(sources);
    expect(status.batchesInFlight).toBeUndefined();
    expect(patchIdsOf(firstRun)).toContain(PARALLEL_BATCHES_PATCH);
  });

  it('runs one batch at a time with parallelism 1', async () => {
    const { report, knowledge } = await reindex('reindex-parallel-1', 9, {
      sourcesPerActivity: 2,
      parallelism: 1,
      batchesPerRun: 2,
    });
    expect(report.outcome).toBe('succeeded');
    expect(knowledge.maxInFlight()).toBe(1);
    expect(knowledge.calls).toEqual([0, 2, 4, 6, 8]);
    expect(report.counters.documents).toBe(9);
    expect(report.failures.map((f) => f.source)).toEqual(failingSources(9));
  });

  it("a run of the sequential loop (before the window) replays on today's code; without the guard it would not", async () => {
    // The code as it was: one batch at a time, no patch recorded.
    const before = await bundleWorkflowCode({
      workflowsPath: await variant('before-parallel-batches', 'if (false) {'),
      logger: new DefaultLogger('ERROR'),
    });
    const { report, knowledge, firstRun } = await reindex(
      'reindex-sequential',
      9,
      { sourcesPerActivity: 2, parallelism: 3, batchesPerRun: 10 },
      before,
    );
    expect(report.outcome).toBe('succeeded');
    expect(knowledge.maxInFlight()).toBe(1);
    expect(patchIdsOf(firstRun)).not.toContain(PARALLEL_BATCHES_PATCH);
    const history = { workflowId: 'reindex-sequential', history: firstRun };

    const [today] = await replayAll(
      { workflowsPath: path.join(repoRoot, 'workflows', 'reindex-knowledge-base.ts') },
      [history],
    );
    expect(today?.error).toBeUndefined();
    // The window without its guard starts three batches where the old run started one.
    const [unguarded] = await replayAll(
      { workflowsPath: await variant('parallel-batches-unguarded', 'if (true) {') },
      [history],
    );
    expect(unguarded?.error).toBeInstanceOf(DeterminismViolationError);
  });

  it('fails with the first failed batch, leaves the others and starts none, and aborts the run once', async () => {
    const { error, status, knowledge } = await reindex(
      'reindex-parallel-fails',
      20,
      { sourcesPerActivity: 2, parallelism: 3 },
      undefined,
      0,
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect(JSON.stringify((error as WorkflowFailedError).cause?.message)).toContain('batch exploded');
    expect([...knowledge.calls].sort((a, b) => a - b)).toEqual([0, 2, 4]);
    expect(knowledge.aborted()).toBe(1);
    expect(status.outcome).toBe('failed');
    expect(status.sourcesDone).toBe(0);
  });
});
