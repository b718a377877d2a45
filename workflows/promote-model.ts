// promoteModel: hub -> object store -> AWQ quantization (GPU Job) -> quality validation
// (GPU Job) -> [approval] -> canary with analysis -> load test -> [approval] -> promote ->
// report. Any failure, rejection or abort runs the registered compensations newest first.

import {
  ApplicationFailure,
  CancellationScope,
  patched,
  setWorkflowOptions,
  workflowInfo,
} from '@temporalio/workflow';
import type { LoadTestOutcome, SafetyGateReport } from '../activities/contracts.js';
import type { AnalysisResult } from '../src/domain/analysis.js';
import type { EvaluationResult, QuantizeResult } from '../src/domain/job-results.js';
import { stageObjectName } from '../src/domain/names.js';
import { type PromotionSpec, parsePromotionSpec, requiredEvalSamples } from '../src/domain/promotion-spec.js';
import { evaluateQualityGates } from '../src/domain/quality-gates.js';
import type { SafetyGatePolicy } from '../src/domain/safety-gate.js';
import {
  buildRevisionSpec,
  promotionLabels,
  type ServingRevisionSpec,
  servingRef,
  validationRevision,
} from '../src/domain/serving-revision.js';
import { type PipelineStatus, PROMOTION_STAGES } from '../src/domain/status.js';
import { formatBytes } from '../src/domain/units.js';
import {
  type PromotionActivityProxies,
  promotionActivities,
  type SafetyActivityProxies,
  type ServingActivityProxies,
  safetyActivities,
  servingActivities,
  stageTimeouts,
} from './activity-options.js';
import { approvalGate, PipelineControl } from './control.js';
import { FAILURE_TYPES } from './definitions.js';
import { endInFailure, rootMessage } from './failures.js';
import { rawText, resolveSpecOnce } from './resolve-spec.js';
import { applyTraffic, holdRolloutLease, loadTestApproveAndPromote, runCanarySteps } from './rollout.js';
import { Saga } from './saga.js';
import { versioningBehavior } from './versioning.js';
import { publishStart } from './visibility.js';

export interface PromotionResult {
  outcome: 'promoted';
  model: string;
  service: { namespace: string; name: string };
  revision?: string;
  reportUri?: string;
  status: PipelineStatus;
}

/** Runs started before the safety gate existed replay without it. */
export const SAFETY_GATE_PATCH = 'promotion-safety-gate';

interface Collected {
  evaluation?: EvaluationResult;
  safetyGate?: SafetyGateReport;
  quantization?: QuantizeResult;
  loadTest?: LoadTestOutcome;
  analyses: AnalysisResult[];
}

// Worker Versioning: a promotion stays on the worker version (build) it started on, to its
// end, even when its approvals wait days and newer versions become current meanwhile.
setWorkflowOptions(versioningBehavior('PINNED'), promoteModel);

export async function promoteModel(input: unknown): Promise<PromotionResult> {
  const workflowId = workflowInfo().workflowId;
  const control = new PipelineControl({
    kind: 'promotion',
    model: rawText(input, 'model') || undefined,
    service: { namespace: rawText(input, 'serving', 'namespace'), name: rawText(input, 'serving', 'name') },
    stages: PROMOTION_STAGES,
  });
  control.install();
  // Resolved once and recorded in history: a later change of a default never reaches this run.
  const spec = await resolveSpecOnce('resolvePromotionSpec', input, parsePromotionSpec, (reason) =>
    control.refuse(reason),
  );
  control.status.model = spec.model;
  control.status.service = { namespace: spec.serving.namespace, name: spec.serving.name };
  publishStart({ model: spec.model, service: `${spec.serving.namespace}/${spec.serving.name}` });

  const timeouts = stageTimeouts(spec);

  const acts = promotionActivities(timeouts);
  const serving = servingActivities(timeouts);
  const safety = safetyActivities(timeouts);
  const saga = new Saga();
  const collected: Collected = { analyses: [] };
  const body = new CancellationScope();
  control.bodyScope = body;
  // An abort accepted while the spec was being resolved stops the run before its first stage.
  if (control.aborted) body.cancel();

  try {
    const revision = await body.run(() =>
      runPromotion(spec, workflowId, control, saga, { acts, serving, safety }, collected),
    );
    control.finish('promoted');
    // Production already runs the candidate: a report that cannot be written is recorded, not fatal.
    await writeReport(acts, workflowId, control, collected).catch(() => undefined);
    return {
      outcome: 'promoted',
      model: spec.model,
      service: control.status.service,
      revision,
      reportUri: control.status.reportUri,
      status: control.status,
    };
  } catch (err) {
    return endInFailure(err, control, saga, () => writeReport(acts, workflowId, control, collected));
  }
}

async function writeReport(
  acts: PromotionActivityProxies,
  workflowId: string,
  control: PipelineControl,
  collected: Collected,
): Promise<void> {
  control.startStage('report', 'writing the promotion report');
  try {
    const { uri } = await acts.writePromotionReport({
      workflowId,
      status: control.status,
      evaluation: collected.evaluation,
      safetyGate: collected.safetyGate,
      quantization: collected.quantization,
      loadTest: collected.loadTest,
      analyses: collected.analyses,
    });
    control.status.reportUri = uri;
    control.status.artifacts.report = uri;
    control.finishStage('report', uri);
  } catch (err) {
    control.setStageState('report', 'failed', rootMessage(err));
    throw err;
  }
}

async function runPromotion(
  spec: PromotionSpec,
  workflowId: string,
  control: PipelineControl,
  saga: Saga,
  proxies: { acts: PromotionActivityProxies; serving: ServingActivityProxies; safety: SafetyActivityProxies },
  collected: Collected,
): Promise<string | undefined> {
  const { acts, serving, safety } = proxies;
  const actor = spec.requestedBy;
  const ref = servingRef(spec.serving);

  // 1. Resolve the revision to an immutable listing.
  control.startStage('resolve', `resolving ${spec.model}@${spec.hub.revision}`);
  const resolved = await acts.resolveModel({ model: spec.model, revision: spec.hub.revision });
  control.finishStage(
    'resolve',
    `${resolved.fileCount} files, ${formatBytes(resolved.totalBytes)}${resolved.commit ? `, commit ${resolved.commit}` : ''}`,
  );
  if (resolved.needsTrustRemoteCode && !spec.serving.vllm.trustRemoteCode) {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.invalidInput,
      message: `${spec.model} ships its own modeling code: serving.vllm.trustRemoteCode must be true`,
      nonRetryable: true,
    });
  }

  // 2. Download into the object store (checksummed, resumable).
  control.startStage('download', `downloading ${resolved.fileCount} files`);
  const original = await acts.downloadModel({
    workflowId,
    model: spec.model,
    revision: spec.hub.revision,
    actor,
  });
  control.status.artifacts.original = original.uri;
  control.finishStage('download', `${original.uri}${original.reused ? ' (already in the store)' : ''}`);

  // 3. AWQ quantization on a GPU Job.
  const quantizeJob = stageObjectName(workflowId, 'quantize');
  control.startStage(
    'quantize',
    `${spec.quantization.method.toUpperCase()} w${spec.quantization.bits} g${spec.quantization.groupSize} on Job ${quantizeJob}`,
  );
  saga.add('deleteQuantizeJob', () => acts.deleteGpuJob({ workflowId, jobName: quantizeJob, actor }));
  const quantized = await acts.quantizeModelAwq({
    workflowId,
    jobName: quantizeJob,
    model: spec.model,
    revision: spec.hub.revision,
    sourceUri: original.uri,
    quantization: spec.quantization,
    gpuType: spec.serving.gpuType,
    timeoutSeconds: spec.execution.gpuJobTimeoutSeconds,
    actor,
  });
  collected.quantization = quantized.result;
  const candidateUri = quantized.result.outputUri;
  control.status.artifacts.candidate = candidateUri;
  saga.add('markCandidateRejected', () =>
    acts.markCandidateRejected({
      workflowId,
      candidateUri,
      reason: control.status.reason ?? 'promotion did not complete',
      actor,
    }),
  );
  const ratio =
    quantized.result.originalSizeBytes > 0
      ? quantized.result.sizeBytes / quantized.result.originalSizeBytes
      : 0;
  control.finishStage(
    'quantize',
    `${candidateUri} (${(ratio * 100).toFixed(0)}% of original size${quantized.adopted ? ', adopted existing Job' : ''}${quantized.result.simulated ? ', SIMULATED' : ''})`,
  );

  // 4. Quality validation on a GPU Job, then the gates.
  const evaluateJob = stageObjectName(workflowId, 'evaluate');
  control.startStage('validate', `evaluating baseline vs candidate on Job ${evaluateJob}`);
  saga.add('deleteEvaluateJob', () => acts.deleteGpuJob({ workflowId, jobName: evaluateJob, actor }));
  const evaluated = await acts.evaluateModelQuality({
    workflowId,
    jobName: evaluateJob,
    model: spec.model,
    baselineUri: original.uri,
    candidateUri,
    samples: spec.qualityGates.evalSamples,
    minSamples: requiredEvalSamples(spec.qualityGates.maxQualityDropPct),
    gpuType: spec.serving.gpuType,
    timeoutSeconds: spec.execution.gpuJobTimeoutSeconds,
    actor,
  });
  collected.evaluation = evaluated.result;
  control.status.artifacts.evaluation = evaluated.resultUri;
  const gates = evaluateQualityGates(evaluated.result, spec.qualityGates);
  const gateFailure = (message: string) =>
    ApplicationFailure.create({
      type: FAILURE_TYPES.qualityGate,
      message,
      nonRetryable: true,
      details: [gates],
    });
  if (gates.verdict === 'fail') throw gateFailure(`quality gate failed: ${gates.failures.join('; ')}`);
  let validated = gates.checks.map((c) => c.message).join('; ');
  if (gates.verdict === 'inconclusive') {
    // Like an inconclusive canary analysis: the numbers cannot decide, so a person does.
    const answer = await control.awaitDecision(
      'inconclusive-quality-gate',
      `the quality gate is inconclusive (${gates.inconclusive.join('; ')}): continue with this candidate?`,
      spec.approvals.timeoutSeconds,
    );
    if (answer.kind === 'rejected') {
      throw gateFailure(
        `rejected by ${answer.by} after an inconclusive quality gate: ${answer.reason} (${gates.inconclusive.join('; ')})`,
      );
    }
    if (answer.kind === 'timeout') {
      throw gateFailure(
        `no decision within ${spec.approvals.timeoutSeconds}s on an inconclusive quality gate (${gates.inconclusive.join('; ')})`,
      );
    }
    validated = `inconclusive, accepted by ${answer.by}: ${validated}`;
  }
  const candidateRevision = buildRevisionSpec(spec.serving, candidateUri, {
    quantized: true,
    method: spec.quantization.method,
    labels: promotionLabels(spec, workflowId, 'candidate'),
  });
  // Specs resolved before the gate existed have no safetyGate: those runs skip it.
  const safetyPolicy: SafetyGatePolicy | undefined = spec.safetyGate;
  if (patched(SAFETY_GATE_PATCH) && safetyPolicy?.enabled) {
    const report = await runSafetyGate(
      { workflowId, actor, deploymentMode: spec.serving.deploymentMode },
      validationRevision(candidateRevision, promotionLabels(spec, workflowId, 'safety-gate')),
      safetyPolicy,
      { control, saga, safety, timeoutSeconds: spec.canary.shiftTimeoutSeconds },
    );
    collected.safetyGate = report;
    if (!report.passed) {
      throw ApplicationFailure.create({
        type: FAILURE_TYPES.qualityGate,
        message: `safety gate failed (${report.promptSet.name}@${report.promptSet.version}, guard ${report.guard}): ${report.verdict.failures.join('; ')}`,
        nonRetryable: true,
        details: [report.verdict],
      });
    }
    validated = `${validated}; safety gate: ${report.verdict.checks.map((c) => c.message).join('; ')}`;
  }
  control.finishStage('validate', validated);

  // 5. A human looks at the numbers before production traffic.
  await approvalGate(
    control,
    'approve-canary',
    'before-canary',
    spec.approvals.beforeCanary,
    spec.approvals.timeoutSeconds,
    `promote ${spec.model} AWQ candidate to a canary on ${ref.namespace}/${ref.name}?`,
  );

  // 6. Canary: lease the service, make sure a stable revision exists, then step traffic.
  control.startStage('canary', `claiming ${ref.namespace}/${ref.name}`);
  const claim = await serving.claimServingTarget({ workflowId, ref, actor });
  if (!claim.claimed) {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.serviceBusy,
      message: `service ${ref.namespace}/${ref.name} is being rolled out by workflow ${claim.holder}; wait for it or abort it`,
      nonRetryable: true,
    });
  }
  holdRolloutLease(control, serving, { workflowId, ref, actor });
  saga.add('releaseServingTarget', () => {
    control.stopLeaseHold();
    return serving.releaseServingTarget({ workflowId, ref, actor });
  });
  const baselineRevision = buildRevisionSpec(spec.serving, original.uri, {
    quantized: false,
    labels: promotionLabels(spec, workflowId, 'baseline'),
  });
  // A service that does not exist yet is bootstrapped serving the unquantized baseline, so
  // the AWQ canary is always compared with something under live traffic.
  const stable = await serving.ensureStableService({
    workflowId,
    ref,
    actor,
    revision: baselineRevision,
    timeoutSeconds: spec.canary.shiftTimeoutSeconds,
  });
  applyTraffic(control, stable);
  const rollout = {
    workflowId,
    actor,
    ref,
    revision: candidateRevision,
    plan: spec.canary,
    serving,
    control,
    saga,
  };
  collected.analyses = await runCanarySteps(rollout);
  control.finishStage('canary', `${collected.analyses.length} analyses passed, canary at 100%`);

  // 7. Load test, 8. last human check, 9. promote.
  return loadTestApproveAndPromote(rollout, {
    loadTest: spec.loadTest,
    approvals: spec.approvals,
    promoteQuestion: `make the AWQ candidate the stable revision of ${ref.namespace}/${ref.name}?`,
    finalCompensations: ['markCandidateRejected'],
    onLoadTest: (outcome) => {
      collected.loadTest = outcome;
    },
  });
}

/**
 * The safety gate: the candidate, served alone on a private validation service, answers the
 * should-refuse and normal prompt sets through the guard; the refusal rates must meet the
 * policy (TC260-003: >= 95 % and <= 5 %). The validation service is deleted either way (by
 * the saga when anything after serving fails). The caller judges the report.
 */
async function runSafetyGate(
  target: { workflowId: string; actor: string; deploymentMode: PromotionSpec['serving']['deploymentMode'] },
  revision: ServingRevisionSpec,
  policy: SafetyGatePolicy,
  deps: { control: PipelineControl; saga: Saga; safety: SafetyActivityProxies; timeoutSeconds: number },
): Promise<SafetyGateReport> {
  const { control, saga, safety } = deps;
  control.setProgress('safety gate: serving the candidate on a private validation service');
  saga.add('removeSafetyValidationService', () => safety.removeValidationCandidate(target));
  const served = await safety.serveValidationCandidate({
    ...target,
    revision,
    timeoutSeconds: deps.timeoutSeconds,
  });
  control.setProgress(
    `safety gate: probing ${served.ref.namespace}/${served.ref.name} with ${policy.promptSet}`,
  );
  const report = await safety.runSafetyGate({
    workflowId: target.workflowId,
    baseUrl: served.baseUrl,
    servedModelName: revision.servedModelName,
    servedBy: served.revision,
    policy,
  });
  control.status.artifacts.safetyGate = report.resultUri;
  await safety.removeValidationCandidate(target);
  saga.forget('removeSafetyValidationService');
  return report;
}
