// canaryRelease: the canary -> analyse -> promote/rollback part on its own, for a new
// serving config, image or model revision. CI starts it (`qwenops canary --wait`) and reads
// the outcome: completed = promoted, failure type RolledBack = rolled back.

import {
  ApplicationFailure,
  CancellationScope,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { LoadTestOutcome } from '../activities/contracts.js';
import type { AnalysisResult } from '../src/domain/analysis.js';
import { type CanaryReleaseSpec, parseCanaryReleaseSpec } from '../src/domain/canary.js';
import { buildRevisionSpec, servingRef } from '../src/domain/serving.js';
import { CANARY_STAGES, type PipelineStatus } from '../src/domain/status.js';
import { promotionActivities, servingActivities, stageTimeouts } from './activity-options.js';
import { PipelineControl } from './control.js';
import { FAILURE_TYPES, SEARCH_ATTRIBUTES } from './definitions.js';
import { endInFailure, invalidInput, rootMessage } from './failures.js';
import { applyTraffic, holdRolloutLease, loadTestApproveAndPromote, runCanarySteps } from './rollout.js';
import { Saga } from './saga.js';

export interface CanaryReleaseResult {
  outcome: 'promoted';
  service: { namespace: string; name: string };
  revision?: string;
  reportUri?: string;
  status: PipelineStatus;
}

export async function canaryRelease(input: unknown): Promise<CanaryReleaseResult> {
  let spec: CanaryReleaseSpec;
  try {
    spec = parseCanaryReleaseSpec(input);
  } catch (err) {
    throw invalidInput(err);
  }
  const workflowId = workflowInfo().workflowId;
  const ref = servingRef(spec.serving);
  const control = new PipelineControl({
    kind: 'canary',
    service: { namespace: ref.namespace, name: ref.name },
    stages: CANARY_STAGES,
  });
  control.install();
  upsertSearchAttributes([
    { key: SEARCH_ATTRIBUTES.service, value: `${ref.namespace}/${ref.name}` },
    { key: SEARCH_ATTRIBUTES.outcome, value: 'running' },
    // A reset run starts with the attributes of the run it replaces: no stale reason.
    { key: SEARCH_ATTRIBUTES.reason, value: null },
  ]);
  const timeouts = stageTimeouts(spec);

  const acts = promotionActivities(timeouts);
  const serving = servingActivities(timeouts);
  const saga = new Saga();
  const actor = spec.requestedBy;
  let analyses: AnalysisResult[] = [];
  let loadTest: LoadTestOutcome | undefined;
  const body = new CancellationScope();
  control.bodyScope = body;

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
