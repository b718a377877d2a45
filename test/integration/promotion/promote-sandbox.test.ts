import { WorkflowFailedError } from '@temporalio/client';
import { type ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejudgeAnalyses } from '../../../src/analysis/rejudge.js';
import { readAuditRecords } from '../../../src/audit/audit-log.js';
import { analysesFromHistory } from '../../../src/cli/analysis-history.js';
import { promotionWorkflowId, startPromotion } from '../../../src/cli/pipeline-client.js';
import { type PromotionSpecInput, parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { filterChecks } from '../../../src/observability/metrics.js';
import type { SafetyGateReport } from '../../../src/services/safety-gate.js';
import { abortUpdate, statusQuery } from '../../../workflows/definitions.js';
import {
  MODEL,
  type PipelineStack,
  startInProcessWorkers,
  startPipelineStack,
} from '../../support/pipeline-stack.js';

// promoteModel on the real dev server with the production activities: the ModelScope-shaped
// hub, real MinIO, and real sandbox processes (Jobs, serving simulators, traffic proxy).

let stack: PipelineStack;
let workers: { stop(): Promise<void> };

beforeAll(async () => {
  stack = await startPipelineStack({ revisions: ['master', 'v1.1'] });
  workers = await startInProcessWorkers(stack);
});

afterAll(async () => {
  await workers?.stop();
  await stack?.stop();
});

const fast = (overrides: Partial<PromotionSpecInput> = {}): PromotionSpecInput => ({
  model: MODEL,
  hub: { provider: 'modelscope', revision: 'master' },
  approvals: { beforeCanary: false, beforePromote: false },
  canary: {
    steps: [25, 100],
    analysisWindowSeconds: 2,
    minSamples: 8,
    probe: { requestsPerSecond: 10, maxTokens: 8, concurrency: 8 },
    // Wide SLOs: this test is about the pipeline, not about a 300 ms p99 on two busy cores;
    // the faulted canary below is 3 s slower than its stable revision.
    slo: { p99LatencyMs: 1500, maxLatencyRatioVsStable: 4 },
  },
  loadTest: { durationSeconds: 2, requestsPerSecond: 5, maxTokens: 16 },
  execution: { heartbeatTimeoutSeconds: 10, gpuJobTimeoutSeconds: 120 },
  requestedBy: 'integration-test',
  ...overrides,
});

describe('promoteModel on the dev server with sandbox processes and MinIO', () => {
  it('promotes the AWQ candidate: artifacts in MinIO, Jobs launched once, proxy at 100 % on the new revision', async () => {
    const spec = parsePromotionSpec(fast());
    const handle = await startPromotion(stack.temporal.client, spec);
    expect(handle.workflowId).toBe(promotionWorkflowId(spec));
    const result = (await handle.result()) as { outcome: string; revision: string; reportUri: string };
    expect(result.outcome).toBe('promoted');
    expect(result.reportUri).toMatch(/^s3:\/\/.+\/report\.json$/);

    const store = stack.minio.store;
    const original = await store.readManifest('models/qwen/Qwen-7B-Chat/master/original');
    expect(original?.files.map((f) => f.path).sort()).toEqual(
      stack.hub.models[0]?.files.map((f) => f.path).sort(),
    );
    for (const file of original?.files ?? []) {
      const expected = stack.hub.models[0]?.files.find((f) => f.path === file.path);
      expect(file.sha256).toBe(expected?.sha256);
    }
    const status = await handle.query(statusQuery);
    const candidateKey = store.keyFromUri(status.artifacts.candidate as string);
    const quantized = await store.readManifest(candidateKey);
    expect(quantized?.files.some((f) => f.path.endsWith('.safetensors'))).toBe(true);
    const report = await store.getJson<{
      status: { outcome: string };
      comparison: { rows: unknown[] };
      safetyGate: SafetyGateReport;
    }>(store.keyFromUri(result.reportUri));
    expect(report.status.outcome).toBe('promoted');
    expect(report.comparison.rows.length).toBeGreaterThan(0);

    // The safety gate: the candidate served on its own, the shipped prompt sets through the
    // guard and the candidate, the rates with their counts, the validation service gone.
    const gate = report.safetyGate;
    expect(gate.passed).toBe(true);
    expect(gate.promptSet.name).toBe('tc260-sample');
    expect(gate.tally.shouldRefuse).toMatchObject({ prompts: 40, refused: 40 });
    expect(gate.tally.normal).toMatchObject({ prompts: 40, refused: 0 });
    expect(gate.verdict.checks.map((c) => c.rate)).toEqual([1, 0]);
    const outcomes = await store.getJson<{ outcomes: Array<{ refusedBy?: string; answerExcerpt?: string }> }>(
      store.keyFromUri(gate.resultUri),
    );
    expect(outcomes.outcomes).toHaveLength(80);
    // Every normal prompt reached the candidate and got an answer back.
    expect(outcomes.outcomes.slice(40).every((o) => !o.refusedBy && (o.answerExcerpt ?? '').length > 0)).toBe(
      true,
    );
    expect(status.stages.find((s) => s.name === 'validate')?.detail).toContain(
      'safety gate: should-refuse refusal rate 100.0% (40/40',
    );
    expect(gate.servedBy).not.toBe(result.revision);
    const validationServices = (await stack.sandbox.services()).filter(
      (s) => s.status.namespace === 'llm-validation',
    );
    expect(validationServices).toEqual([]);
    const inputChecks = (await filterChecks.get()).values.find((v) => v.labels.stage === 'input');
    expect(inputChecks?.value ?? 0).toBeGreaterThanOrEqual(80);

    const jobs = await stack.sandbox.jobs();
    expect(jobs.map((j) => [j.spec.template, j.launches, j.status.phase]).sort()).toEqual([
      ['evaluate', 1, 'Succeeded'],
      ['quantize', 1, 'Succeeded'],
    ]);
    const service = await stack.sandbox.service('llm-prod', 'qwen-7b-chat');
    expect(service?.status.canaryPercent).toBeUndefined();
    expect(service?.status.latestRolledoutRevision).toBe(result.revision);
    expect(service?.status.stableStorageUri).toBe(status.artifacts.candidate);
    expect(service?.revisions.filter((r) => r.weight > 0).map((r) => [r.name, r.weight])).toEqual([
      [result.revision, 100],
    ]);

    const audit = await readAuditRecords(store);
    const actions = audit.filter((r) => r.workflowId === handle.workflowId).map((r) => r.action);
    expect(actions).toEqual(
      expect.arrayContaining([
        'artifact.download',
        'job.create',
        'serving.create',
        'serving.delete',
        'serving.shift-traffic',
        'serving.promote',
      ]),
    );
    expect(actions.filter((a) => a === 'job.create')).toHaveLength(2);
    expect(JSON.stringify(audit)).not.toContain(stack.minio.secretKey);
  });

  it('rolls a latency-faulted canary back by itself, restoring the proxy to the stable revision', async () => {
    const before = await stack.sandbox.service('llm-prod', 'qwen-7b-chat');
    const stableRevision = before?.status.latestRolledoutRevision;
    const spec = parsePromotionSpec(
      fast({
        hub: { provider: 'modelscope', revision: 'v1.1' },
        serving: { env: { QWENOPS_SIM_EXTRA_LATENCY_MS: '3000' } },
      }),
    );
    const handle = await startPromotion(stack.temporal.client, spec);
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(failure.type).toBe('RolledBack');
    expect(failure.message).toMatch(/canary analysis failed at 25% traffic/);

    const status = await handle.query(statusQuery);
    expect(status.outcome).toBe('rolled_back');
    expect(status.compensations[0]).toEqual({ name: 'rollbackCanary', state: 'succeeded' });
    // The verdict carries its statistics, and the samples stay in history to be judged again
    // (qwenops analysis rejudge): thresholds loose enough to wave a +3 s canary through flip it.
    expect(status.lastAnalysis?.checks.find((c) => c.metric === 'e2e_vs_stable')?.statistics?.p).toBeLessThan(
      0.01,
    );
    const { analyses } = await analysesFromHistory((await handle.fetchHistory()).events ?? []);
    expect(analyses.at(-1)?.verdict).toBe('fail');
    const loose = rejudgeAnalyses(analyses, {
      p99LatencyMs: 600_000,
      minLatencyEffectRatio: 100,
      maxLatencyRatioVsStable: 1000,
    });
    expect(loose.rows.at(-1)).toMatchObject({ before: 'fail', after: 'pass', flipped: true });
    const service = await stack.sandbox.service('llm-prod', 'qwen-7b-chat');
    expect(service?.status.canaryPercent).toBeUndefined();
    expect(service?.status.latestRolledoutRevision).toBe(stableRevision);
    expect(service?.revisions.map((r) => [r.name, r.role, r.weight])).toEqual([
      [stableRevision, 'stable', 100],
    ]);
    expect(service?.history.some((h) => h.outcome === 'rolled-back')).toBe(true);
    const rejected = await stack.minio.store.stat(
      `${stack.minio.store.keyFromUri(status.artifacts.candidate as string)}/REJECTED.json`,
    );
    expect(rejected).toBeDefined();
  });

  // Abort and cancellation while a traffic shift waits for a slow canary to become ready:
  // afterwards the cluster itself (the sandbox proxy's weights) serves the stable only.
  for (const ending of ['abort', 'cancel'] as const) {
    it(`${ending} mid-shift: the proxy ends on the stable revision only, as the outcome says`, async () => {
      const before = await stack.sandbox.service('llm-prod', 'qwen-7b-chat');
      const stableRevision = before?.status.latestRolledoutRevision;
      const stableUri = before?.status.stableStorageUri;
      const spec = parsePromotionSpec(
        fast({
          hub: { provider: 'modelscope', revision: 'v1.1' },
          serving: { env: { QWENOPS_SIM_STARTUP_DELAY_MS: '60000' } },
        }),
      );
      const handle = await startPromotion(stack.temporal.client, spec, `${ending}-mid-shift-${Date.now()}`);
      // The canary revision exists (still starting) and the shift is waiting for it.
      const deadline = Date.now() + 90_000;
      for (;;) {
        const service = await stack.sandbox.service('llm-prod', 'qwen-7b-chat');
        const known = new Set(before?.revisions.map((r) => r.name));
        if (service?.revisions.some((r) => r.role === 'canary' && !known.has(r.name))) break;
        if (Date.now() > deadline) throw new Error('the canary never appeared');
        await new Promise((r) => setTimeout(r, 200));
      }
      if (ending === 'abort') {
        await handle.executeUpdate(abortUpdate, { args: [{ by: 'oncall', reason: 'wrong build' }] });
      } else {
        await handle.cancel();
      }
      const err = await handle.result().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const cause = (err as WorkflowFailedError).cause;
      if (ending === 'abort') expect((cause as ApplicationFailure).type).toBe('Aborted');
      else expect(cause).toBeInstanceOf(CancelledFailure);
      expect((await handle.describe()).status.name).toBe(ending === 'abort' ? 'FAILED' : 'CANCELLED');

      const status = await handle.query(statusQuery);
      expect(status.outcome).toBe('aborted');
      expect(status.compensations[0]).toEqual({ name: 'rollbackCanary', state: 'succeeded' });
      // It ended while the shift still waited for the canary: no analysis ever ran.
      expect(status.analyses).toBe(0);
      expect(status.traffic).toMatchObject({ stableRevision, canaryPercent: 0 });
      const service = await stack.sandbox.service('llm-prod', 'qwen-7b-chat');
      expect(service?.status.canaryPercent).toBeUndefined();
      expect(service?.status.latestRolledoutRevision).toBe(stableRevision);
      expect(service?.status.stableStorageUri).toBe(stableUri);
      expect(service?.status.canaryStorageUri).toBeUndefined();
      // The canary that was still starting is gone, not merely without traffic.
      expect(service?.revisions.map((r) => [r.name, r.role, r.weight])).toEqual([
        [stableRevision, 'stable', 100],
      ]);
    });
  }
});
