// canaryRelease: the canary -> analyse -> promote/rollback part on its own, for a new
// serving config, image or model revision. CI starts it (`qwenops canary --wait`) and reads
// the outcome: completed = promoted, failure type RolledBack = rolled back.

import {
  ApplicationFailure,
  CancellationScope,
  setWorkflowOptions,
  workflowInfo,
} from '@temporalio/workflow';
import type { LoadTestOutcome } from '../activities/contracts.js';
import type { AnalysisResult } from '../src/domain/analysis.js';
import { parseCanaryReleaseSpec } from '../src/domain/canary.js';
import { buildRevisionSpec, servingRef } from '../src/domain/serving-revision.js';
import { CANARY_STAGES, type PipelineStatus } from '../src/domain/status.js';
import { promotionActivities, servingActivities, stageTimeouts } from './activity-options.js';
import { PipelineControl } from './control.js';
import { FAILURE_TYPES } from './definitions.js';
import { endInFailure, rootMessage } from './failures.js';
import { rawText, resolveSpecOnce } from './resolve-spec.js';
import { applyTraffic, holdRolloutLease, loadTestApproveAndPromote, runCanarySteps } from './rollout.js';
import { Saga } from './saga.js';
import { versioningBehavior } from './versioning.js';
import { publishStart } from './visibility.js';

export interface CanaryReleaseResult {
  outcome: 'promoted';
  service: { namespace: string; name: string };
  revision?: string;
  reportUri?: string;
  status: PipelineStatus;
}

// Worker Versioning: a release stays on the worker version (build) it started on, to its end.
setWorkflowOptions(versioningBehavior('PINNED'), canaryRelease);

export async function canaryRelease(input: unknown): Promise<CanaryReleaseResult> {
  const workflowId = workflowInfo().workflowId;
  const control = new PipelineControl({
    kind: 'canary',
    service: { namespace: rawText(input, 'serving', 'namespace'), name: rawText(input, 'serving', 'name') },
    stages: CANARY_STAGES,
  });
  control.install();
  // Resolved once and recorded in history: a later change of a default never reaches this run.
  const spec = await resolveSpecOnce('resolveCanaryReleaseSpec', input, parseCanaryReleaseSpec, (reason) =>
    control.refuse(reason),
  );
  const ref = servingRef(spec.serving);
  control.status.service = { namespace: ref.namespace, name: ref.name };
  publishStart({ service: `${ref.namespace}/${ref.name}` });
  const timeouts = stageTimeouts(spec);

  const acts = promotionActivities(timeouts);
  const serving = servingActivities(timeouts);
  const saga = new Saga();
  const actor = spec.requestedBy;
  let analyses: AnalysisResult[] = [];
  let loadTest: LoadTestOutcome | undefined;
  const body = new CancellationScope();
  control.bodyScope = body;
  // An abort accepted while the spec was being resolved stops the run before its first stage.
  if (control.aborted) body.cancel();

  const report = async () => {
    control.startStage('report', 'writing the release report');
    try {
      const { uri } = await acts.writePromotionReport({
        workflowId,
        status: control.status,
        loadTest,
        analyses,
      });
      control.status.reportUri = uri;
      control.finishStage('report', uri);
    } catch (err) {
      control.setStageState('report', 'failed', rootMessage(err));
    }
  };

  try {
    const revision = await body.run(async () => {
      control.startStage('claim', `claiming ${ref.namespace}/${ref.name}`);
      const claim = await serving.claimServingTarget({ workflowId, ref, actor });
      if (!claim.claimed) {
        throw ApplicationFailure.create({
          type: FAILURE_TYPES.serviceBusy,
          message: `service ${ref.namespace}/${ref.name} is being rolled out by workflow ${claim.holder}`,
          nonRetryable: true,
        });
      }
      holdRolloutLease(control, serving, { workflowId, ref, actor });
      saga.add('releaseServingTarget', () => {
        control.stopLeaseHold();
        return serving.releaseServingTarget({ workflowId, ref, actor });
      });
      const current = await serving.describeServing({ workflowId, ref, actor });
      if (!current) {
        throw ApplicationFailure.create({
          type: FAILURE_TYPES.invalidInput,
          message: `service ${ref.namespace}/${ref.name} does not exist: a canary needs a stable revision (promoteModel creates one)`,
          nonRetryable: true,
        });
      }
      applyTraffic(control, current);
      control.finishStage('claim', `stable revision ${current.latestRolledoutRevision ?? '(unknown)'}`);

      control.startStage('canary', `canary of ${spec.storageUri}`);
      const revisionSpec = buildRevisionSpec({ ...spec.serving, name: ref.name }, spec.storageUri, {
        quantized: spec.quantized,
        labels: {
          'app.kubernetes.io/managed-by': 'qwenops',
          'qwenops.io/workflow-id': workflowId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 63),
          'qwenops.io/stage': 'canary',
        },
      });
      const rollout = {
        workflowId,
        actor,
        ref,
        revision: revisionSpec,
        plan: spec.canary,
        serving,
        control,
        saga,
      };
      analyses = await runCanarySteps(rollout);
      control.finishStage('canary', `${analyses.length} analyses passed, canary at 100%`);
      return loadTestApproveAndPromote(rollout, {
        loadTest: spec.loadTest,
        approvals: spec.approvals,
        promoteQuestion: `make ${spec.storageUri} the stable revision of ${ref.namespace}/${ref.name}?`,
        finalCompensations: [],
        onLoadTest: (outcome) => {
          loadTest = outcome;
        },
      });
    });
    control.finish('promoted');
    await report();
    return {
      outcome: 'promoted',
      service: control.status.service,
      revision,
      reportUri: control.status.reportUri,
      status: control.status,
    };
  } catch (err) {
    return endInFailure(err, control, saga, report);
  }
}
