import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { specActivities } from '../../../activities/spec.js';
import { createKnowledgePool, PgVectorStore } from '../../../src/knowledge/store/pgvector-store.js';
import { nodeEntrypoint, repoRoot } from '../../../src/runtime/entrypoints.js';
import { reindexStatusQuery, TASK_QUEUES } from '../../../workflows/definitions.js';
import { reindexKnowledgeBase } from '../../../workflows/reindex-knowledge-base.js';
import { type RunningPglite, startPglite } from '../../support/pglite.js';
import { startProcess, stopAll } from '../../support/processes.js';
import { createDevServerEnv } from '../../support/temporal.js';

// The knowledge worker is SIGKILLed while a full re-index is loading the shadow table.
// Its open transaction dies with its connection (rolled back), the activity's heartbeat
// times out, a new worker takes the batch over from its last checkpoint, and the result
// has every chunk exactly once. The same with two workers sharing parallel batches
// (batch.parallelism): one is killed mid-batch, the other finishes its batches too.

let env: TestWorkflowEnvironment;
let db: RunningPglite;
let pool: pg.Pool;
let corpus: string;
const DOCUMENTS = 40;

function startKnowledgeWorker(name: string, embedDelayMs: number, maxConcurrentActivities?: number) {
  return startProcess(name, nodeEntrypoint('test/integration/knowledge/worker-main'), {
    env: {
      TEMPORAL_ADDRESS: env.address,
      DATABASE_URL: db.url,
      EMBED_DELAY_MS: String(embedDelayMs),
      QWENOPS_LOG_LEVEL: 'info',
      ...(maxConcurrentActivities ? { MAX_CONCURRENT_ACTIVITIES: String(maxConcurrentActivities) } : {}),
    },
  });
}

beforeAll(async () => {
  corpus = await mkdtemp(path.join(os.tmpdir(), 'qwenops-kb-kill-'));
  await mkdir(path.join(corpus, 'docs'));
  for (let i = 0; i < DOCUMENTS; i++) {
    const body = Array.from(
      { length: 6 },
      (_, j) => `第${i}号制度第${j}条：员工应当按照流程办理相关事项，并保留相应的书面记录以备核查。`,
    ).join('\n');
    await writeFile(
      path.join(corpus, 'docs', `policy-${String(i).padStart(2, '0')}.md`),
      `# 制度${i}\n\n${body}`,
    );
  }
  [env, db] = await Promise.all([createDevServerEnv(), startPglite()]);
  pool = createKnowledgePool(db.url);
});

afterAll(async () => {
  await pool?.end();
  await env?.teardown();
  await stopAll();
  if (corpus) await rm(corpus, { recursive: true, force: true });
});

describe('knowledge worker killed mid-load', () => {
  it('resumes on another worker with no duplicate and no missing rows', async () => {
    const workflowWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUES.default,
      workflowsPath: path.join(repoRoot, 'workflows', 'reindex-knowledge-base.ts'),
      activities: specActivities,
    });
    const store = new PgVectorStore(pool);
    const report = await workflowWorker.runUntil(async () => {
      const first = startKnowledgeWorker('knowledge-worker-1', 150);
      const handle = await env.client.workflow.start(reindexKnowledgeBase, {
        taskQueue: TASK_QUEUES.default,
        workflowId: 'reindex-kill',
        args: [
          {
            request: {
              source: { kind: 'directory', path: corpus },
              mode: 'full',
              heartbeatTimeoutSeconds: 2,
              batch: { sourcesPerActivity: 100, sourcesPerCommit: 1 },
              verify: { probes: 5 },
            },
          },
        ],
      });
      // Wait until the shadow has some rows but the load is far from done, then kill.
      const deadline = Date.now() + 120_000;
      for (;;) {
        const rows = await store.count('shadow').catch(() => 0);
        if (rows >= 30) break;
        if (Date.now() > deadline) throw new Error(`the load never started:\n${first.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await first.kill('SIGKILL');
      const rowsAtKill = await store.count('shadow');
      expect(rowsAtKill).toBeLessThan(DOCUMENTS * 6);
      const second = startKnowledgeWorker('knowledge-worker-2', 0);
      const result = await handle.result();
      expect(second.output()).toContain('knowledge worker ready');
      // The retry started from the last checkpoint the killed worker heartbeated.
      expect(second.output()).toContain('resumed a knowledge batch');
      // The next test brings its own workers.
      await second.kill();
      return result;
    });
    expect(report.outcome).toBe('succeeded');
    expect(report.verification?.passed).toBe(true);
    const { rows } = await pool.query<{ n: string; distinct: string }>(
      'SELECT count(*) AS n, count(DISTINCT chunk_id) AS distinct FROM qwen_knowledge',
    );
    expect(Number(rows[0]?.n)).toBe(Number(rows[0]?.distinct));
    expect(Number(rows[0]?.n)).toBe(report.verification?.expectedRows);
    const { rows: perSource } = await pool.query<{ n: string }>(
      'SELECT count(*) AS n FROM qwen_knowledge_sources',
    );
    expect(Number(perSource[0]?.n)).toBe(DOCUMENTS);
    expect(await store.duplicateChunkIds()).toBe(0);
  });

  it('with two workers and parallel batches, a worker killed mid-batch leaves every chunk exactly once', async () => {
    const table = 'kb_parallel';
    const workflowWorker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: TASK_QUEUES.default,
      workflowsPath: path.join(repoRoot, 'workflows', 'reindex-knowledge-base.ts'),
      activities: specActivities,
    });
    const store = new PgVectorStore(pool, { table });
    const report = await workflowWorker.runUntil(async () => {
      // Two batches each: the four batches in flight are shared by both workers.
      // The doomed one is slow: its batches outlast the heartbeat throttle (a checkpoint is sent).
      const doomed = startKnowledgeWorker('knowledge-worker-a', 500, 2);
      const survivor = startKnowledgeWorker('knowledge-worker-b', 100, 2);
      // Both polling before the first batch is scheduled, so both get batches.
      const ready = Date.now() + 60_000;
      while (![doomed, survivor].every((w) => w.output().includes('knowledge worker ready'))) {
        if (Date.now() > ready)
          throw new Error(`a worker did not start:\n${doomed.output()}\n${survivor.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const handle = await env.client.workflow.start(reindexKnowledgeBase, {
        taskQueue: TASK_QUEUES.default,
        workflowId: 'reindex-kill-parallel',
        args: [
          {
            request: {
              table,
              source: { kind: 'directory', path: corpus },
              mode: 'full',
              heartbeatTimeoutSeconds: 2,
              // 8 batches of 5, 4 in flight, 6 per run: it continues as new once, draining first.
              batch: { sourcesPerActivity: 5, sourcesPerCommit: 1, parallelism: 4, batchesPerRun: 6 },
              verify: { probes: 5 },
            },
          },
        ],
      });
      // Kill the doomed worker once a batch it runs has heartbeated a checkpoint (some of
      // its sources are written, the rest are not).
      const midBatchOnDoomed = async () => {
        const { raw } = await handle.describe();
        return (raw.pendingActivities ?? []).some(
          (a) =>
            a.activityType?.name === 'indexKnowledgeSourceBatch' &&
            String(a.lastWorkerIdentity ?? '').startsWith(`${doomed.child.pid}@`) &&
            (a.heartbeatDetails?.payloads ?? []).some((p) =>
              Buffer.from(p.data ?? [])
                .toString()
                .includes('"checkpoint"'),
            ),
        );
      };
      const deadline = Date.now() + 120_000;
      let inFlight = 0;
      for (;;) {
        inFlight = Math.max(
          inFlight,
          (await handle.query(reindexStatusQuery).catch(() => undefined))?.batchesInFlight ?? 0,
        );
        if (await midBatchOnDoomed()) break;
        if (Date.now() > deadline) throw new Error(`no batch ran on the doomed worker:\n${doomed.output()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await doomed.kill('SIGKILL');
      expect(inFlight).toBeGreaterThan(1);
      expect(await store.count('shadow')).toBeLessThan(DOCUMENTS * 6);
      const result = await handle.result();
      // The killed worker's batches were retried on the survivor: from their last
      // checkpoint, and a source written after it is redone as a no-op (content hashes).
      const history = await env.client.workflow
        .getHandle('reindex-kill-parallel', handle.firstExecutionRunId)
        .fetchHistory();
      const retried = (history.events ?? []).filter(
        (e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1,
      );
      expect(retried.length, survivor.output()).toBeGreaterThan(0);
      expect(survivor.output()).toContain('resumed a knowledge batch');
      return result;
    });
    expect(report.outcome).toBe('succeeded');
    expect(report.verification?.passed).toBe(true);
    expect(report.counters.documents).toBe(DOCUMENTS);
    const { rows } = await pool.query<{ n: string; distinct: string }>(
      `SELECT count(*) AS n, count(DISTINCT chunk_id) AS distinct FROM ${table}`,
    );
    expect(Number(rows[0]?.n)).toBe(Number(rows[0]?.distinct));
    expect(Number(rows[0]?.n)).toBe(report.verification?.expectedRows);
    const { rows: perSource } = await pool.query<{ n: string; chunks: string }>(
      `SELECT count(*) AS n, sum(chunk_count) AS chunks FROM ${table}_sources`,
    );
    expect(Number(perSource[0]?.n)).toBe(DOCUMENTS);
    expect(Number(perSource[0]?.chunks)).toBe(Number(rows[0]?.n));
    expect(await store.duplicateChunkIds()).toBe(0);
  });
});
