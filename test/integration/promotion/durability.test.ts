import type { WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPromotion } from '../../../src/cli/pipeline-client.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import type { PipelineStatus } from '../../../src/domain/status.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { statusQuery } from '../../../workflows/definitions.js';
import { MODEL, type PipelineStack, startPipelineStack } from '../../support/pipeline-stack.js';
import { type ManagedProcess, startProcess } from '../../support/processes.js';

// The worker process is SIGKILLed mid-quantize and again mid-canary; a new worker process
// picks the promotion up. The sandbox cluster (like a real one) keeps running, so the test
// can check that each stage's Job was launched exactly once and that the proxy's traffic
// split ends consistent with what the workflow reports.

let stack: PipelineStack;
const workers: ManagedProcess[] = [];

beforeAll(async () => {
  stack = await startPipelineStack({ jobSeconds: '5' });
});

afterAll(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await stack?.stop();
});

async function startWorkerProcess(): Promise<ManagedProcess> {
  const worker = startProcess(`worker-${workers.length + 1}`, nodeEntrypoint('workers/all-in-one'), {
    env: { ...stack.env, QWENOPS_LOG_LEVEL: 'info' },
  });
  workers.push(worker);
  const deadline = Date.now() + 120_000;
  while (!worker.output().includes('workers running')) {
    if (worker.child.exitCode !== null)
      throw new Error(`worker exited early:\n${worker.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`worker not ready:\n${worker.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return worker;
}

async function waitFor(
  handle: WorkflowHandle,
  what: string,
  predicate: (s: PipelineStatus) => Promise<boolean> | boolean,
) {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const status = await handle.query(statusQuery).catch(() => undefined);
    if (status && (await predicate(status))) return status;
    if (status && status.outcome !== 'running')
      throw new Error(`ended (${status.outcome}: ${status.reason}) before ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(status)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('durability: the worker is killed mid-quantize and mid-canary', () => {
  it('completes the promotion with each Job launched once and a consistent traffic split', async () => {
    let worker = await startWorkerProcess();
    const spec = parsePromotionSpec({
      model: MODEL,
      hub: { provider: 'modelscope', revision: 'master' },
      approvals: { beforeCanary: false, beforePromote: false },
      canary: {
        steps: [20, 60, 100],
        analysisWindowSeconds: 4,
        minSamples: 8,
        probe: { requestsPerSecond: 8, maxTokens: 8, concurrency: 8 },
        // This test is about durability, not latency: a worker starting up (bundling the
        // workflow code) competes with the simulators for this machine's two cores.
        slo: { p99LatencyMs: 10_000, maxLatencyRatioVsStable: 20 },
      },
      loadTest: { enabled: false },
      execution: { heartbeatTimeoutSeconds: 3, gpuJobTimeoutSeconds: 300 },
      requestedBy: 'durability-test',
    });
    const handle = await startPromotion(stack.temporal.client, spec, 'durability-promotion');

    // 1. Kill while the quantize Job runs.
    await waitFor(handle, 'a running quantize Job', async (s) => {
      if (s.stage !== 'quantize') return false;
      const jobs = await stack.sandbox.jobs();
      return jobs.some((j) => j.spec.template === 'quantize' && j.status.phase === 'Running');
    });
    await worker.kill('SIGKILL');
    worker = await startWorkerProcess();

    // 2. Kill during a canary analysis, after at least one traffic shift.
    await waitFor(
      handle,
      'the canary at its second step',
      (s) => s.stage === 'canary' && s.traffic.canaryPercent >= 60,
    );
    await worker.kill('SIGKILL');
    await startWorkerProcess();

    const result = (await handle.result()) as { outcome: string; revision: string };
    expect(result.outcome).toBe('promoted');

    const jobs = await stack.sandbox.jobs();
    const launches = Object.fromEntries(jobs.map((j) => [j.spec.template, j.launches]));
    expect(launches).toEqual({ quantize: 1, evaluate: 1 });

    const status = await handle.query(statusQuery);
    const service = await stack.sandbox.service('llm-prod', 'qwen-7b-chat');
    expect(service?.status.latestRolledoutRevision).toBe(result.revision);
    expect(status.traffic).toEqual({
      stableRevision: result.revision,
      canaryRevision: undefined,
      canaryPercent: 0,
    });
    const weighted = service?.revisions.filter((r) => r.weight > 0).map((r) => [r.name, r.weight]);
    expect(weighted).toEqual([[result.revision, 100]]);
    // Every canary step shows up as one audited shift per distinct percentage, whatever was retried.
    const history = await handle.fetchHistory();
    const attempts = (history.events ?? [])
      .filter(
        (e) =>
          e.activityTaskStartedEventAttributes?.attempt && e.activityTaskStartedEventAttributes.attempt > 1,
      )
      .map((e) => e.activityTaskStartedEventAttributes?.attempt);
    expect(attempts.length).toBeGreaterThanOrEqual(1);
  });
});
