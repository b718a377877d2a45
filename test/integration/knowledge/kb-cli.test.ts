import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAiEmbedder } from '../../../src/knowledge/embedders/openai.js';
import {
  reindexSampleKnowledgeBase,
  SAMPLE_KNOWLEDGE_BASE_DIR,
  SAMPLE_QUESTION,
} from '../../../src/knowledge/sample.js';
import { createLogger } from '../../../src/observability/logger.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { type RunningPglite, startPglite } from '../../support/pglite.js';
import { startProcess, stopAll } from '../../support/processes.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';
import { createDevServerEnv } from '../../support/temporal.js';

// `qwenops schedule ...` against a real Temporal dev server and `qwenops kb ...` against
// the embedded database and the serving simulator, each run as the real CLI process.

let env: TestWorkflowEnvironment;
let db: RunningPglite;
let simulator: TestSimulator;

async function cli(args: string[]): Promise<{
  code: number | null;
  stdout: string;
  stderr: string;
  // biome-ignore lint/suspicious/noExplicitAny: the CLI's JSON output, asserted field by field
  json: () => any;
}> {
  const child = startProcess(
    'qwenops',
    [...nodeEntrypoint('src/cli/main'), '--address', env.address, ...args],
    {
      env: { QWENOPS_DATABASE_URL: db.url, QWENOPS_LOG_LEVEL: 'warn', QWENOPS_STATE_DIR: db.dataDir },
    },
  );
  let stdout = '';
  let stderr = '';
  child.child.stdout?.on('data', (c) => (stdout += c));
  child.child.stderr?.on('data', (c) => (stderr += c));
  const code = await child.exited;
  return { code, stdout, stderr, json: () => JSON.parse(stdout) };
}

beforeAll(async () => {
  [env, db, simulator] = await Promise.all([createDevServerEnv(), startPglite(), startSimulator()]);
});

afterAll(async () => {
  await simulator?.close();
  await env?.teardown();
  await stopAll();
});

describe('qwenops schedule', () => {
  it('creates, updates, pauses, triggers (skipping overlaps) and backfills the nightly re-index', async () => {
    const created = await cli([
      '--json',
      'schedule',
      'reindex',
      '--cron',
      '0 2 * * *',
      '--timezone',
      'Asia/Shanghai',
      '--dir',
      SAMPLE_KNOWLEDGE_BASE_DIR,
    ]);
    expect(created.code, created.stderr).toBe(0);
    const summary = created.json();
    expect(summary).toMatchObject({
      scheduleId: 'qwenops-kb-reindex-qwen-knowledge',
      timezone: 'Asia/Shanghai',
      paused: false,
      overlap: 'SKIP',
      catchupWindowMs: 6 * 3600_000,
    });
    // 02:00 in Shanghai (UTC+8) is 18:00 UTC.
    expect(summary.nextRuns[0]).toMatch(/T18:00:00\.000Z$/);

    const updated = await cli([
      '--json',
      'schedule',
      'reindex',
      '--cron',
      '30 3 * * *',
      '--timezone',
      'Asia/Shanghai',
      '--dir',
      SAMPLE_KNOWLEDGE_BASE_DIR,
      '--catchup-window',
      '2h',
    ]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.json().nextRuns[0]).toMatch(/T19:30:00\.000Z$/);
    expect(updated.json().catchupWindowMs).toBe(2 * 3600_000);

    expect((await cli(['--json', 'schedule', 'pause', '--note', 'maintenance'])).json()).toMatchObject({
      paused: true,
      note: 'maintenance',
    });
    expect((await cli(['--json', 'schedule', 'unpause'])).json()).toMatchObject({ paused: false });

    // No worker runs here, so the first triggered run stays open and the second overlaps.
    const first = await cli(['--json', 'schedule', 'trigger']);
    expect(first.code, first.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    await cli(['schedule', 'trigger']);
    await new Promise((r) => setTimeout(r, 1500));
    const described = (await cli(['--json', 'schedule', 'describe'])).json();
    expect(described.cron).toEqual(['30 3 * * *']);
    expect(described.actions).toBe(1);
    expect(described.recentRuns).toHaveLength(1);
    expect(described.recentRuns[0].workflowId).toMatch(/^reindex-qwen_knowledge/);
    expect(described.skippedOverlap).toBeGreaterThanOrEqual(1);
    const run = await env.client.workflow.getHandle(described.recentRuns[0].workflowId).describe();
    expect(run.status.name).toBe('RUNNING');

    const backfill = await cli([
      'schedule',
      'backfill',
      '--from',
      '2026-01-01T00:00:00Z',
      '--to',
      '2026-01-03T00:00:00Z',
    ]);
    expect(backfill.code, backfill.stderr).toBe(0);
  });

  it('refuses a bad cron, time zone or range, naming the flag', async () => {
    const bad = await cli([
      'schedule',
      'reindex',
      '--cron',
      'nightly',
      '--timezone',
      'Mars/Olympus',
      '--dir',
      '/tmp',
    ]);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('--cron: must have five fields');
    expect(bad.stderr).toContain('--timezone: "Mars/Olympus" is not an IANA time zone');
    const range = await cli([
      'schedule',
      'backfill',
      '--from',
      '2026-01-03T00:00:00Z',
      '--to',
      '2026-01-01T00:00:00Z',
    ]);
    expect(range.code).toBe(64);
    expect(range.stderr).toContain('--to: must be after --from');
    const source = await cli(['schedule', 'reindex', '--cron', '0 2 * * *']);
    expect(source.code).toBe(64);
    expect(source.stderr).toContain('--dir / --prefix: give exactly one');
  });
});

describe('qwenops kb', () => {
  it('re-indexes the bundled sample, searches it and answers from it through the chat endpoint', async () => {
    const reindex = await cli(['--json', 'kb', 'reindex', '--local', '--dir', SAMPLE_KNOWLEDGE_BASE_DIR]);
    expect(reindex.code, reindex.stderr).toBe(0);
    const report = reindex.json();
    expect(report.outcome).toBe('succeeded');
    expect(report.counters.documents).toBe(5);
    expect(report.failures).toEqual([]);

    const search = await cli(['kb', 'search', '入职满三年的员工每年有几天带薪年假？', '-k', '3']);
    expect(search.code, search.stderr).toBe(0);
    expect(search.stdout.split('\n')[0]).toContain('hr/annual-leave.md');
    const gbk = await cli(['--json', 'kb', 'search', '加密U盘丢失后多久报告', '-k', '1']);
    expect(gbk.json()[0].source).toBe('it/information-security.txt');
    expect(gbk.json()[0].content).toContain('两小时内报告信息安全部');

    const ask = await cli([
      '--json',
      'kb',
      'ask',
      '入职满三年的员工每年有几天带薪年假？',
      '--chat-url',
      simulator.baseUrl,
      '--model',
      'qwen-7b-chat',
    ]);
    expect(ask.code, ask.stderr).toBe(0);
    const answer = ask.json();
    expect(answer.messages[0].content).toContain('我不知道');
    expect(answer.messages[1].content).toContain('来源：hr/annual-leave.md');
    expect(answer.messages[1].content).toContain('问题：入职满三年的员工每年有几天带薪年假？');
    expect(typeof answer.answer).toBe('string');
    expect(answer.answer.length).toBeGreaterThan(0);

    const rerun = await cli(['--json', 'kb', 'reindex', '--local', '--dir', SAMPLE_KNOWLEDGE_BASE_DIR]);
    expect(rerun.json().counters.embeddingCalls).toBe(0);
  });

  it('runs the demo step: re-indexes the sample through the simulator embeddings and answers one question', async () => {
    const embedder = new OpenAiEmbedder({ baseUrl: simulator.baseUrl, model: 'BAAI/bge-m3' });
    const result = await reindexSampleKnowledgeBase({
      databaseUrl: db.url,
      logger: createLogger('test', 'silent'),
      table: 'demo_kb',
      embedder,
      chat: { baseUrl: simulator.baseUrl, model: 'qwen-7b-chat' },
    });
    await embedder.close();
    expect(result.report.outcome).toBe('succeeded');
    expect(result.report.embedder).toContain('OpenAI-compatible');
    expect(result.report.counters.embeddingRequests).toBeGreaterThan(0);
    expect(result.question).toBe(SAMPLE_QUESTION);
    expect(result.hits.length).toBeGreaterThan(0);
    expect(result.answer?.references.length).toBeGreaterThan(0);
    expect(result.answer?.messages[0]?.content).toContain('我不知道');
  });
});
