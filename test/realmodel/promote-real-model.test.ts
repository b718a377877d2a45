import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VLLM_METRICS } from '../../src/analysis/prometheus.js';
import { loadConfig, type QwenopsConfig } from '../../src/config/config.js';
import type { AnalysisResult } from '../../src/domain/analysis.js';
import type { EvaluationResult, QuantizeResult } from '../../src/domain/job-results.js';
import type { PromotionSpecInput } from '../../src/domain/promotion-spec.js';
import type { PipelineStatus } from '../../src/domain/status.js';
import {
  TINY_MODEL_ID,
  TINY_MODEL_QUALITY_GATES,
  tinyModelDir,
  tinyModelServing,
} from '../../src/hub/tiny-model.js';
import type { PromotionComparison } from '../../src/loadtest/promotion-comparison.js';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { createArtifactStore } from '../../src/storage/index.js';
import type { ArtifactStore } from '../../src/storage/port.js';
import { statusQuery, TASK_QUEUES } from '../../workflows/definitions.js';
import { type PipelineStack, startInProcessWorkers, startPipelineStack } from '../support/pipeline-stack.js';
import { startPrometheus, type TestPrometheus } from '../support/prometheus.js';
import { startSimulator } from '../support/simulator.js';

// The real model path end to end: promoteModel on the sandbox's `vllm` engine with the tiny
// Qwen2 model. Download from a ModelScope-shaped hub into MinIO, AWQ with llm-compressor,
// evaluation with transformers (perplexity, multiple choice, throughput, memory), vLLM for
// CPU serving baseline and candidate behind the traffic split, canary analysis through a
// real Prometheus scraping the vLLM servers it discovers from the sandbox, a load test on
// real vLLM, promotion. Then a destroyed candidate (2-bit round-to-nearest) that must stop
// at the quality gate on measured numbers, and a canary slowed down by the mesh's fault
// injection that must roll back. Nothing here is simulated; nothing asserts wall time.

const SERVICE = { namespace: 'llm-test', name: 'tiny-zh' };

let stack: PipelineStack;
let prometheus: TestPrometheus;
let store: ArtifactStore;
let workers: { stop(): Promise<void> } | undefined;

const tinyModelGates = TINY_MODEL_QUALITY_GATES;

function spec(overrides: Partial<PromotionSpecInput> = {}): PromotionSpecInput {
  return {
    model: TINY_MODEL_ID,
    hub: { provider: 'modelscope', revision: 'master' },
    quantization: { method: 'awq', bits: 4, groupSize: 128, calibrationSamples: 32 },
    qualityGates: tinyModelGates,
    serving: { namespace: SERVICE.namespace, ...tinyModelServing(SERVICE.name, 2048) },
    canary: {
      steps: [50, 100],
      analysisWindowSeconds: 8,
      minSamples: 6,
      probe: { requestsPerSecond: 2, maxTokens: 8, concurrency: 4, ignoreEos: true },
      // Wide: these runs are about the real engines being wired, not about a laptop's p99.
      slo: { p99LatencyMs: 8000, maxLatencyRatioVsStable: 10, maxErrorRatePct: 5 },
    },
    approvals: { beforeCanary: false, beforePromote: false },
    loadTest: {
      enabled: true,
      mode: 'closed',
      concurrency: 2,
      durationSeconds: 8,
      maxTokens: 16,
      // A base model may end a reply at once; fixed lengths keep the figures comparable.
      ignoreEos: true,
      slo: { p99TtftMs: 5000, p99TpotMs: 2000, maxErrorRatePct: 1 },
    },
    execution: { heartbeatTimeoutSeconds: 60, gpuJobTimeoutSeconds: 900 },
    requestedBy: 'realmodel-test',
    ...overrides,
  };
}

function workerConfig(analysis: 'probe' | 'prometheus'): QwenopsConfig {
  return loadConfig({
    env: {
      ...stack.env,
      QWENOPS_ANALYSIS: analysis,
      QWENOPS_PROMETHEUS_URL: prometheus.url,
      QWENOPS_PROMETHEUS_SCRAPE_INTERVAL_SECONDS: '1',
    },
  });
}

async function useWorkers(analysis: 'probe' | 'prometheus'): Promise<void> {
  await workers?.stop();
  workers = await startInProcessWorkers(stack, workerConfig(analysis));
}

function start(input: PromotionSpecInput): Promise<WorkflowHandle> {
  return stack.temporal.client.workflow.start('promoteModel', {
    args: [input],
    taskQueue: TASK_QUEUES.default,
    workflowId: `realmodel-${randomUUID()}`,
  });
}

async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const error = await handle.result().then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const cause = (error as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

interface Report {
  status: PipelineStatus;
  quantization?: QuantizeResult;
  evaluation?: EvaluationResult;
  comparison?: PromotionComparison;
  analyses: AnalysisResult[];
  loadTest?: { passed: boolean; summary: Record<string, number> };
}

async function reportOf(status: PipelineStatus): Promise<Report> {
  expect(status.reportUri).toBeDefined();
  return store.getJson<Report>(store.keyFromUri(status.reportUri as string));
}

async function serviceView() {
  const view = await stack.sandbox.service(SERVICE.namespace, SERVICE.name);
  if (!view) throw new Error(`service ${SERVICE.namespace}/${SERVICE.name} not found`);
  return view;
}

beforeAll(async () => {
  const model = tinyModelDir(); // fails, naming the setup step, when the model was never built
  stack = await startPipelineStack({
    engine: 'vllm',
    models: [{ model: TINY_MODEL_ID, revision: 'master', sourceDir: model }],
  });
  prometheus = await startPrometheus(
    { httpSdUrl: `${stack.sandbox.url}/prometheus/targets` },
    { scrapeIntervalSeconds: 1 },
  );
  store = await createArtifactStore(stack.config.store);
});

afterAll(async () => {
  await workers?.stop();
  await prometheus?.stop();
  await stack?.stop();
});

describe('promoteModel on real engines (vLLM for CPU, llm-compressor, transformers)', () => {
  let stableStorageUri: string | undefined;

  it('promotes the AWQ candidate of the tiny Qwen2 model with measured, not simulated, figures', async () => {
    await useWorkers('prometheus');
    const handle = await start(spec());
    const result = (await handle.result()) as { outcome: string; status: PipelineStatus };
    expect(result.outcome).toBe('promoted');
    const report = await reportOf(result.status);

    const q = report.quantization as QuantizeResult;
    expect(q).toMatchObject({ simulated: false, method: 'awq', bits: 4, groupSize: 128, device: 'cpu' });
    expect(q.tool.name).toBe('llmcompressor');
    expect(q.sizeBytes).toBeLessThan(q.originalSizeBytes);

    const e = report.evaluation as EvaluationResult;
    expect(e).toMatchObject({ simulated: false, device: 'cpu', samples: 200 });
    expect(e.baseline.perplexity?.value).toBeLessThan(8192 / 10); // far below a random model
    expect(e.qualityDelta).toMatchObject({ metric: 'accuracy', items: 200 });
    expect(e.perplexityDelta?.highPct).toBeLessThanOrEqual(tinyModelGates.maxPerplexityIncreasePct);
    expect(report.comparison?.comparable).toBe(false);
    expect(report.comparison?.caveat).toMatch(/not comparable/);

    // Both canary analyses read vLLM's own histograms through Prometheus.
    expect(report.analyses).toHaveLength(2);
    for (const analysis of report.analyses) {
      expect(analysis).toMatchObject({ provider: 'prometheus', verdict: 'pass' });
      expect(analysis.canary?.latency?.count).toBeGreaterThan(0);
      expect(analysis.stable?.latency?.count).toBeGreaterThan(0);
    }
    expect(report.loadTest?.passed).toBe(true);
    expect(report.loadTest?.summary.requests).toBeGreaterThan(0);

    const view = await serviceView();
    expect(view.status.stableStorageUri).toBe(q.outputUri);
    expect(view.revisions).toHaveLength(1);
    expect(view.revisions[0]).toMatchObject({ engine: 'vllm', healthy: true, role: 'stable' });
    stableStorageUri = view.status.stableStorageUri;
  });

  it('serves every vLLM metric the analysis, the reports and the simulator use, under its current name and type', async () => {
    const [stable] = (await serviceView()).revisions;
    const types = (text: string) =>
      new Map(
        [...text.matchAll(/^# TYPE (vllm:[a-z0-9_:]+) (\w+)$/gm)].map((m) => [
          m[1] as string,
          m[2] as string,
        ]),
      );
    const real = types(await (await fetch(`${stable?.serverUrl}/metrics`)).text());
    // Names the code reads, except the older names it falls back to for older vLLMs.
    const fallbacks = new Set<string>(Object.values(VLLM_METRICS).flatMap((names) => names.slice(1)));
    const sources = await Promise.all(
      ['src/analysis/prometheus.ts', 'src/llm/simulator/metrics.ts', 'src/llm/simulator/options.ts'].map(
        (p) => readFile(path.join(repoRoot, p), 'utf8'),
      ),
    );
    const used = new Set(sources.join('\n').match(/vllm:[a-z0-9_]+/g) ?? []);
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) if (!fallbacks.has(name)) expect([...real.keys()]).toContain(name);
    for (const names of Object.values(VLLM_METRICS)) expect(real.has(names[0])).toBe(true);
    // The simulator stands in for vLLM elsewhere: each family it exports exists here, same type.
    const simulator = await startSimulator();
    try {
      const simulated = types(await (await fetch(`${simulator.url}/metrics`)).text());
      expect(simulated.size).toBeGreaterThan(5);
      for (const [name, type] of simulated) expect({ name, type: real.get(name) }).toEqual({ name, type });
    } finally {
      await simulator.close();
    }
  });

  it('stops a destroyed candidate (2-bit round-to-nearest) at the quality gate on measured numbers', async () => {
    const handle = await start(
      spec({ quantization: { method: 'rtn', bits: 2, groupSize: 128, zeroPoint: false } }),
    );
    const failure = await failureOf(handle);
    expect(failure.type).toBe('QualityGateFailed');
    expect(failure.message).toMatch(/perplexity increase \d+(\.\d+)?% \(95% interval/);
    const report = await reportOf(await handle.query(statusQuery));
    expect(report.evaluation?.simulated).toBe(false);
    expect(report.evaluation?.perplexityDelta?.lowPct).toBeGreaterThan(
      tinyModelGates.maxPerplexityIncreasePct,
    );
    // Production never saw it: same stable revision, no canary, the Jobs cleaned up.
    const view = await serviceView();
    expect(view.status.stableStorageUri).toBe(stableStorageUri);
    expect(view.revisions.map((r) => r.role)).toEqual(['stable']);
    const jobs = await stack.sandbox.jobs();
    expect(jobs.filter((j) => j.spec.workflowId === handle.workflowId)).toEqual([]);
  });

  it('rolls back a canary the mesh slows down by 15 s, seen by the probe analysis', async () => {
    await useWorkers('probe');
    const ref = { ...SERVICE, deploymentMode: 'Serverless' as const };
    await stack.sandbox.backend.setFaults(ref, {
      canary: { delayMs: 15_000, delayPercent: 100, abortPercent: 0, abortStatus: 503 },
    });
    try {
      const handle = await start(spec({ quantization: { method: 'rtn', bits: 4, groupSize: 128 } }));
      const failure = await failureOf(handle);
      expect(failure.type).toBe('RolledBack');
      expect(failure.message).toMatch(/canary p99 E2E .* over the 8000 ms SLO|p99 E2E ratio/);
    } finally {
      await stack.sandbox.backend.clearFaults(ref);
    }
    const view = await serviceView();
    expect(view.status.stableStorageUri).toBe(stableStorageUri);
    expect(view.revisions.map((r) => r.role)).toEqual(['stable']);
    expect(view.history.at(-1)?.outcome).toBe('rolled-back');
  });
});
