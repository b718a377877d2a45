import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPromotion } from '../../../src/cli/pipeline-client.js';
import type { ReindexReport } from '../../../src/domain/knowledge.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { SAMPLE_KNOWLEDGE_BASE_DIR } from '../../../src/knowledge/sample.js';
import { createLogger } from '../../../src/observability/logger.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { compose } from '../../../workers/compose.js';
import { MAX_HEARTBEAT_THROTTLE_INTERVAL } from '../../../workers/heartbeat-throttle.js';
import { TASK_QUEUES } from '../../../workflows/definitions.js';
import { reindexKnowledgeBase } from '../../../workflows/index.js';
import {
  type DashboardStructure,
  dashboardStructure,
  interpolate,
  panelQueries,
  readDashboard,
  typeCheckDashboard,
  variableQueries,
} from '../../support/grafana-dashboard.js';
import { type RunningPglite, startPglite } from '../../support/pglite.js';
import { MODEL, type PipelineStack, startPipelineStack } from '../../support/pipeline-stack.js';
import { freePort } from '../../support/ports.js';
import { type ManagedProcess, startProcess } from '../../support/processes.js';
import { startPrometheus, type TestPrometheus } from '../../support/prometheus.js';
import { workflowBundle } from '../../support/temporal.js';

// k8s/observability/qwen-serving-dashboard.json: the Grafana dashboard of the serving stack
// and the pipelines. Its JSON is checked against Grafana's dashboard model (the Foundation
// SDK's types, and the fields Grafana needs: see test/support/grafana-dashboard.ts), and
// every query of every panel is run against a real Prometheus scraping real processes: the
// sandbox's serving simulators (src/llm/simulator/main.ts, one per revision, found through
// the daemon's http_sd list, labelled namespace/service/revision as the PodMonitor does),
// and the /metrics of a cluster worker process and a knowledge worker process, after a real
// promotion through them (canary traffic, analysis verdicts, judge p-values, the safety
// gate's filter counters) and a real re-index of the sample knowledge base. The DCGM panels
// are the only ones allowed to be empty (no GPU here): their queries must parse and name
// DCGM metrics only.

const dashboardJson = readDashboard();
const NAMESPACE = 'llm-prod';
const SERVICE = 'qwen-7b-chat';
const KNOWLEDGE_BASE = 'qwen_knowledge';
const DCGM_PANELS = /^GPU /;

describe('the dashboard JSON', () => {
  it("satisfies the Grafana Foundation SDK's dashboard types", () => {
    expect(typeCheckDashboard(dashboardJson)).toEqual([]);
    // The check bites: a misspelt field and a wrongly typed one are both reported.
    const broken = structuredClone(dashboardJson) as { panels: Record<string, unknown>[] };
    broken.panels[1] = { ...broken.panels[1], titel: 'QPS' };
    broken.panels[2] = { ...broken.panels[2], gridPos: { h: 8, w: '8', x: 8, y: 1 } };
    const diagnostics = typeCheckDashboard(broken);
    expect(diagnostics.join('\n')).toMatch(/titel\W+ does not exist in type 'PrometheusPanelJson'/);
    expect(diagnostics.join('\n')).toMatch(/Type 'string' is not assignable to type 'number'/);
  }, 120_000);

  it('has what Grafana needs to load it, and the production plan panels', () => {
    const d = dashboardStructure.parse(dashboardJson);
    const titles = d.panels.map((p) => p.title);
    for (const expected of [
      /QPS/,
      /E2E latency P50 \/ P99 by model version/,
      /TTFT/,
      /GPU memory/,
      /GPU utilisation/,
      /Filter interception rate/,
      /Canary traffic/,
      /verdicts/,
      /p-value/,
      /Re-index freshness/,
      /rows/,
    ]) {
      expect(titles.some((t) => expected.test(t))).toBe(true);
    }
    const exprs = panelQueries(d).map((q) => q.expr);
    for (const metric of [
      'vllm:request_success_total',
      'vllm:e2e_request_latency_seconds_bucket',
      'vllm:time_to_first_token_seconds_bucket',
      'DCGM_FI_DEV_FB_USED',
      'DCGM_FI_DEV_FB_FREE',
      'DCGM_FI_DEV_GPU_UTIL',
      'qwenops_filter_interceptions_total',
      'qwenops_filter_checks_total',
      'qwenops_canary_traffic_percent',
      'qwenops_canary_analysis_verdicts_total',
      'qwenops_canary_judge_p_value',
      'qwenops_knowledge_reindex_last_success_timestamp_seconds',
      'qwenops_knowledge_reindex_rows',
    ]) {
      expect(exprs.some((e) => e.includes(metric))).toBe(true);
    }
    expect(variableQueries(d).map((v) => v.name)).toEqual([
      'namespace',
      'service',
      'model_name',
      'knowledge_base',
    ]);
  });
});

// ---------------------------------------------------------------------------------------

let stack: PipelineStack;
let db: RunningPglite;
let prometheus: TestPrometheus;
let inProcess: { stop(): Promise<void> } | undefined;
const workerProcesses: ManagedProcess[] = [];

async function startWorkerProcess(
  name: string,
  module: string,
  env: Record<string, string>,
): Promise<{ process: ManagedProcess; metrics: string }> {
  const metrics = `127.0.0.1:${await freePort()}`;
  const worker = startProcess(name, nodeEntrypoint(module), {
    env: { ...stack.env, ...env, QWENOPS_METRICS_ADDRESS: metrics, QWENOPS_LOG_LEVEL: 'info' },
  });
  workerProcesses.push(worker);
  return { process: worker, metrics };
}

async function waitReady(worker: ManagedProcess): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!worker.output().includes('workers running')) {
    if (worker.child.exitCode !== null)
      throw new Error(`${worker.name} exited:\n${worker.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`${worker.name} not ready:\n${worker.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The workflow worker and the GPU-Job activities, in this process (their metrics are not on the dashboard). */
async function startInProcessWorkers(): Promise<{ stop(): Promise<void> }> {
  const composition = await compose(stack.config, createLogger('test-worker', stack.config.log.level));
  const bundle = await workflowBundle();
  const workers = await Promise.all(
    (['default', 'gpuJobs'] as const).map((queue) =>
      Worker.create({
        connection: stack.temporal.nativeConnection,
        taskQueue: TASK_QUEUES[queue],
        activities: composition.activitiesFor(queue),
        workflowBundle: queue === 'default' ? bundle : undefined,
        maxHeartbeatThrottleInterval: MAX_HEARTBEAT_THROTTLE_INTERVAL,
      }),
    ),
  );
  const running = workers.map((w) => w.run());
  return {
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
      await composition.close();
    },
  };
}

interface PromResponse<T> {
  status: string;
  data: T;
  error?: string;
}

async function prom<T>(p: string, params: Record<string, string | string[]>): Promise<PromResponse<T>> {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) query.append(k, one);
  const response = await fetch(`${prometheus.url}${p}?${query}`);
  return (await response.json()) as PromResponse<T>;
}

/** Metric names an expression selects (from Prometheus' own parser). */
async function metricNames(expr: string): Promise<string[]> {
  const parsed = await prom<unknown>('/api/v1/parse_query', { query: expr });
  if (parsed.status !== 'success') throw new Error(`${expr} does not parse: ${parsed.error}`);
  const names = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (node && typeof node === 'object') {
      const n = node as Record<string, unknown>;
      if ((n.type === 'vectorSelector' || n.type === 'matrixSelector') && typeof n.name === 'string')
        names.add(n.name);
      Object.values(n).forEach(walk);
    }
  };
  walk(parsed.data);
  return [...names];
}

describe('every panel against a real Prometheus', () => {
  let servedModelName: string;

  beforeAll(async () => {
    [stack, db] = await Promise.all([startPipelineStack({ revisions: ['master', 'v1.1'] }), startPglite()]);
    const knowledgeEnv = {
      QWENOPS_DATABASE_URL: db.url,
      QWENOPS_KNOWLEDGE_ROOTS: path.dirname(SAMPLE_KNOWLEDGE_BASE_DIR),
    };
    const [cluster, knowledge] = await Promise.all([
      startWorkerProcess('cluster-worker', 'workers/cluster', knowledgeEnv),
      startWorkerProcess('knowledge-worker', 'workers/knowledge', knowledgeEnv),
    ]);
    prometheus = await startPrometheus({
      scrapeConfigs: [
        {
          // The serving revisions, labelled as k8s/base/serving/vllm-podmonitor.yaml labels them.
          job_name: 'vllm',
          scrape_interval: '1s',
          scrape_timeout: '1s',
          http_sd_configs: [{ url: `${stack.sandbox.url}/prometheus/targets`, refresh_interval: '1s' }],
        },
        {
          // The workers: honor_labels keeps the serving target's namespace/service labels.
          job_name: 'qwenops-workers',
          scrape_interval: '1s',
          scrape_timeout: '1s',
          honor_labels: true,
          static_configs: [
            { targets: [cluster.metrics], labels: { queue: 'cluster' } },
            { targets: [knowledge.metrics], labels: { queue: 'knowledge' } },
          ],
        },
      ],
    });
    [inProcess] = await Promise.all([
      startInProcessWorkers(),
      waitReady(cluster.process),
      waitReady(knowledge.process),
    ]);
  });

  afterAll(async () => {
    await inProcess?.stop().catch(() => undefined);
    for (const w of workerProcesses) await w.kill('SIGTERM');
    await prometheus?.stop();
    await db?.stop();
    await stack?.stop();
  });

  it('returns data for every panel query after a promotion and a re-index through the workers', async () => {
    const spec = (revision: string) =>
      parsePromotionSpec({
        model: MODEL,
        hub: { provider: 'modelscope', revision },
        approvals: { beforeCanary: false, beforePromote: false },
        canary: {
          steps: [50, 100],
          analysisWindowSeconds: 2,
          minSamples: 8,
          probe: { requestsPerSecond: 10, maxTokens: 8, concurrency: 8 },
          // About the dashboard, not latency on a busy host: the canary must pass.
          slo: { p99LatencyMs: 10_000, maxLatencyRatioVsStable: 20 },
        },
        loadTest: { durationSeconds: 2, requestsPerSecond: 5, maxTokens: 16 },
        // The safety gate (default thresholds) runs the prompt sets through the guard on the
        // cluster worker: the filter counters' series.
        execution: { heartbeatTimeoutSeconds: 10, gpuJobTimeoutSeconds: 120 },
        requestedBy: 'dashboard-test',
      });
    const reindex = stack.temporal.client.workflow.execute(reindexKnowledgeBase, {
      taskQueue: TASK_QUEUES.default,
      workflowId: `dashboard-reindex-${Date.now()}`,
      args: [
        {
          request: {
            table: KNOWLEDGE_BASE,
            source: { kind: 'directory', path: SAMPLE_KNOWLEDGE_BASE_DIR },
            requestedBy: 'dashboard-test',
          },
        },
      ],
    });
    // The first release has no stable revision to be judged against; the second one has.
    for (const revision of ['master', 'v1.1']) {
      const handle = await startPromotion(stack.temporal.client, spec(revision), `dashboard-${revision}`);
      const result = (await handle.result()) as { outcome: string };
      expect(result.outcome).toBe('promoted');
    }
    const report = (await reindex) as ReindexReport;
    expect(report.outcome).toBe('succeeded');

    // Real traffic through the service's proxy, so the rates over the last minute are fresh.
    const service = await stack.sandbox.service(NAMESPACE, SERVICE);
    if (!service) throw new Error('the promoted service is gone');
    servedModelName = service.revisions[0]?.servedModelName as string;
    for (let i = 0; i < 20; i++) {
      const response = await fetch(`${service.proxyUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: servedModelName,
          messages: [{ role: 'user', content: `dashboard ${i}` }],
          max_tokens: 8,
        }),
      });
      expect(response.status).toBe(200);
      await response.text();
    }

    const d: DashboardStructure = dashboardStructure.parse(dashboardJson);
    const values = {
      datasource: 'prometheus',
      namespace: NAMESPACE,
      service: SERVICE,
      model_name: servedModelName,
      knowledge_base: KNOWLEDGE_BASE,
    };
    const builtins = { rateInterval: '1m', range: '15m' };

    // The template variables' label_values(metric{...}, label) offer the values used here.
    for (const v of variableQueries(d)) {
      const match = /^label_values\((.+),\s*(\w+)\)$/.exec(interpolate(v.query, values, builtins));
      if (!match) throw new Error(`${v.name}: not a label_values() query: ${v.query}`);
      const [, selector, label] = match as unknown as [string, string, string];
      const want = values[v.name as keyof typeof values];
      const deadline = Date.now() + 60_000;
      for (;;) {
        const got = await prom<string[]>(`/api/v1/label/${label}/values`, { 'match[]': selector });
        if (got.status === 'success' && got.data.includes(want)) break;
        if (Date.now() > deadline)
          throw new Error(`variable ${v.name} does not offer ${want}: ${JSON.stringify(got)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }

    const queries = panelQueries(d);
    const panelTitles = new Set(queries.map((q) => q.panel));
    expect([...panelTitles].filter((t) => DCGM_PANELS.test(t))).toHaveLength(2);
    const pending = new Map<string, string>();
    for (const q of queries) {
      const expr = interpolate(q.expr, values, builtins);
      const names = await metricNames(expr); // parses, or throws
      expect(names.length).toBeGreaterThan(0);
      if (DCGM_PANELS.test(q.panel)) {
        // No GPU here: the query parses and reads the DCGM exporter's metrics only.
        expect(
          names.every((n) => /^DCGM_FI_DEV_/.test(n)),
          `${q.panel} ${q.refId}: ${names}`,
        ).toBe(true);
        continue;
      }
      expect(names.some((n) => /^DCGM_/.test(n))).toBe(false);
      pending.set(`${q.panel} (${q.refId})`, expr);
    }
    // Each query, as Grafana sends it, returns at least one sample (polled: the last scrape
    // may be a second behind).
    const deadline = Date.now() + 60_000;
    while (pending.size > 0 && Date.now() < deadline) {
      for (const [what, expr] of pending) {
        const result = await prom<{ result: unknown[] }>('/api/v1/query', { query: expr });
        expect(result.status, `${what}: ${result.error}`).toBe('success');
        if (result.data.result.length > 0) pending.delete(what);
      }
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 1000));
    }
    const empty = [...pending].map(([what, expr]) => `${what}: ${expr}`);
    expect(empty, 'panel queries without a sample').toEqual([]);
  });
});
