import os from 'node:os';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createKnowledgeActivities } from '../../../activities/knowledge.js';
import { createServingActivities } from '../../../activities/serving.js';
import type { CanaryAnalyzer } from '../../../src/analysis/port.js';
import type { AnalysisResult } from '../../../src/domain/analysis.js';
import type { ReindexPlan, ReindexReport } from '../../../src/domain/knowledge.js';
import type { ServingRef, ServingStatus } from '../../../src/domain/serving-revision.js';
import type { KnowledgeAdapters } from '../../../src/knowledge/compose.js';
import { createLogger } from '../../../src/observability/logger.js';
import { metricsRegistry } from '../../../src/observability/metrics.js';
import {
  CANARY_STEP_DEADLINE_MARGIN_SECONDS,
  recordCanaryStepStarted,
} from '../../../src/observability/pipeline-metrics.js';
import type { ServingService } from '../../../src/services/serving-rollout.js';

// The pipeline metrics the activities record (src/observability/pipeline-metrics.ts), read
// back from the process registry the worker serves: names, labels, values, and the step
// deadline series that must disappear when the rollout ends.

const NOW = new Date('2026-01-01T00:00:00Z');
const NOW_S = NOW.getTime() / 1000;

interface Sample {
  labels: Record<string, string | number | undefined>;
  value: number;
}

async function samples(name: string): Promise<Sample[]> {
  const metric = metricsRegistry.getSingleMetric(name);
  if (!metric) throw new Error(`${name} is not registered`);
  return (await metric.get()).values.map((v) => ({ labels: { ...v.labels }, value: v.value }));
}

function status(ref: ServingRef, canaryPercent?: number): ServingStatus {
  return {
    namespace: ref.namespace,
    name: ref.name,
    ready: true,
    conditions: [],
    traffic: [],
    ...(canaryPercent !== undefined ? { canaryPercent } : {}),
  };
}

function analysisResult(overrides: Partial<AnalysisResult> = {}): AnalysisResult {
  return {
    step: 0,
    canaryPercent: 10,
    verdict: 'pass',
    reasons: [],
    checks: [
      {
        metric: 'latency-p99',
        threshold: 300,
        comparator: '<=',
        verdict: 'pass',
        message: 'ok',
        statistics: { test: 'mann-whitney-u', alpha: 0.05, n1: 100, n2: 100, p: 0.42 },
      },
      {
        metric: 'error-rate',
        threshold: 1,
        comparator: '<=',
        verdict: 'pass',
        message: 'ok',
        statistics: { test: 'binomial+fisher-exact', alpha: 0.05, n1: 100, errors1: 0, pVsSlo: 0.9 },
      },
      { metric: 'ttft-p95', threshold: 1, comparator: '<=', verdict: 'pass', message: 'no stats' },
    ],
    provider: 'fake',
    startedAt: NOW.toISOString(),
    finishedAt: NOW.toISOString(),
    ...overrides,
  };
}

function servingFixture(ref: ServingRef, result: AnalysisResult = analysisResult()) {
  const serving = {
    describe: vi.fn(async () => status(ref, 10)),
    endpoints: vi.fn(() => ({ canary: 'http://canary', stable: 'http://stable' })),
    shiftCanaryTraffic: vi.fn(async (_ref: ServingRef, _rev: unknown, percent: number) =>
      status(ref, percent),
    ),
    promote: vi.fn(async () => status(ref)),
    rollback: vi.fn(async () => status(ref)),
    release: vi.fn(async () => undefined),
  };
  const analyzer: CanaryAnalyzer = {
    provider: 'fake',
    analyse: vi.fn(async () => result),
  } as unknown as CanaryAnalyzer;
  const activities = createServingActivities({
    serving: serving as unknown as ServingService,
    analyzer,
    loadTest: async () => {
      throw new Error('not used');
    },
  });
  return { serving, activities };
}

const action = (ref: ServingRef, workflowId: string) => ({ workflowId, ref, actor: 'test' });

const analyseInput = (ref: ServingRef, workflowId: string, windowSeconds: number) => ({
  ...action(ref, workflowId),
  step: 0,
  canaryPercent: 10,
  windowSeconds,
  minSamples: 10,
  probe: {} as never,
  slo: {} as never,
});

beforeEach(() => {
  vi.useFakeTimers({ now: NOW, toFake: ['Date'] });
  metricsRegistry.resetMetrics();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('canary metrics from the serving activities', () => {
  const ref: ServingRef = {
    namespace: 'llm-prod',
    name: 'qwen-7b-chat',
    deploymentMode: 'Serverless',
  } as ServingRef;

  it('sets the traffic gauge after a shift, and 0 after promote and after rollback', async () => {
    const { activities } = servingFixture(ref);
    const env = new MockActivityEnvironment();
    await env.run(activities.shiftCanaryTraffic, {
      ...action(ref, 'wf-1'),
      revision: {} as never,
      percent: 25,
      timeoutSeconds: 600,
    });
    expect(await samples('qwenops_canary_traffic_percent')).toEqual([
      { labels: { namespace: 'llm-prod', service: 'qwen-7b-chat' }, value: 25 },
    ]);
    // The shift is the start of a step: its deadline is its timeout plus the margin.
    expect(await samples('qwenops_canary_step_deadline_timestamp_seconds')).toEqual([
      {
        labels: { namespace: 'llm-prod', service: 'qwen-7b-chat', workflow_id: 'wf-1' },
        value: NOW_S + 600 + CANARY_STEP_DEADLINE_MARGIN_SECONDS,
      },
    ]);

    await env.run(activities.promoteCanary, { ...action(ref, 'wf-1'), timeoutSeconds: 600 });
    expect(await samples('qwenops_canary_traffic_percent')).toEqual([
      { labels: { namespace: 'llm-prod', service: 'qwen-7b-chat' }, value: 0 },
    ]);
    expect(await samples('qwenops_canary_step_deadline_timestamp_seconds')).toEqual([]);

    await env.run(activities.shiftCanaryTraffic, {
      ...action(ref, 'wf-2'),
      revision: {} as never,
      percent: 5,
      timeoutSeconds: 60,
    });
    expect((await samples('qwenops_canary_traffic_percent'))[0]?.value).toBe(5);
    await env.run(activities.rollbackCanary, {
      ...action(ref, 'wf-2'),
      reason: 'breach',
      timeoutSeconds: 60,
    });
    expect((await samples('qwenops_canary_traffic_percent'))[0]?.value).toBe(0);
    expect(await samples('qwenops_canary_step_deadline_timestamp_seconds')).toEqual([]);
  });

  it('leaves the gauges alone when the traffic change fails', async () => {
    const { serving, activities } = servingFixture(ref);
    serving.shiftCanaryTraffic.mockRejectedValueOnce(new Error('apiserver down'));
    const env = new MockActivityEnvironment();
    await expect(
      env.run(activities.shiftCanaryTraffic, {
        ...action(ref, 'wf-3'),
        revision: {} as never,
        percent: 50,
        timeoutSeconds: 60,
      }),
    ).rejects.toThrow(/apiserver down/);
    expect(await samples('qwenops_canary_traffic_percent')).toEqual([]);
  });

  it('records the analysis step: deadline, verdict counter, latest p-values of checks with one', async () => {
    const { activities } = servingFixture(ref, analysisResult({ verdict: 'fail' }));
    const env = new MockActivityEnvironment();
    await env.run(activities.analyseCanaryStep, analyseInput(ref, 'wf-4', 300));
    await env.run(activities.analyseCanaryStep, analyseInput(ref, 'wf-4', 300));

    expect(await samples('qwenops_canary_step_deadline_timestamp_seconds')).toEqual([
      {
        labels: { namespace: 'llm-prod', service: 'qwen-7b-chat', workflow_id: 'wf-4' },
        value: NOW_S + 300 + CANARY_STEP_DEADLINE_MARGIN_SECONDS,
      },
    ]);
    expect(await samples('qwenops_canary_analysis_verdicts_total')).toEqual([
      { labels: { namespace: 'llm-prod', service: 'qwen-7b-chat', verdict: 'fail' }, value: 2 },
    ]);
    // Only the check with a one-sided p; the error-rate check has other p-values, ttft none.
    expect(await samples('qwenops_canary_judge_p_value')).toEqual([
      { labels: { namespace: 'llm-prod', service: 'qwen-7b-chat', metric: 'latency-p99' }, value: 0.42 },
    ]);

    // Releasing the serving target (the end of every rollout, failed ones included) clears the deadline.
    await env.run(activities.releaseServingTarget, action(ref, 'wf-4'));
    expect(await samples('qwenops_canary_step_deadline_timestamp_seconds')).toEqual([]);
  });

  it('counts an inconclusive step when the canary has no endpoint', async () => {
    const { serving, activities } = servingFixture(ref);
    serving.endpoints.mockReturnValueOnce({} as never);
    const env = new MockActivityEnvironment();
    const result = (await env.run(
      activities.analyseCanaryStep,
      analyseInput(ref, 'wf-5', 60),
    )) as AnalysisResult;
    expect(result.verdict).toBe('inconclusive');
    expect(await samples('qwenops_canary_analysis_verdicts_total')).toEqual([
      { labels: { namespace: 'llm-prod', service: 'qwen-7b-chat', verdict: 'inconclusive' }, value: 1 },
    ]);
    expect(await samples('qwenops_canary_judge_p_value')).toEqual([]);
  });

  it('keeps one deadline series per service: a new rollout replaces an earlier one left behind', () => {
    recordCanaryStepStarted(ref, 'wf-old', 60, NOW);
    recordCanaryStepStarted(ref, 'wf-new', 60, NOW);
    recordCanaryStepStarted({ namespace: 'llm-prod', name: 'qwen-72b-chat' }, 'wf-other', 60, NOW);
    return samples('qwenops_canary_step_deadline_timestamp_seconds').then((found) =>
      expect(found.map((s) => s.labels.workflow_id).sort()).toEqual(['wf-new', 'wf-other']),
    );
  });

  it('is in the exposition text with HELP and TYPE', async () => {
    const { activities } = servingFixture(ref);
    await new MockActivityEnvironment().run(activities.analyseCanaryStep, analyseInput(ref, 'wf-6', 120));
    const text = await metricsRegistry.getSingleMetricAsString(
      'qwenops_canary_step_deadline_timestamp_seconds',
    );
    expect(text).toContain('# TYPE qwenops_canary_step_deadline_timestamp_seconds gauge');
    expect(text).toContain(
      `qwenops_canary_step_deadline_timestamp_seconds{namespace="llm-prod",service="qwen-7b-chat",workflow_id="wf-6"} ${NOW_S + 120 + CANARY_STEP_DEADLINE_MARGIN_SECONDS}`,
    );
    expect(await metricsRegistry.getSingleMetricAsString('qwenops_canary_analysis_verdicts_total')).toContain(
      '# TYPE qwenops_canary_analysis_verdicts_total counter',
    );
  });
});

describe('knowledge re-index metrics from finishKnowledgeReindex', () => {
  const request = {
    source: { kind: 'directory' as const, path: os.tmpdir() },
    requestedBy: 'test',
    table: 'docs_kb',
  };
  const plan = { runId: 'run-1', table: 'docs_kb', mode: 'incremental' } as ReindexPlan;
  const report = {} as ReindexReport;

  function knowledgeFixture(finish: () => Promise<number>) {
    const knowledge = { indexer: () => ({ finish }) } as unknown as KnowledgeAdapters;
    return createKnowledgeActivities({ knowledge, logger: createLogger('test', 'silent') });
  }

  it('sets the last-success timestamp and the live rows when the re-index finishes', async () => {
    const activities = knowledgeFixture(async () => 1234);
    await new MockActivityEnvironment().run(activities.finishKnowledgeReindex, { request, plan, report });
    expect(await samples('qwenops_knowledge_reindex_last_success_timestamp_seconds')).toEqual([
      { labels: { knowledge_base: 'docs_kb' }, value: NOW_S },
    ]);
    expect(await samples('qwenops_knowledge_reindex_rows')).toEqual([
      { labels: { knowledge_base: 'docs_kb' }, value: 1234 },
    ]);
  });

  it('records nothing when finishing fails', async () => {
    const activities = knowledgeFixture(async () => {
      throw new Error('connection reset');
    });
    await expect(
      new MockActivityEnvironment().run(activities.finishKnowledgeReindex, { request, plan, report }),
    ).rejects.toThrow(/connection reset/);
    expect(await samples('qwenops_knowledge_reindex_last_success_timestamp_seconds')).toEqual([]);
    expect(await samples('qwenops_knowledge_reindex_rows')).toEqual([]);
  });
});
