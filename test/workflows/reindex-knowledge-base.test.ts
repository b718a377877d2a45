import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKnowledgeActivities } from '../../activities/knowledge.js';
import { specActivities } from '../../activities/spec.js';
import type { ReindexRequestInput } from '../../src/domain/knowledge.js';
import { LexicalEmbedder } from '../../src/knowledge/embedders/lexical.js';
import { createKnowledgePool, PgVectorStore } from '../../src/knowledge/store/pgvector-store.js';
import { createLogger } from '../../src/observability/logger.js';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { reindexStatusQuery, TASK_QUEUES } from '../../workflows/definitions.js';
import { reindexKnowledgeBase } from '../../workflows/reindex-knowledge-base.js';
import { type RunningPglite, startPglite } from '../support/pglite.js';
import { stopAll } from '../support/processes.js';
import { createTimeSkippingEnv } from '../support/temporal.js';

// reindexKnowledgeBase on the time-skipping server with its real activities: the
// embedded database (PGlite over the wire protocol), a local directory, the lexical
// embedder. Small batches force several batch activities and continue-as-new.

const logger = createLogger('test', process.env.QWENOPS_TEST_LOG_LEVEL ?? 'silent');
let env: TestWorkflowEnvironment;
let db: RunningPglite;
let pool: pg.Pool;
let corpus: string;
const embedder = new LexicalEmbedder();

const documents: Record<string, string> = {
  'hr/leave.md':
    '# 年假政策\n\n员工入职满一年后享有五天带薪年假。每多工作一年增加一天，最多十五天。\n\n## 申请方式\n\n至少提前三个工作日在人事系统提交申请，直属经理审批后生效。',
  'hr/sick.md': '# 病假\n\n病假需提供医院证明。每年前五天病假工资全额发放。',
  'finance/expense.md': '# 报销流程\n\n差旅费用须在出差结束后三十天内提交报销单，并附发票原件。',
  'finance/limits.txt': '餐费标准：一线城市每人每天一百五十元；其他城市每人每天一百元。',
  'it/security.md': '# 信息安全\n\n禁止将客户数据拷贝到个人设备。必须使用公司加密U盘。',
  'it/password.md': '# 密码规范\n\n密码至少十二位，每九十天更换一次。',
  'faq.jsonl': '{"question":"加班有调休吗？","answer":"工作日加班可按一比一调休，需在三个月内使用。"}\n',
};

function request(overrides: Partial<ReindexRequestInput> = {}): ReindexRequestInput {
  return {
    source: { kind: 'directory', path: corpus },
    batch: { sourcesPerActivity: 2, sourcesPerCommit: 1, batchesPerRun: 2 },
    verify: { probes: 5 },
    requestedBy: 'test',
    ...overrides,
  };
}

async function withWorkers<T>(fn: () => Promise<T>): Promise<T> {
  const activities = createKnowledgeActivities({
    pool: () => pool,
    embedder,
    logger,
    heartbeatIntervalMs: 200,
    directoryRoots: [corpus],
  });
  const workflowWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUES.default,
    workflowsPath: path.join(repoRoot, 'workflows', 'reindex-knowledge-base.ts'),
    activities: specActivities,
  });
  const activityWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUES.knowledge,
    activities,
  });
  return workflowWorker.runUntil(activityWorker.runUntil(fn()));
}

beforeAll(async () => {
  corpus = await mkdtemp(path.join(os.tmpdir(), 'qwenops-kb-wf-'));
  for (const [key, text] of Object.entries(documents)) {
    const file = path.join(corpus, key);
    await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(file), { recursive: true }));
    await writeFile(file, text);
  }
  [env, db] = await Promise.all([createTimeSkippingEnv(), startPglite()]);
  pool = createKnowledgePool(db.url);
});

afterAll(async () => {
  await pool?.end();
  await env?.teardown();
  await stopAll();
  if (corpus) await rm(corpus, { recursive: true, force: true });
});

describe('reindexKnowledgeBase workflow', () => {
  it('builds the base in full mode over several batches and runs, then reruns with zero embedding calls', async () => {
    const result = await withWorkers(async () => {
      const handle = await env.client.workflow.start(reindexKnowledgeBase, {
        args: [{ request: request() }],
        taskQueue: TASK_QUEUES.default,
        workflowId: 'reindex-kb-full',
      });
      const report = await handle.result();
      const described = await env.client.workflow.getHandle('reindex-kb-full').describe();
      const status = await env.client.workflow.getHandle('reindex-kb-full').query(reindexStatusQuery);
      return { report, firstRun: handle.firstExecutionRunId, lastRun: described.runId, status };
    });
    expect(result.report.outcome).toBe('succeeded');
    expect(result.report.mode).toBe('full');
    expect(result.report.counters.documents).toBe(Object.keys(documents).length);
    expect(result.report.counters.embeddingCalls).toBeGreaterThan(0);
    expect(result.report.verification?.passed).toBe(true);
    expect(result.report.verification?.recallAt10).toBeGreaterThanOrEqual(0.95);
    expect(result.report.rowsAfter).toBe(result.report.verification?.rows);
    // 7 sources, 2 per batch activity, 2 batch activities per run: it continued as new.
    expect(result.lastRun).not.toBe(result.firstRun);
    expect(result.status.outcome).toBe('succeeded');
    expect(result.status.progress.percent).toBe(100);

    const store = new PgVectorStore(pool);
    expect(await store.duplicateChunkIds()).toBe(0);
    const rerun = await withWorkers(() =>
      env.client.workflow.execute(reindexKnowledgeBase, {
        args: [{ request: request() }],
        taskQueue: TASK_QUEUES.default,
        workflowId: 'reindex-kb-rerun',
      }),
    );
    expect(rerun.mode).toBe('incremental');
    expect(rerun.counters.embeddingCalls).toBe(0);
    expect(rerun.counters.writeTransactions).toBe(0);
    expect(rerun.counters.chunksAdded).toBe(0);
    expect(rerun.counters.chunksRemoved).toBe(0);
    expect(rerun.counters.documentsUnchanged).toBe(Object.keys(documents).length);
    expect(rerun.rowsAfter).toBe(result.report.rowsAfter);
  });

  it('refuses a bad request naming the field, before touching the database', async () => {
    const error = await withWorkers(() =>
      env.client.workflow
        .execute(reindexKnowledgeBase, {
          args: [{ request: { ...request(), chunking: { targetTokens: 10 } } }],
          taskQueue: TASK_QUEUES.default,
          workflowId: 'reindex-kb-bad',
        })
        .catch((err: unknown) => err),
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = (error as WorkflowFailedError).cause as { type?: string; message: string };
    expect(cause.type).toBe('InvalidInput');
    expect(cause.message).toContain('chunking.targetTokens');
  });

  it('refuses a directory source outside the worker\'s knowledge roots (and ".." traversal) as InvalidInput', async () => {
    const failureOf = async (source: ReindexRequestInput['source'], workflowId: string) => {
      const error = await withWorkers(() =>
        env.client.workflow
          .execute(reindexKnowledgeBase, {
            args: [{ request: request({ source }) }],
            taskQueue: TASK_QUEUES.default,
            workflowId,
          })
          .catch((err: unknown) => err),
      );
      expect(error).toBeInstanceOf(WorkflowFailedError);
      // The refusal itself: the workflow's failure or the activity failure under it.
      let cause = (error as WorkflowFailedError).cause as { type?: string; message: string; cause?: unknown };
      while (cause.type !== 'InvalidInput' && cause.cause) cause = cause.cause as typeof cause;
      expect(cause.type).toBe('InvalidInput');
      return cause.message;
    };
    expect(await failureOf({ kind: 'directory', path: '/etc' }, 'reindex-kb-etc')).toMatch(
      /source\.path: "\/etc" is outside the allowed knowledge directory roots \(confinement\.knowledgeRoots, QWENOPS_KNOWLEDGE_ROOTS\)/,
    );
    expect(await failureOf({ kind: 'directory', path: `${corpus}/../..` }, 'reindex-kb-dotdot')).toMatch(
      /source\.path: must not contain "\.\." segments/,
    );
  });

  it('refuses to start while another run holds the knowledge base, writing nothing', async () => {
    const store = new PgVectorStore(pool, { table: 'kb_busy' });
    await store.acquireLease('someone-else', 'operator', 'full', 600);
    const error = await withWorkers(() =>
      env.client.workflow
        .execute(reindexKnowledgeBase, {
          args: [{ request: request({ table: 'kb_busy' }) }],
          taskQueue: TASK_QUEUES.default,
          workflowId: 'reindex-kb-busy',
        })
        .catch((err: unknown) => err),
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    const cause = (error as WorkflowFailedError).cause as { type?: string; message: string };
    expect(cause.type).toBe('ConcurrentReindex');
    expect(cause.message).toContain('someone-else');
    expect(await store.exists('live')).toBe(false);
    expect(await store.exists('shadow')).toBe(false);
    expect((await store.currentLease())?.runId).toBe('someone-else');
  });
});
