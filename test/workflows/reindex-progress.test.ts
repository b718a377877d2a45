import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KnowledgeActivities } from '../../activities/knowledge.js';
import { specActivities } from '../../activities/spec.js';
import {
  emptyCounters,
  type ReindexReport,
  type ReindexStatus,
  THROUGHPUT_WINDOW_SAMPLES,
  type ThroughputState,
} from '../../src/domain/knowledge.js';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { reindexStatusQuery, TASK_QUEUES } from '../../workflows/definitions.js';
import type { ReindexWorkflowInput } from '../../workflows/reindex-knowledge-base.js';
import { reindexKnowledgeBase } from '../../workflows/reindex-knowledge-base.js';
import { fakeKnowledgeActivities } from '../support/history-scenarios.js';
import { stopAll } from '../support/processes.js';
import { createTimeSkippingEnv } from '../support/temporal.js';

// Progress a person can read (issue 14 item 6): the status query's rates (sources,
// documents, chunks, embedding inputs per second) and ETA, computed in the workflow from
// the scripted batches' results and workflow time, continued across continue-as-new with
// bounded carried state, and the Temporal UI's current details. No wall-clock assertion:
// every figure is checked against the totals and the elapsed time the status reports.

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await createTimeSkippingEnv();
});

afterAll(async () => {
  await env?.teardown();
  await stopAll();
});

const SOURCES = 30;
const PER_BATCH = 2;
const CHUNKS_PER_SOURCE = 3;
const INPUTS_PER_CHUNK = 2;
const EMBED_MS_PER_SOURCE = 7;

/** Batches of PER_BATCH sources: 3 chunks and 6 embedding inputs a source, 7 ms of embedding a source. */
function scriptedKnowledge(): KnowledgeActivities {
  const fake = fakeKnowledgeActivities();
  return {
    ...fake,
    beginKnowledgeReindex: async (input) => ({
      ...(await fake.beginKnowledgeReindex(input)),
      sourcesListed: SOURCES,
    }),
    indexKnowledgeSourceBatch: async (input) => {
      // Later batches finish first (out of order), and each takes some time.
      await sleep(30 + 2 * (SOURCES - input.position));
      const end = Math.min(input.position + PER_BATCH, SOURCES);
      const n = end - input.position;
      return {
        nextPosition: end,
        done: end >= SOURCES,
        counters: {
          ...emptyCounters(),
          documents: n,
          documentsChanged: n,
          chunksAdded: CHUNKS_PER_SOURCE * n,
          embeddingCalls: 1,
          embeddedInputs: INPUTS_PER_CHUNK * CHUNKS_PER_SOURCE * n,
          embedMs: EMBED_MS_PER_SOURCE * n,
        },
        failures: [],
        chunksInBatch: CHUNKS_PER_SOURCE * n,
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
}

const rate = (amount: number, ms: number) => Math.round((amount * 1_000_000) / ms) / 1000;

/** Every figure of a status taken while indexing agrees with its own totals and time. */
function expectConsistent(status: ReindexStatus) {
  const t = status.throughput;
  if (!t) throw new Error('no throughput');
  expect(t.elapsedMs).toBeGreaterThan(0);
  expect(t.sourcesPerSecond).toBe(rate(status.sourcesDone, t.elapsedMs));
  expect(t.documentsPerSecond).toBe(rate(status.counters.documents, t.elapsedMs));
  // Chunks are the chunks the finished batches have in the target.
  expect(t.chunks).toBe(CHUNKS_PER_SOURCE * status.counters.documents);
  expect(t.chunksPerSecond).toBe(rate(t.chunks, t.elapsedMs));
  expect(t.embeddedInputsPerSecond).toBe(rate(status.counters.embeddedInputs, t.elapsedMs));
  // The embedder's own speed comes from the durations the batches report, not the clock.
  expect(t.embeddedInputsPerEmbedSecond).toBe(
    rate(INPUTS_PER_CHUNK * CHUNKS_PER_SOURCE * 1000, EMBED_MS_PER_SOURCE * 1000),
  );
  if (t.recent) {
    expect(t.recent.windowMs).toBeGreaterThan(0);
    expect(t.recent.windowMs).toBeLessThanOrEqual(t.elapsedMs);
  }
  // ETA: the sources left at the rate it names.
  const eta = t.eta;
  if (!eta) throw new Error('no ETA');
  expect(eta.remainingSources).toBe(SOURCES - status.sourcesDone);
  const basisRate = eta.basis === 'recent' ? t.recent?.sourcesPerSecond : t.sourcesPerSecond;
  expect(basisRate).toBeGreaterThan(0);
  expect(eta.remainingMs).toBe(Math.round((eta.remainingSources * 1000) / (basisRate as number)));
  expect(Date.parse(eta.at) - Date.parse(t.asOf)).toBe(eta.remainingMs);
}

describe('reindexKnowledgeBase progress', () => {
  it('reports rates and an ETA consistent with the batches, across continue-as-new, in bounded state', async () => {
    const workflowWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUES.default,
      workflowsPath: path.join(repoRoot, 'workflows', 'reindex-knowledge-base.ts'),
      activities: specActivities,
    });
    const activityWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUES.knowledge,
      activities: scriptedKnowledge(),
    });
    const workflowId = 'reindex-progress';
    const { report, runs } = await workflowWorker.runUntil(
      activityWorker.runUntil(async () => {
        const handle = await env.client.workflow.start(reindexKnowledgeBase, {
          args: [
            {
              request: {
                source: { kind: 'directory', path: '/srv/knowledge' },
                mode: 'full',
                // 15 batches, 3 at a time, 4 per run: four runs.
                batch: {
                  sourcesPerActivity: PER_BATCH,
                  sourcesPerCommit: 1,
                  parallelism: 3,
                  batchesPerRun: 4,
                },
                requestedBy: 'test',
              },
            },
          ],
          taskQueue: TASK_QUEUES.default,
          workflowId,
        });
        const report = (await handle.result()) as ReindexReport;
        // Every run of the chain, queried after the fact: a run that continued as new answers
        // with its status at its end (mid-index), the last one with the final status. (On
        // the time-skipping server a query that meets a run as it continues as new can hang,
        // so the runs are not queried while they run.)
        const runs: Array<{
          status: ReindexStatus;
          details: string;
          history: temporal.api.history.v1.IHistory;
        }> = [];
        let runId: string | undefined = handle.firstExecutionRunId;
        while (runId) {
          const run = env.client.workflow.getHandle(workflowId, runId);
          const history: temporal.api.history.v1.IHistory = await run.fetchHistory();
          const status = await run.query(reindexStatusQuery);
          const meta = (await run.query('__temporal_workflow_metadata')) as { currentDetails?: string };
          runs.push({ status, details: meta.currentDetails ?? '', history });
          const next: string | null | undefined = history.events?.find(
            (e) => e.workflowExecutionContinuedAsNewEventAttributes,
          )?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId;
          runId = next ?? undefined;
        }
        return { report, runs };
      }),
    );
    expect(report.outcome).toBe('succeeded');

    expect(runs).toHaveLength(4);
    const continued = runs.slice(0, -1).map((r) => r.status);
    const status = (runs.at(-1) as (typeof runs)[number]).status;

    // Each run that continued as new stopped mid-index: its rates and ETA agree with its totals.
    for (const s of continued) {
      expect(s.phase).toBe('index');
      expect(s.sourcesDone).toBeLessThan(SOURCES);
      expectConsistent(s);
    }
    // Index time goes on across the runs of the chain: never back, and never restarted.
    const elapsed = runs.map((r) => r.status.throughput?.elapsedMs ?? 0);
    expect(elapsed).toEqual([...elapsed].sort((a, b) => a - b));
    expect(continued.map((s) => s.sourcesDone)).toEqual([8, 16, 24]);

    // At the end: the whole chain's totals over the whole chain's index time, which is
    // exactly the index phase's time the report sums over the runs.
    const t = status.throughput;
    expect(t).toBeDefined();
    expect(t?.elapsedMs).toBe(report.phaseMs.index);
    expect(t?.sourcesPerSecond).toBe(rate(SOURCES, report.phaseMs.index as number));
    expect(t?.chunksPerSecond).toBe(rate(CHUNKS_PER_SOURCE * SOURCES, report.phaseMs.index as number));
    expect(t?.eta?.remainingSources).toBe(0);
    expect(report.throughput).toEqual(t);

    // What the first run carried: index time and a window of at most 8 samples (bounded).
    const continuedEvent = runs[0]?.history.events?.find(
      (e) => e.workflowExecutionContinuedAsNewEventAttributes,
    );
    const payload = continuedEvent?.workflowExecutionContinuedAsNewEventAttributes?.input?.payloads?.[0];
    const carried = JSON.parse(Buffer.from(payload?.data as Uint8Array).toString()) as ReindexWorkflowInput;
    const state = carried.carried?.throughput as ThroughputState;
    expect(state.indexMs).toBeGreaterThan(0);
    expect(state.samples.length).toBeGreaterThan(0);
    expect(state.samples.length).toBeLessThanOrEqual(THROUGHPUT_WINDOW_SAMPLES);
    expect(state.samples.at(-1)?.sources).toBe(carried.carried?.position);
    expect(state.samples.at(-1)?.indexMs).toBe(state.indexMs);

    // The Temporal UI's current details: rates and ETA while indexing, the outcome at the end.
    for (const { details } of runs.slice(0, -1)) {
      expect(details).toContain('phase **index**');
      expect(details).toMatch(/now [0-9.k]+\/s docs, [0-9.k]+\/s chunks, [0-9.k]+\/s embedding inputs/);
      expect(details).toContain('ETA');
    }
    const finalDetails = runs.at(-1)?.details ?? '';
    expect(finalDetails).toContain('succeeded');
    expect(finalDetails).toMatch(/average [0-9.k]+\/s docs/);
  });
});
