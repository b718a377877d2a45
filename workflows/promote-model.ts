// promoteModel: hub -> object store -> AWQ quantization (GPU Job) -> quality validation
// (GPU Job) -> [approval] -> canary with analysis -> load test -> [approval] -> promote ->
// report. Any failure, rejection or abort runs the registered compensations newest first.

import {
  ApplicationFailure,
  CancellationScope,
  setWorkflowOptions,
  workflowInfo,
} from '@temporalio/workflow';
import type { LoadTestOutcome } from '../activities/contracts.js';
import type { AnalysisResult } from '../src/domain/analysis.js';
import type { EvaluationResult, QuantizeResult } from '../src/domain/job-results.js';
import { stageObjectName } from '../src/domain/names.js';
import { type PromotionSpec, parsePromotionSpec, requiredEvalSamples } from '../src/domain/promotion-spec.js';
import { evaluateQualityGates } from '../src/domain/quality-gates.js';
import { buildRevisionSpec, promotionLabels, servingRef } from '../src/domain/serving-revision.js';
import { type PipelineStatus, PROMOTION_STAGES } from '../src/domain/status.js';
import { formatBytes } from '../src/domain/units.js';
import {
  type PromotionActivityProxies,
  promotionActivities,
  type ServingActivityProxies,
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

interface Collected {
  evaluation?: EvaluationResult;
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
  const saga = new Saga();
  const collected: Collected = { analyses: [] };
  const body = new CancellationScope();
  control.bodyScope = body;
  // An abort accepted while the spec was being resolved stops the run before its first stage.
  if (control.aborted) body.cancel();

  try {
    const revision = await body.run(() =>
      runPromotion(spec, workflowId, control, saga, acts, serving, collected),
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
  acts: PromotionActivityProxies,
  serving: ServingActivityProxies,
  collected: Collected,
): Promise<string | undefined> {
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
    control.finishStage(
      'validate',
      `inconclusive, accepted by ${answer.by}: ${gates.checks.map((c) => c.message).join('; ')}`,
    );
  } else {
    control.finishStage('validate', gates.checks.map((c) => c.message).join('; '));
  }

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
  const candidateRevision = buildRevisionSpec(spec.serving, candidateUri, {
    quantized: true,
    method: spec.quantization.method,
    labels: promotionLabels(spec, workflowId, 'candidate'),
  });
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
