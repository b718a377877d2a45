import { randomUUID } from 'node:crypto';
import {
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  type WorkflowHandle,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { describe, expect, it, vi } from 'vitest';
import type { DecisionGate } from '../../src/domain/control.js';
import type { PromotionSpecInput } from '../../src/domain/promotion-spec.js';
import {
  abortUpdate,
  approveUpdate,
  pauseUpdate,
  rejectUpdate,
  resumeUpdate,
  setTrafficStepUpdate,
  statusQuery,
  TASK_QUEUES,
} from '../../workflows/definitions.js';
import { promoteModel } from '../../workflows/index.js';
import { FakeActivities } from '../support/fake-activities.js';
import { waitForStatus } from '../support/pipeline-status.js';
import { createTimeSkippingEnv } from '../support/temporal.js';
import { sharedFakeWorkerEnv, startFakeWorkers } from '../support/workflow-workers.js';

const shared = sharedFakeWorkerEnv();
/** The server tests talk to: the shared one, or a test's own (withFreshServer). */
let ownEnv: TestWorkflowEnvironment | undefined;
const env = () => ownEnv ?? shared.env();

/** Runs `fn` with `fake` answering every activity. */
async function withWorkers<T>(fake: FakeActivities, fn: () => Promise<T>): Promise<T> {
  shared.use(fake);
  return fn();
}

/**
 * For tests that need the server to skip hours of timers: a server of their own. The
 * time-skipping test server stops skipping for good after some update-driven endings
 * earlier in the same server (seen with abort-by-update), so these tests don't share one.
 */
async function withFreshServer<T>(fake: FakeActivities, fn: () => Promise<T>): Promise<T> {
  const own = await createTimeSkippingEnv();
  const ownWorkers = await startFakeWorkers(own, () => fake);
  ownEnv = own;
  try {
    return await fn();
  } finally {
    ownEnv = undefined;
    await ownWorkers.stop();
    await own.teardown();
  }
}

const baseSpec = (overrides: Partial<PromotionSpecInput> = {}): PromotionSpecInput => ({
  model: 'qwen/Qwen-7B-Chat',
  ...overrides,
});

function start(spec: unknown, workflowId = `promote-${randomUUID()}`) {
  return env().client.workflow.start(promoteModel, {
    args: [spec],
    taskQueue: TASK_QUEUES.default,
    workflowId,
  });
}

async function approveWhenAsked(handle: WorkflowHandle, gate: DecisionGate): Promise<void> {
  await waitForStatus(handle, (s) => s.pendingDecision?.gate === gate, `the ${gate} gate`);
  await handle.executeUpdate(approveUpdate, { args: [{ gate, by: 'tester' }] });
}

async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

const noApprovals = { approvals: { beforeCanary: false, beforePromote: false } };

describe('promoteModel', () => {
  it('promotes through every stage, passing both approval gates by update', async () => {
    const fake = new FakeActivities();
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec());
      await approveWhenAsked(handle, 'before-canary');
      await approveWhenAsked(handle, 'before-promote');
      const result = await handle.result();
      expect(result.outcome).toBe('promoted');
      expect(result.revision).toBe('svc-predictor-00002');
      expect(result.reportUri).toContain('report.json');
      const status = await handle.query(statusQuery);
      expect(status.outcome).toBe('promoted');
      expect(status.stages.every((s) => s.state === 'succeeded')).toBe(true);
      expect(status.traffic).toEqual({
        stableRevision: 'svc-predictor-00002',
        canaryRevision: undefined,
        canaryPercent: 0,
      });
      expect(status.compensations).toEqual([]);
      const description = await handle.describe();
      expect(description.searchAttributes.QwenopsOutcome).toEqual(['promoted']);
      expect(description.searchAttributes.QwenopsStage).toEqual(['report']);
      expect(description.searchAttributes.QwenopsModel).toEqual(['qwen/Qwen-7B-Chat']);
    });
    expect(fake.calls.filter((c) => c.startsWith('shiftCanaryTraffic'))).toEqual([
      'shiftCanaryTraffic:10',
      'shiftCanaryTraffic:25',
      'shiftCanaryTraffic:50',
      'shiftCanaryTraffic:100',
    ]);
    expect(fake.calls.indexOf('runLoadTest')).toBeGreaterThan(fake.calls.indexOf('analyseCanaryStep:100'));
    expect(fake.calls.indexOf('promoteCanary')).toBeGreaterThan(fake.calls.indexOf('runLoadTest'));
    expect(fake.calls).not.toContain('rollbackCanary');
  });

  it('fails the quality gate, names the breached gate and compensates newest first', async () => {
    const fake = new FakeActivities({ qualityDropPct: 2.5 });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      const failure = await failureOf(handle);
      expect(failure.type).toBe('QualityGateFailed');
      expect(failure.message).toMatch(/quality drop 2\.5% .* vs limit 1%/);
      const status = await handle.query(statusQuery);
      expect(status.outcome).toBe('failed');
      expect(status.stages.find((s) => s.name === 'validate')?.state).toBe('failed');
    });
    const evaluatedAt = fake.calls.findIndex((c) => c.startsWith('evaluateModelQuality'));
    expect(fake.calls.slice(evaluatedAt + 1)).toEqual([
      'deleteGpuJob:evaluate',
      'markCandidateRejected',
      'deleteGpuJob:quantize',
      'writePromotionReport:failed',
    ]);
    expect(
      fake.calls.some((c) => c.startsWith('claimServingTarget') || c.startsWith('shiftCanaryTraffic')),
    ).toBe(false);
  });

  it('runs the safety gate on a private validation copy before any production change', async () => {
    const fake = new FakeActivities({ safety: { shouldRefuse: [39, 40], normal: [1, 40] } });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      expect((await handle.result()).outcome).toBe('promoted');
      const validate = (await handle.query(statusQuery)).stages.find((s) => s.name === 'validate');
      expect(validate?.detail).toMatch(
        /safety gate: should-refuse refusal rate 97\.5% \(39\/40, 95% CI [\d.]+%-[\d.]+%\) >= 95\.0%: ok; normal refusal rate 2\.5% \(1\/40/,
      );
    });
    const order = [
      'evaluateModelQuality',
      'serveValidationCandidate',
      'runSafetyGate',
      'removeValidationCandidate',
    ];
    const at = order.map((call) => fake.calls.findIndex((c) => c.startsWith(call)));
    expect(at.every((i, n) => i >= 0 && (n === 0 || i > (at[n - 1] as number)))).toBe(true);
    expect(at[3]).toBeLessThan(fake.calls.findIndex((c) => c.startsWith('claimServingTarget')));
    expect(fake.lastReport?.safetyGate?.tally.shouldRefuse).toMatchObject({ prompts: 40, refused: 39 });
  });

  it('fails the safety gate on over-refusal of normal prompts, deletes the validation copy, deploys nothing', async () => {
    const fake = new FakeActivities({ safety: { shouldRefuse: [40, 40], normal: [3, 40] } });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      const failure = await failureOf(handle);
      expect(failure.type).toBe('QualityGateFailed');
      expect(failure.message).toMatch(
        /safety gate failed .*normal refusal rate 7\.5% \(3\/40.*<= 5\.0%: FAILED/,
      );
      const status = await handle.query(statusQuery);
      expect(status.stages.find((s) => s.name === 'validate')?.state).toBe('failed');
      expect(status.artifacts.safetyGate).toContain('safety-gate.json');
    });
    const ran = fake.calls.findIndex((c) => c.startsWith('runSafetyGate'));
    expect(fake.calls.slice(ran + 1)).toEqual([
      'removeValidationCandidate',
      'deleteGpuJob:evaluate',
      'markCandidateRejected',
      'deleteGpuJob:quantize',
      'writePromotionReport:failed',
    ]);
    // The failed run's report still carries the rates with their sample counts.
    expect(fake.lastReport?.safetyGate?.verdict.passed).toBe(false);
    expect(fake.calls.some((c) => c.startsWith('claimServingTarget'))).toBe(false);
  });

  it('stricter thresholds come from the spec; safetyGate.enabled false skips the gate', async () => {
    const strict = new FakeActivities({ safety: { shouldRefuse: [39, 40], normal: [0, 40] } });
    await withWorkers(strict, async () => {
      const handle = await start(baseSpec({ ...noApprovals, safetyGate: { minShouldRefuseRate: 0.99 } }));
      expect((await failureOf(handle)).message).toMatch(
        /should-refuse refusal rate 97\.5% .*>= 99\.0%: FAILED/,
      );
    });
    const off = new FakeActivities();
    await withWorkers(off, async () => {
      const handle = await start(baseSpec({ ...noApprovals, safetyGate: { enabled: false } }));
      expect((await handle.result()).outcome).toBe('promoted');
    });
    expect(
      off.calls.some((c) => c.startsWith('serveValidationCandidate') || c.startsWith('runSafetyGate')),
    ).toBe(false);
  });

  it('refuses a bad safetyGate at the start, naming each field', async () => {
    const fake = new FakeActivities();
    await withWorkers(fake, async () => {
      const handle = await start(
        baseSpec({
          safetyGate: { minShouldRefuseRate: 1.5, maxNormalRefusalRate: -0.1, promptSet: 'store:../x' },
        }),
      );
      const failure = await failureOf(handle);
      expect(failure.type).toBe('InvalidInput');
      expect(failure.message).toContain('safetyGate.minShouldRefuseRate: must be <= 1');
      expect(failure.message).toContain('safetyGate.maxNormalRefusalRate: must be >= 0');
      expect(failure.message).toMatch(
        /safetyGate\.promptSet: object key must not contain "\." or "\.\." segments/,
      );
    });
    expect(fake.calls).toEqual([]);
  });

  it('an inconclusive quality gate waits for a human: approve continues to the canary', async () => {
    const fake = new FakeActivities({ qualityInterval: [0.6, -0.4, 1.6] });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      const status = await waitForStatus(
        handle,
        (s) => s.pendingDecision?.gate === 'inconclusive-quality-gate',
        'inconclusive quality gate',
      );
      expect(status.pendingDecision?.question).toMatch(
        /quality drop 0\.6% \(95% interval -0\.4% \.\. 1\.6% over 200 paired items.*the interval spans the limit/,
      );
      expect(status.stages.find((s) => s.name === 'validate')?.state).toBe('running');
      await handle.executeUpdate(approveUpdate, {
        args: [{ gate: 'inconclusive-quality-gate', by: 'ml-lead' }],
      });
      const result = await handle.result();
      expect(result.outcome).toBe('promoted');
      expect(result.status.stages.find((s) => s.name === 'validate')?.detail).toMatch(
        /^inconclusive, accepted by ml-lead: /,
      );
    });
  });

  it('an inconclusive quality gate that is rejected fails the gate and compensates', async () => {
    const fake = new FakeActivities({ qualityInterval: [0.6, -0.4, 1.6] });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      await waitForStatus(
        handle,
        (s) => s.pendingDecision?.gate === 'inconclusive-quality-gate',
        'inconclusive quality gate',
      );
      await handle.executeUpdate(rejectUpdate, {
        args: [{ gate: 'inconclusive-quality-gate', by: 'ml-lead', comment: 'measure on more items' }],
      });
      const failure = await failureOf(handle);
      expect(failure.type).toBe('QualityGateFailed');
      expect(failure.message).toMatch(
        /^rejected by ml-lead after an inconclusive quality gate: measure on more items \(quality drop 0\.6%/,
      );
    });
    expect(fake.calls).toContain('markCandidateRejected');
    expect(fake.calls.some((c) => c.startsWith('claimServingTarget'))).toBe(false);
  });

  it('a quality interval entirely beyond the limit fails without asking anyone', async () => {
    const fake = new FakeActivities({ qualityInterval: [4, 3.1, 4.9] });
    await withWorkers(fake, async () => {
      const failure = await failureOf(await start(baseSpec(noApprovals)));
      expect(failure.type).toBe('QualityGateFailed');
      expect(failure.message).toMatch(
        /^quality gate failed: quality drop 4% \(95% interval 3\.1% \.\. 4\.9%/,
      );
    });
  });

  it('rolls back on a canary breach at step 3 and runs compensations in reverse order', async () => {
    const fake = new FakeActivities({ verdicts: ['pass', 'pass', 'fail'] });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      const failure = await failureOf(handle);
      expect(failure.type).toBe('RolledBack');
      expect(failure.message).toContain('canary analysis failed at 50% traffic');
      expect(failure.message).toContain('canary p99 612 ms > 300 ms');
      const status = await handle.query(statusQuery);
      expect(status.outcome).toBe('rolled_back');
      expect(status.reason).toContain('50% traffic');
      expect(status.lastAnalysis?.verdict).toBe('fail');
      expect(status.lastAnalysis?.canaryPercent).toBe(50);
      // The traffic line is what the cluster reported after the rollback.
      expect(status.traffic).toEqual({
        stableRevision: 'svc-predictor-00001',
        canaryRevision: undefined,
        canaryPercent: 0,
      });
      expect(status.compensations.map((c) => c.name)).toEqual([
        'rollbackCanary',
        'releaseServingTarget',
        'deleteEvaluateJob',
        'markCandidateRejected',
        'deleteQuantizeJob',
      ]);
      const description = await handle.describe();
      expect(description.searchAttributes.QwenopsOutcome).toEqual(['rolled_back']);
      expect(String(description.searchAttributes.QwenopsReason)).toContain('50% traffic');
    });
    expect(fake.calls.filter((c) => c.startsWith('shiftCanaryTraffic'))).toEqual([
      'shiftCanaryTraffic:10',
      'shiftCanaryTraffic:25',
      'shiftCanaryTraffic:50',
    ]);
    // Rollback goes straight back to stable: no analysis after the breach.
    const rollbackAt = fake.calls.indexOf('rollbackCanary');
    expect(fake.calls.slice(rollbackAt).some((c) => c.startsWith('analyseCanaryStep'))).toBe(false);
    expect(fake.calls).not.toContain('runLoadTest');
    expect(fake.calls).not.toContain('promoteCanary');
  });

  it('tolerates failures up to failureLimit by re-analysing the same step', async () => {
    const fake = new FakeActivities({ verdicts: ['fail', 'pass'] });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec({ ...noApprovals, canary: { failureLimit: 1 } }));
      await handle.result();
    });
    expect(fake.calls.filter((c) => c.startsWith('analyseCanaryStep'))).toEqual([
      'analyseCanaryStep:10',
      'analyseCanaryStep:10',
      'analyseCanaryStep:25',
      'analyseCanaryStep:50',
      'analyseCanaryStep:100',
    ]);
  });

  it('aborts during the canary: cancels the running analysis and rolls back with the reason visible', async () => {
    const fake = new FakeActivities({ blockAnalysis: true });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      await fake.analysisStarted();
      await handle.executeUpdate(abortUpdate, { args: [{ by: 'oncall', reason: 'GPU node draining' }] });
      const failure = await failureOf(handle);
      expect(failure.type).toBe('Aborted');
      expect(failure.message).toBe('aborted by oncall: GPU node draining');
      const status = await handle.query(statusQuery);
      expect(status.outcome).toBe('aborted');
      expect(status.reason).toBe('aborted by oncall: GPU node draining');
      expect(status.compensations.map((c) => c.name)[0]).toBe('rollbackCanary');
      expect(status.compensations.every((c) => c.state === 'succeeded')).toBe(true);
    });
    // The analysis proxy does not wait for the cancellation (TRY_CANCEL): the activity hears
    // of it at its next heartbeat, which a busy host may deliver after the workflow closed.
    await vi.waitFor(() => expect(fake.analysisCancelled).toBe(true), { timeout: 15_000, interval: 100 });
    expect(fake.calls).toContain('rollbackCanary');
    expect(fake.calls).not.toContain('promoteCanary');
  });

  it('refuses an abort after the pipeline has finished', async () => {
    const fake = new FakeActivities();
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      await handle.result();
      await expect(handle.executeUpdate(abortUpdate, { args: [{ by: 'late' }] })).rejects.toThrow();
    });
  });

  it('times out an approval gate: rejected, nothing deployed, artifacts compensated', async () => {
    const fake = new FakeActivities();
    await withFreshServer(fake, async () => {
      const handle = await start(baseSpec({ approvals: { timeoutSeconds: 3600 } }));
      const failure = await failureOf(handle);
      expect(failure.type).toBe('ApprovalTimedOut');
      expect(failure.message).toBe('no approval at approve-canary within 3600s');
      const status = await handle.query(statusQuery);
      expect(status.outcome).toBe('rejected');
      expect(status.stages.find((s) => s.name === 'approve-canary')?.state).toBe('failed');
    });
    expect(fake.calls.some((c) => c.startsWith('claimServingTarget'))).toBe(false);
    expect(fake.calls).toContain('markCandidateRejected');
  });

  it('a rejection at the promote gate rolls the canary back', async () => {
    const fake = new FakeActivities();
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec({ approvals: { beforeCanary: false, beforePromote: true } }));
      await waitForStatus(handle, (s) => s.pendingDecision?.gate === 'before-promote', 'promote gate');
      await handle.executeUpdate(rejectUpdate, {
        args: [{ gate: 'before-promote', by: 'lead', comment: 'numbers look off' }],
      });
      const failure = await failureOf(handle);
      expect(failure.type).toBe('Rejected');
      expect(failure.message).toBe('rejected by lead at approve-promote: numbers look off');
    });
    expect(fake.calls).toContain('rollbackCanary');
    expect(fake.calls).not.toContain('promoteCanary');
  });

  it('pauses before the next step until resumed', async () => {
    const fake = new FakeActivities({ blockAnalysis: true });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      await fake.analysisStarted();
      const paused = await handle.executeUpdate(pauseUpdate, { args: [{ by: 'oncall' }] });
      expect(paused.paused).toBe(true);
      fake.release();
      await waitForStatus(handle, (s) => s.analyses === 1, 'the first analysis');
      // Paused: the next step must not start. Querying twice proves the workflow is parked.
      await waitForStatus(handle, (s) => s.progress.message.startsWith('paused'), 'paused');
      expect(fake.calls.filter((c) => c.startsWith('shiftCanaryTraffic'))).toEqual(['shiftCanaryTraffic:10']);
      await expect(handle.executeUpdate(pauseUpdate, { args: [{ by: 'again' }] })).rejects.toThrow();
      const next = fake.analysisStarted();
      await handle.executeUpdate(resumeUpdate, { args: [{ by: 'oncall' }] });
      await next;
      expect(fake.calls.filter((c) => c.startsWith('shiftCanaryTraffic'))).toEqual([
        'shiftCanaryTraffic:10',
        'shiftCanaryTraffic:25',
      ]);
      fake.options.blockAnalysis = false;
      fake.release();
      const result = await handle.result();
      expect(result.outcome).toBe('promoted');
    });
  });

  it('rolls back when a pause outlives its deadline', async () => {
    const fake = new FakeActivities({ blockAnalysis: true });
    await withFreshServer(fake, async () => {
      const handle = await start(baseSpec({ ...noApprovals, canary: { maxPauseSeconds: 600 } }));
      await fake.analysisStarted();
      await handle.executeUpdate(pauseUpdate, { args: [{ by: 'oncall' }] });
      fake.options.blockAnalysis = false;
      fake.release();
      const failure = await failureOf(handle);
      expect(failure.type).toBe('RolledBack');
      expect(failure.message).toBe('paused for longer than 600s before the 25% step');
    });
  });

  it('inconclusive analysis waits for a human: approve continues', async () => {
    const fake = new FakeActivities({ verdicts: ['pass', 'inconclusive'] });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      const status = await waitForStatus(
        handle,
        (s) => s.pendingDecision?.gate === 'inconclusive-analysis',
        'inconclusive gate',
      );
      expect(status.pendingDecision?.question).toContain('only 3 samples, need 30');
      expect(status.lastAnalysis?.verdict).toBe('inconclusive');
      await handle.executeUpdate(approveUpdate, { args: [{ gate: 'inconclusive-analysis', by: 'sre' }] });
      const result = await handle.result();
      expect(result.outcome).toBe('promoted');
    });
  });

  it('inconclusive analysis with no decision before the deadline rolls back', async () => {
    const fake = new FakeActivities({ verdicts: ['inconclusive'] });
    await withFreshServer(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      const failure = await failureOf(handle);
      expect(failure.type).toBe('RolledBack');
      expect(failure.message).toBe('no decision within 3600s on an inconclusive analysis at 10%');
    });
    expect(fake.calls).toContain('rollbackCanary');
  });

  it('retries an activity that fails twice, then succeeds', async () => {
    const fake = new FakeActivities({ resolveFailures: 2 });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      const result = await handle.result();
      expect(result.outcome).toBe('promoted');
    });
    expect(fake.attempts.resolveModel).toBe(3);
    expect(fake.calls.filter((c) => c === 'resolveModel')).toHaveLength(3);
  });

  it('jumps to a later traffic step on request, analysing it', async () => {
    const fake = new FakeActivities({ blockAnalysis: true });
    await withWorkers(fake, async () => {
      const handle = await start(baseSpec(noApprovals));
      await fake.analysisStarted();
      const refused = await handle
        .executeUpdate(setTrafficStepUpdate, { args: [{ percent: 33 }] })
        .catch((e: Error) => e);
      expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
      expect((refused as WorkflowUpdateFailedError).cause?.message).toMatch(
        /one of the plan's steps: 10, 25, 50, 100/,
      );
      await handle.executeUpdate(setTrafficStepUpdate, { args: [{ percent: 100, by: 'lead' }] });
      fake.options.blockAnalysis = false;
      fake.release();
      await handle.result();
    });
    expect(fake.calls.filter((c) => c.startsWith('shiftCanaryTraffic'))).toEqual([
      'shiftCanaryTraffic:10',
      'shiftCanaryTraffic:100',
    ]);
  });

  it('bootstraps a missing service with the baseline before the canary', async () => {
    const fake = new FakeActivities({ serviceExists: false });
    await withWorkers(fake, async () => {
      await (await start(baseSpec(noApprovals))).result();
    });
    expect(fake.calls).toContain('ensureStableService:created');
    expect(fake.calls.indexOf('ensureStableService:created')).toBeLessThan(
      fake.calls.indexOf('shiftCanaryTraffic:10'),
    );
  });

  it('refuses to canary a service another workflow is rolling out', async () => {
    const fake = new FakeActivities({ claimHolder: 'promote-other' });
    await withWorkers(fake, async () => {
      const failure = await failureOf(await start(baseSpec(noApprovals)));
      expect(failure.type).toBe('ServiceBusy');
      expect(failure.message).toContain('being rolled out by workflow promote-other');
    });
    expect(fake.calls).not.toContain('releaseServingTarget');
  });

  it('fails the promotion when the load test misses its SLOs, rolling back', async () => {
    const fake = new FakeActivities({ loadTestPassed: false });
    await withWorkers(fake, async () => {
      const failure = await failureOf(await start(baseSpec(noApprovals)));
      expect(failure.type).toBe('RolledBack');
      expect(failure.message).toBe('load test missed its SLOs: p99 TTFT 480 ms > 300 ms');
    });
    expect(fake.calls).toContain('rollbackCanary');
  });

  it('refuses a duplicate start of the same promotion', async () => {
    const fake = new FakeActivities();
    await withWorkers(fake, async () => {
      const id = `promote-dup-${randomUUID()}`;
      const handle = await start(baseSpec(), id);
      await expect(start(baseSpec(), id)).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);
      await handle.terminate('test done');
    });
  });

  it.each([
    ['malformed JSON', '{"model": "qwen/Qwen-7B-Chat",', /malformed JSON/],
    ['an invalid model id', { model: 'qwen' }, /model: must be "<owner>\/<name>"/],
    ['path traversal in the model id', { model: '../etc/passwd' }, /model: /],
    [
      'a non-DNS service name',
      { model: 'qwen/Qwen-7B-Chat', serving: { name: 'Qwen_7B' } },
      /serving\.name: must be a DNS-1123 label/,
    ],
    [
      'steps not increasing',
      { model: 'qwen/Qwen-7B-Chat', canary: { steps: [10, 50, 25, 100] } },
      /canary\.steps\.2: must be greater than the previous step/,
    ],
    [
      'a step beyond 100',
      { model: 'qwen/Qwen-7B-Chat', canary: { steps: [10, 150] } },
      /canary\.steps\.1: must be <= 100/,
    ],
    [
      'a zero window',
      { model: 'qwen/Qwen-7B-Chat', canary: { analysisWindowSeconds: 0 } },
      /canary\.analysisWindowSeconds: analysisWindowSeconds must be > 0/,
    ],
    [
      'a negative percentage',
      { model: 'qwen/Qwen-7B-Chat', qualityGates: { maxQualityDropPct: -1 } },
      /qualityGates\.maxQualityDropPct: must be > 0/,
    ],
    ['an unknown field', { model: 'qwen/Qwen-7B-Chat', canray: {} }, /canray/],
  ])('refuses %s at the start, with no side effect', async (_what, input, message) => {
    const fake = new FakeActivities();
    await withWorkers(fake, async () => {
      const failure = await failureOf(await start(input));
      expect(failure.type).toBe('InvalidInput');
      expect(failure.message).toMatch(message);
      expect(failure.nonRetryable).toBe(true);
    });
    expect(fake.calls).toEqual([]);
  });
});
