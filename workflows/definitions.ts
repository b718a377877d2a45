// The contract between workflows and their clients (CLI, demo, UI users, tests): handler
// names, search attributes and task queues. Workflows and clients both import this file;
// it holds definitions only.

import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AbortRequest, ActorRequest, Decision, TrafficStepRequest } from '../src/domain/control.js';
import type { FailureType } from '../src/domain/failures.js';
import type { ReindexStatus } from '../src/domain/knowledge.js';
import type { PipelineStatus } from '../src/domain/status.js';

export const TASK_QUEUES = {
  /** Workflows and light activities (resolve, report, audit). */
  default: 'qwenops.default',
  /** Activities that launch and watch GPU Jobs, and the model download. */
  gpuJobs: 'qwenops.gpu-jobs',
  /** Activities that change serving: traffic shifts, analysis, load tests, promote, rollback. */
  cluster: 'qwenops.cluster',
  /** Knowledge-base re-index activities: read sources, chunk, embed, write pgvector. */
  knowledge: 'qwenops.knowledge',
} as const;

// Payload shapes and their schemas live in src/domain/control.ts: every handler parses its
// payload before acting, since the Temporal UI sends free JSON.
export type { AbortRequest, ActorRequest, Decision, TrafficStepRequest } from '../src/domain/control.js';

// Signals: fire-and-forget, what the Temporal UI's "Send a Signal" uses.
// A decision names the gate it answers ({"gate": "before-canary", "by": "alice"}), so a late
// answer meant for one gate can never answer the next.
export const approveSignal = defineSignal<[Decision]>('approve');
export const rejectSignal = defineSignal<[Decision]>('reject');
export const abortSignal = defineSignal<[AbortRequest?]>('abort');
export const pauseSignal = defineSignal<[ActorRequest?]>('pause');
export const resumeSignal = defineSignal<[ActorRequest?]>('resume');

// Updates: the same actions, validated (a wrong-moment action is refused with a reason)
// and answered with the resulting status. The CLI and the demo use these.
export const approveUpdate = defineUpdate<PipelineStatus, [Decision]>('approveGate');
export const rejectUpdate = defineUpdate<PipelineStatus, [Decision]>('rejectGate');
export const abortUpdate = defineUpdate<PipelineStatus, [AbortRequest]>('abortRollout');
export const pauseUpdate = defineUpdate<PipelineStatus, [ActorRequest]>('pauseRollout');
export const resumeUpdate = defineUpdate<PipelineStatus, [ActorRequest]>('resumeRollout');
/** Jump the canary to a later step of its plan (operator override; analysis still runs). */
export const setTrafficStepUpdate = defineUpdate<PipelineStatus, [TrafficStepRequest]>('setTrafficStep');

export const statusQuery = defineQuery<PipelineStatus>('status');
/** The `status` query of reindexKnowledgeBase (same name, knowledge-specific shape). */
export const reindexStatusQuery = defineQuery<ReindexStatus>('status');

/** Temporal's default limit on one search attribute value, in bytes. */
export const SEARCH_ATTRIBUTE_MAX_BYTES = 2048;

export const SEARCH_ATTRIBUTES = {
  model: defineSearchAttributeKey('QwenopsModel', SearchAttributeType.KEYWORD),
  service: defineSearchAttributeKey('QwenopsService', SearchAttributeType.KEYWORD),
  stage: defineSearchAttributeKey('QwenopsStage', SearchAttributeType.KEYWORD),
  outcome: defineSearchAttributeKey('QwenopsOutcome', SearchAttributeType.KEYWORD),
  reason: defineSearchAttributeKey('QwenopsReason', SearchAttributeType.TEXT),
} as const;

/** Failure types clients map to exit codes and messages. */
export const FAILURE_TYPES = {
  invalidInput: 'InvalidInput',
  rolledBack: 'RolledBack',
  rejected: 'Rejected',
  aborted: 'Aborted',
  qualityGate: 'QualityGateFailed',
  loadTestSlo: 'LoadTestSloMissed',
  approvalTimeout: 'ApprovalTimedOut',
  serviceBusy: 'ServiceBusy',
  /** The rollout lease was taken over (it had expired) or broken by an operator. */
  servingLeaseLost: 'ServingLeaseLost',
  jobFailed: 'GpuJobFailed',
  /** Another re-index holds the knowledge base. */
  concurrentReindex: 'ConcurrentReindex',
  /** A full re-index's new generation failed its checks (rows, duplicates, recall): not swapped in. */
  indexVerification: 'IndexVerificationFailed',
  /** Any other ending, with the cause in the message. */
  pipelineFailed: 'PipelineFailed',
} as const satisfies Record<string, FailureType>;
