import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { specActivities } from '../../../activities/spec.js';
import type { ReindexReport, ReindexRequestInput } from '../../../src/domain/knowledge.js';
import { createKnowledgePool } from '../../../src/knowledge/store/pgvector-store.js';
import { nodeEntrypoint, repoRoot } from '../../../src/runtime/entrypoints.js';
import { TASK_QUEUES } from '../../../workflows/definitions.js';
import { reindexKnowledgeBase } from '../../../workflows/reindex-knowledge-base.js';
import { type RunningPglite, startPglite } from '../../support/pglite.js';
import { type ManagedProcess, startProcess, stopAll } from '../../support/processes.js';
import { createDevServerEnv } from '../../support/temporal.js';

// The parallel re-index builds the same table as the sequential one. The same corpus
// (a few hundred documents: many batches, continue-as-new in both) is indexed once with
// batch.parallelism 1 on one knowledge worker process, and once with parallelism 4 on two
// worker processes; then both tables are compared row for row by (source, chunk index,
// content hash, chunk id), with no duplicate. Full first, then incremental after the corpus
// changed (edited, deleted and new documents). Batches list from the cursor the previous
// batch left (the history's batch inputs carry it).

let env: TestWorkflowEnvironment;
let db: RunningPglite;
let pool: pg.Pool;
let corpus: string;
const DOCUMENTS = 240;
const SEQUENTIAL = 'kb_equiv_seq';
const PARALLEL = 'kb_equiv_par';

function startKnowledgeWorker(name: string, maxConcurrentActivities: number): ManagedProcess {
  return startProcess(name, nodeEntrypoint('test/integration/knowledge/worker-main'), {
    env: {
      TEMPORAL_ADDRESS: env.address,
      DATABASE_URL: db.url,
      EMBED_DELAY_MS: '0',
      QWENOPS_LOG_LEVEL: 'info',
      MAX_CONCURRENT_ACTIVITIES: String(maxConcurrentActivities),
    },
  });
}

async function waitReady(workers: ManagedProcess[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!workers.every((w) => w.output().includes('knowledge worker ready'))) {
    if (Date.now() > deadline)
      throw new Error(`a worker did not start:\n${workers.map((w) => w.output()).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Nested, partly Chinese keys: the listing order is byte-wise, the cursor crosses directories. */
function documentPath(i: number): string {
  const group = ['制度', 'docs', 'docs-archive', '人事/年假', 'a'][i % 5] as string;
  return path.join(corpus, ...group.split('/'), `文档-${String(i).padStart(3, '0')}.md`);
}

function documentBody(i: number, version: number): string {
  const paragraphs = Array.from(
    { length: 2 + (i % 4) },
    (_, j) =>
      `第${i}号制度第${j}条（版本${version}）：员工应当按照流程办理相关事项，并保留相应的书面记录以备核查。`,
  );
  return `# 制度${i}\n\n${paragraphs.join('\n\n')}`;
}

async function rowsOf(table: string) {
  const { rows } = await pool.query<{ source: string; idx: string; content_hash: string; chunk_id: string }>(
    `SELECT source, metadata->>'position' AS idx, content_hash, chunk_id FROM ${table}
       ORDER BY source, (metadata->>'position')::int, chunk_id`,
  );
  return rows.map((r) => `${r.source}\u0000${r.idx}\u0000${r.content_hash}\u0000${r.chunk_id}`);
}

async function sourcesOf(table: string) {
  const { rows } = await pool.query<{ source: string; source_hash: string; chunk_count: number }>(
    `SELECT source, source_hash, chunk_count FROM ${table}_sources ORDER BY source`,
  );
  return rows.map((r) => `${r.source}\u0000${r.source_hash}\u0000${r.chunk_count}`);
}

async function reindex(
  workflowId: string,
  table: string,
  mode: 'full' | 'incremental',
  parallelism: number,
  workers: Array<[string, number]>,
): Promise<{ report: ReindexReport; batchInputs: string[]; maxInFlight: number }> {
  const workflowWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUES.default,
    workflowsPath: path.join(repoRoot, 'workflows', 'reindex-knowledge-base.ts'),
    activities: specActivities,
  });
  return workflowWorker.runUntil(async () => {
    const running = workers.map(([name, max]) => startKnowledgeWorker(name, max));
    try {
      await waitReady(running);
      const request: ReindexRequestInput = {
        table,
        source: { kind: 'directory', path: corpus },
        mode,
        heartbeatTimeoutSeconds: 30,
        // Small chunks: several per document (chunk index and overlap in the comparison).
        chunking: { targetTokens: 48, overlapTokens: 8 },
        // 15 batches of 16; 5 per run: continue-as-new twice (carrying the cursor).
        batch: { sourcesPerActivity: 16, sourcesPerCommit: 4, parallelism, batchesPerRun: 5 },
        verify: { probes: 5 },
      };
      const handle = await env.client.workflow.start(reindexKnowledgeBase, {
        taskQueue: TASK_QUEUES.default,
        workflowId,
        args: [{ request }],
      });
      const report = await handle.result();
      // The last run's batch inputs (after two continue-as-new): what each batch was given.
      const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
      const batchInputs = (history.events ?? [])
        .filter(
          (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'indexKnowledgeSourceBatch',
        )
        .map((e) =>
          Buffer.from(e.activityTaskScheduledEventAttributes?.input?.payloads?.[0]?.data ?? []).toString(),
        );
      // Batches in flight at once, from the last run's history (scheduled minus closed).
      let inFlight = 0;
      let maxInFlight = 0;
      const batchIds = new Set<string>();
      for (const e of history.events ?? []) {
        const scheduled = e.activityTaskScheduledEventAttributes;
        if (scheduled?.activityType?.name === 'indexKnowledgeSourceBatch') {
          batchIds.add(String(e.eventId));
          maxInFlight = Math.max(maxInFlight, ++inFlight);
        }
        const closed =
          e.activityTaskCompletedEventAttributes ??
          e.activityTaskFailedEventAttributes ??
          e.activityTaskTimedOutEventAttributes ??
          e.activityTaskCanceledEventAttributes;
        if (closed && batchIds.has(String(closed.scheduledEventId))) inFlight--;
      }
      return { report, batchInputs, maxInFlight };
    } finally {
      for (const worker of running) await worker.kill();
    }
  });
}

beforeAll(async () => {
  corpus = await mkdtemp(path.join(os.tmpdir(), 'qwenops-kb-equiv-'));
  for (let i = 0; i < DOCUMENTS; i++) {
    await mkdir(path.dirname(documentPath(i)), { recursive: true });
    await writeFile(documentPath(i), documentBody(i, 1));
  }
  [env, db] = await Promise.all([createDevServerEnv(), startPglite()]);
  pool = createKnowledgePool(db.url);
}, 300_000);

afterAll(async () => {
  await pool?.end();
  await env?.teardown();
  await stopAll();
  if (corpus) await rm(corpus, { recursive: true, force: true });
});

describe('parallel re-index on two worker processes', () => {
  const compare = async (expectedSources: number) => {
    const [seqRows, parRows] = [await rowsOf(SEQUENTIAL), await rowsOf(PARALLEL)];
    expect(seqRows.length).toBeGreaterThan(expectedSources);
    expect(new Set(seqRows).size).toBe(seqRows.length);
    expect(new Set(parRows).size).toBe(parRows.length);
    expect(parRows).toEqual(seqRows);
    const { rows } = await pool.query<{ n: string; ids: string; positions: string }>(
      `SELECT count(*) AS n, count(DISTINCT chunk_id) AS ids,
              count(DISTINCT (source, metadata->>'position')) AS positions FROM ${PARALLEL}`,
    );
    expect(Number(rows[0]?.ids)).toBe(Number(rows[0]?.n));
    expect(Number(rows[0]?.positions)).toBe(Number(rows[0]?.n));
    const [seqSources, parSources] = [await sourcesOf(SEQUENTIAL), await sourcesOf(PARALLEL)];
    expect(seqSources.length).toBe(expectedSources);
    expect(parSources).toEqual(seqSources);
  };

  it('full: the parallel table equals the sequential one, row for row', async () => {
    const sequential = await reindex('equiv-full-seq', SEQUENTIAL, 'full', 1, [['kw-seq', 1]]);
    const parallel = await reindex('equiv-full-par', PARALLEL, 'full', 4, [
      ['kw-par-a', 2],
      ['kw-par-b', 2],
    ]);
    for (const { report } of [sequential, parallel]) {
      expect(report.outcome, report.reason).toBe('succeeded');
      expect(report.verification?.passed).toBe(true);
      expect(report.counters.documents).toBe(DOCUMENTS);
    }
    // Sequential: every batch of a continued run starts at its cursor (no relisting from the start).
    expect(sequential.batchInputs.length).toBeGreaterThan(0);
    for (const input of sequential.batchInputs)
      expect(input).toMatch(/"cursor":\{"position":\d+,"startAfter":/);
    expect(sequential.maxInFlight).toBe(1);
    expect(parallel.maxInFlight).toBeGreaterThan(1);
    // Parallel: batches started ahead list from the nearest cursor below them.
    expect(parallel.batchInputs.some((input) => input.includes('"cursor":'))).toBe(true);
    await compare(DOCUMENTS);
  });

  it('incremental after edits, deletions and new documents: still equal', async () => {
    for (let i = 0; i < DOCUMENTS; i += 7) await writeFile(documentPath(i), documentBody(i, 2));
    for (let i = 3; i < DOCUMENTS; i += 11) await unlink(documentPath(i));
    const added = 20;
    for (let i = DOCUMENTS; i < DOCUMENTS + added; i++) {
      await mkdir(path.dirname(documentPath(i)), { recursive: true });
      await writeFile(documentPath(i), documentBody(i, 1));
    }
    const deleted = Math.ceil((DOCUMENTS - 3) / 11);
    const sequential = await reindex('equiv-inc-seq', SEQUENTIAL, 'incremental', 1, [['kw-seq-2', 1]]);
    const parallel = await reindex('equiv-inc-par', PARALLEL, 'incremental', 4, [
      ['kw-par-c', 2],
      ['kw-par-d', 2],
    ]);
    for (const { report } of [sequential, parallel]) {
      expect(report.outcome, report.reason).toBe('succeeded');
      expect(report.mode).toBe('incremental');
      expect(report.counters.documents).toBe(DOCUMENTS + added - deleted);
      expect(report.counters.documentsRemoved).toBe(deleted);
    }
    expect(parallel.report.counters.chunksAdded).toBe(sequential.report.counters.chunksAdded);
    expect(parallel.report.counters.chunksRemoved).toBe(sequential.report.counters.chunksRemoved);
    await compare(DOCUMENTS + added - deleted);
  });
});
