// The canary loop both workflows run: shift traffic step by step, analyse each step
// against the stable revision, and stop at the first reason to roll back. Rollback itself
// is a saga compensation registered before the first shift, so every exit path (breach,
// abort, rejection, timeout, a crash of this code) takes traffic back to stable, without
// analysis.

import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  isCancellation,
  patched,
} from '@temporalio/workflow';
import type { LoadTestOutcome } from '../activities/contracts.js';
import type { AnalysisResult } from '../src/domain/analysis.js';
import { canaryProgressPercent, decideAfterAnalysis } from '../src/domain/canary.js';
import type { ApprovalPolicy, CanaryPlan, LoadTestProfile } from '../src/domain/promotion-spec.js';
import type { ServingRef, ServingRevisionSpec, ServingStatus } from '../src/domain/serving-revision.js';
import type { ServingActivityProxies } from './activity-options.js';
import { approvalGate, type PipelineControl } from './control.js';
import { FAILURE_TYPES } from './definitions.js';
import { rootMessage } from './failures.js';
import type { Saga } from './saga.js';

export interface RolloutContext {
  workflowId: string;
  actor: string;
  ref: ServingRef;
  revision: ServingRevisionSpec;
  plan: CanaryPlan;
  serving: ServingActivityProxies;
  control: PipelineControl;
  saga: Saga;
}

/** Replay guard: runs recorded before the lease hold existed do not start it. */
const LEASE_HOLD_PATCH = 'rollout-lease-hold';

/**
 * Keeps the service's rollout lease renewed from a successful claim until release. If the
 * lease is lost (it expired and another workflow took it, or an operator broke it), the
 * pipeline stops: the service is no longer this workflow's to change.
 */
export function holdRolloutLease(
  control: PipelineControl,
  serving: ServingActivityProxies,
  base: { workflowId: string; ref: ServingRef; actor: string },
): void {
  if (!patched(LEASE_HOLD_PATCH)) return;
  const scope = new CancellationScope();
  const held = scope.run(() => serving.holdServingTarget(base));
  held.then(
    () => undefined,
    (err: unknown) => {
      if (!isCancellation(err)) control.loseLease(rootMessage(err));
    },
  );
  control.stopLeaseHold = () => scope.cancel();
}

export function rolledBack(reason: string): ApplicationFailure {
  return ApplicationFailure.create({ type: FAILURE_TYPES.rolledBack, message: reason, nonRetryable: true });
}

export function applyTraffic(control: PipelineControl, status: ServingStatus): void {
  const canary = status.traffic.find(
    (t) => t.tag === 'latest' && t.revision !== status.latestRolledoutRevision,
  );
  const stable =
    status.traffic.find((t) => t.revision === status.latestRolledoutRevision) ??
    status.traffic.find((t) => t.tag === 'prev');
  const baseline = status.traffic.find((t) => t.tag === 'baseline');
  control.status.traffic = {
    stableRevision: stable?.revision ?? status.latestRolledoutRevision,
    canaryRevision: status.canaryPercent !== undefined ? canary?.revision : undefined,
    canaryPercent: status.canaryPercent ?? 0,
    ...(baseline ? { baselineRevision: baseline.revision, baselinePercent: baseline.percent } : {}),
  };
}

/** Runs the canary steps; resolves when the canary carries 100 % and passed every analysis. */
export async function runCanarySteps(ctx: RolloutContext): Promise<AnalysisResult[]> {
  const { control, plan, serving, saga } = ctx;
  const steps = plan.steps;
  const analyses: AnalysisResult[] = [];
  const base = { workflowId: ctx.workflowId, ref: ctx.ref, actor: ctx.actor };

  control.canarySteps = steps;
  // The traffic line then shows what the cluster reports after the rollback, not the last split.
  saga.add('rollbackCanary', async () => {
    const status = await serving.rollbackCanary({
      ...base,
      reason: control.status.reason ?? 'rollback',
      timeoutSeconds: plan.shiftTimeoutSeconds,
    });
    applyTraffic(control, status);
  });

  let index = 0;
  while (index < steps.length) {
    const percent = steps[index] as number;
    control.canaryStepIndex = index;
    await honourPause(control, plan, `the ${percent}% step`);

    control.setProgress(
      `shifting ${percent}% of traffic to the canary`,
      canaryProgressPercent(steps, index) / 100,
    );
    const shifted = await serving.shiftCanaryTraffic({
      ...base,
      revision: ctx.revision,
      percent,
      timeoutSeconds: plan.shiftTimeoutSeconds,
      // Only when asked, so the input of runs without a baseline stays as it was recorded.
      ...(plan.baseline ? { baseline: true } : {}),
    });
    applyTraffic(control, shifted);

    let failures = 0;
    let advance = false;
    while (!advance) {
      control.setProgress(
        `analysing the canary at ${percent}% for ${plan.analysisWindowSeconds}s`,
        canaryProgressPercent(steps, index) / 100,
      );
      const result = await serving.analyseCanaryStep({
        ...base,
        step: index,
        canaryPercent: percent,
        windowSeconds: plan.analysisWindowSeconds,
        minSamples: plan.minSamples,
        probe: plan.probe,
        slo: plan.slo,
      });
      analyses.push(result);
      control.recordAnalysis(result);
      const decision = decideAfterAnalysis({
        verdict: result.verdict,
        failuresSoFar: failures,
        failureLimit: plan.failureLimit,
        canaryPercent: percent,
        reasons: result.reasons,
      });
      switch (decision.action) {
        case 'advance':
          advance = true;
          break;
        case 'reanalyse':
          failures = decision.failures;
          break;
        case 'rollback':
          throw rolledBack(decision.reason);
        case 'ask-human': {
          const answer = await control.awaitDecision(
            'inconclusive-analysis',
            decision.question,
            plan.inconclusiveDecisionTimeoutSeconds,
          );
          if (answer.kind === 'approved') advance = true;
          else if (answer.kind === 'rejected') {
            throw rolledBack(
              `rejected by ${answer.by} after an inconclusive analysis at ${percent}%: ${answer.reason}`,
            );
          } else {
            throw rolledBack(
              `no decision within ${plan.inconclusiveDecisionTimeoutSeconds}s on an inconclusive analysis at ${percent}%`,
            );
          }
        }
      }
    }

    const requested = control.takeRequestedPercent();
    index =
      requested !== undefined && steps.indexOf(requested) > index ? steps.indexOf(requested) : index + 1;
  }
  control.setProgress('the canary carries 100% and passed every analysis', 1);
  return analyses;
}

export interface CompletionOptions {
  loadTest: LoadTestProfile;
  approvals: ApprovalPolicy;
  /** What the before-promote gate asks. */
  promoteQuestion: string;
  /** Compensations that no longer apply once production runs the new revision. */
  finalCompensations: string[];
  onLoadTest?: (outcome: LoadTestOutcome) => void;
}

function summarizeLoadTest(outcome: LoadTestOutcome): string {
  return Object.entries(outcome.summary)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`)
    .join(' ');
}

/**
 * After the canary carries 100 %: load test gated on SLOs (a miss rolls back), the
 * before-promote gate, then promotion. Returns the new stable revision.
 */
export async function loadTestApproveAndPromote(
  ctx: RolloutContext,
  options: CompletionOptions,
): Promise<string | undefined> {
  const { control, serving } = ctx;
  const base = { workflowId: ctx.workflowId, ref: ctx.ref, actor: ctx.actor };
  await honourPause(control, ctx.plan, 'the load test');
  if (options.loadTest.enabled) {
    control.startStage(
      'load-test',
      `${options.loadTest.mode}-loop load for ${options.loadTest.durationSeconds}s`,
    );
    const outcome = await serving.runLoadTest({ ...base, profile: options.loadTest });
    options.onLoadTest?.(outcome);
    if (outcome.reportUri) control.status.artifacts.loadTest = outcome.reportUri;
    if (!outcome.passed) throw rolledBack(`load test missed its SLOs: ${outcome.reasons.join('; ')}`);
    control.finishStage('load-test', summarizeLoadTest(outcome));
  } else {
    control.skipStage('load-test', 'disabled in the spec');
  }

  await honourPause(control, ctx.plan, 'the promote gate');
  await approvalGate(
    control,
    'approve-promote',
    'before-promote',
    options.approvals.beforePromote,
    options.approvals.timeoutSeconds,
    options.promoteQuestion,
  );
  await honourPause(control, ctx.plan, 'promotion');
  return commitPromotion(ctx, options);
}

async function honourPause(control: PipelineControl, plan: CanaryPlan, before: string): Promise<void> {
  if (!(await control.waitWhilePaused(plan.maxPauseSeconds))) {
    throw rolledBack(`paused for longer than ${plan.maxPauseSeconds}s before ${before}`);
  }
}

/**
 * The commit point. From here an abort is refused and a cancellation of the workflow does
 * not interrupt the switch: production must end on exactly one revision that the outcome
 * names. When the promote activity fails, the cluster is read back: a promote that applied
 * before the failure is a promotion, anything else goes to the compensations (rollback).
 */
async function commitPromotion(ctx: RolloutContext, options: CompletionOptions): Promise<string | undefined> {
  const { control, serving, saga } = ctx;
  const base = { workflowId: ctx.workflowId, ref: ctx.ref, actor: ctx.actor };
  // An abort or cancellation that arrived with the last result must win before the commit.
  if (CancellationScope.current().consideredCancelled) {
    throw new CancelledFailure('cancelled before the promote step');
  }
  control.committing = true;
  control.startStage('promote', 'promoting the canary to stable');
  const promoted = await CancellationScope.nonCancellable(async () => {
    let status: ServingStatus;
    try {
      status = await serving.promoteCanary({ ...base, timeoutSeconds: ctx.plan.shiftTimeoutSeconds });
    } catch (err) {
      const observed = await serving.describeServing(base).catch(() => null);
      if (!observed || !servesOnly(observed, ctx.revision.storageUri)) {
        control.committing = false;
        throw err;
      }
      status = observed;
    }
    // Past this point production runs the new revision: nothing may undo it automatically.
    for (const name of ['rollbackCanary', ...options.finalCompensations]) saga.forget(name);
    applyTraffic(control, status);
    control.stopLeaseHold();
    await serving.releaseServingTarget(base);
    saga.forget('releaseServingTarget');
    return status;
  });
  control.committing = false;
  control.finishStage('promote', `stable revision ${promoted.latestRolledoutRevision ?? '(unknown)'}`);
  return promoted.latestRolledoutRevision;
}

/** True when the service sends all traffic to the revision serving `storageUri`. */
export function servesOnly(status: ServingStatus, storageUri: string): boolean {
  return status.canaryPercent === undefined && status.stableStorageUri === storageUri;
}
