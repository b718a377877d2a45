// Activity proxies with per-stage timeouts and retry policies. Long external waits
// heartbeat; the heartbeat timeout is how fast a dead worker is noticed and the activity
// moves to a live one, where it resumes from the object it already created.

import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { PromotionActivities, SafetyActivities, ServingActivities } from '../activities/contracts.js';
import type { KnowledgeActivities } from '../activities/knowledge.js';
import type { LoadTestActivities } from '../activities/loadtest.js';
import { NON_RETRYABLE_FAILURE_TYPES } from '../src/domain/failures.js';
import { TASK_QUEUES } from './definitions.js';

/** Errors a retry cannot fix, from the one failure catalog (src/domain/failures.ts). */
export const NON_RETRYABLE: string[] = [...NON_RETRYABLE_FAILURE_TYPES];

/**
 * How long an activity may wait in its task queue for a worker. A queue nobody polls (a
 * worker Deployment missing or scaled to zero) then fails the stage with a
 * ScheduleToStart timeout naming the activity, instead of waiting forever in silence.
 * Promotions and canaries take it from their spec (execution.queueWaitTimeoutSeconds).
 */
export const QUEUE_WAIT_TIMEOUT = '10m';

/** The one retry policy shape: exponential from `initialInterval`, capped at a minute. */
const retry = (maximumAttempts: number, initialInterval = '1s') => ({
  initialInterval,
  backoffCoefficient: 2,
  maximumInterval: '1m',
  maximumAttempts,
  nonRetryableErrorTypes: NON_RETRYABLE,
});

export interface StageTimeouts {
  heartbeatTimeoutSeconds: number;
  queueWaitTimeoutSeconds: number;
  gpuJobTimeoutSeconds: number;
  shiftTimeoutSeconds: number;
  analysisWindowSeconds: number;
  loadTestSeconds: number;
}

/** Stage timeouts from the parts of a spec both pipelines share. */
export function stageTimeouts(spec: {
  execution: {
    heartbeatTimeoutSeconds: number;
    gpuJobTimeoutSeconds: number;
    queueWaitTimeoutSeconds: number;
  };
  canary: { shiftTimeoutSeconds: number; analysisWindowSeconds: number };
  loadTest: { durationSeconds: number };
}): StageTimeouts {
  return {
    heartbeatTimeoutSeconds: spec.execution.heartbeatTimeoutSeconds,
    queueWaitTimeoutSeconds: spec.execution.queueWaitTimeoutSeconds,
    gpuJobTimeoutSeconds: spec.execution.gpuJobTimeoutSeconds,
    shiftTimeoutSeconds: spec.canary.shiftTimeoutSeconds,
    analysisWindowSeconds: spec.canary.analysisWindowSeconds,
    loadTestSeconds: spec.loadTest.durationSeconds,
  };
}

export function promotionActivities(t: StageTimeouts) {
  const heartbeatTimeout = `${t.heartbeatTimeoutSeconds}s`;
  const queueWait = `${t.queueWaitTimeoutSeconds}s`;
  const light = proxyActivities<
    Pick<PromotionActivities, 'resolveModel' | 'writePromotionReport' | 'markCandidateRejected'>
  >({
    taskQueue: TASK_QUEUES.default,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: '2m',
    retry: retry(5),
  });
  const download = proxyActivities<Pick<PromotionActivities, 'downloadModel'>>({
    taskQueue: TASK_QUEUES.gpuJobs,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: '6h',
    heartbeatTimeout,
    retry: retry(10),
  });
  // WAIT_CANCELLATION_COMPLETED: on abort the workflow waits until the activity has
  // deleted the Job it started, so compensation never races a still-running Job.
  const gpu = proxyActivities<Pick<PromotionActivities, 'quantizeModelAwq' | 'evaluateModelQuality'>>({
    taskQueue: TASK_QUEUES.gpuJobs,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: `${t.gpuJobTimeoutSeconds + 600}s`,
    heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: retry(5),
  });
  const cleanup = proxyActivities<Pick<PromotionActivities, 'deleteGpuJob'>>({
    taskQueue: TASK_QUEUES.gpuJobs,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: '2m',
    retry: retry(10),
  });
  // Proxies have no own keys, so they are picked one by one rather than spread.
  return {
    resolveModel: light.resolveModel,
    writePromotionReport: light.writePromotionReport,
    markCandidateRejected: light.markCandidateRejected,
    downloadModel: download.downloadModel,
    quantizeModelAwq: gpu.quantizeModelAwq,
    evaluateModelQuality: gpu.evaluateModelQuality,
    deleteGpuJob: cleanup.deleteGpuJob,
  };
}

/** The safety gate's activities (cluster queue): serve the candidate privately, probe it, delete it. */
export function safetyActivities(t: StageTimeouts) {
  const heartbeatTimeout = `${t.heartbeatTimeoutSeconds}s`;
  const queueWait = `${t.queueWaitTimeoutSeconds}s`;
  const serve = proxyActivities<Pick<SafetyActivities, 'serveValidationCandidate'>>({
    taskQueue: TASK_QUEUES.cluster,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: `${t.shiftTimeoutSeconds + 120}s`,
    heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: retry(10),
  });
  // Linear in the prompt sets; a retry resumes after the last checkpointed prompt.
  const probe = proxyActivities<Pick<SafetyActivities, 'runSafetyGate'>>({
    taskQueue: TASK_QUEUES.cluster,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: '2h',
    heartbeatTimeout,
    retry: retry(5),
  });
  const remove = proxyActivities<Pick<SafetyActivities, 'removeValidationCandidate'>>({
    taskQueue: TASK_QUEUES.cluster,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: '2m',
    retry: retry(10),
  });
  return {
    serveValidationCandidate: serve.serveValidationCandidate,
    runSafetyGate: probe.runSafetyGate,
    removeValidationCandidate: remove.removeValidationCandidate,
  };
}

export type SafetyActivityProxies = ReturnType<typeof safetyActivities>;

export function servingActivities(t: StageTimeouts) {
  const heartbeatTimeout = `${t.heartbeatTimeoutSeconds}s`;
  const queueWait = `${t.queueWaitTimeoutSeconds}s`;
  const control = proxyActivities<
    Pick<
      ServingActivities,
      | 'claimServingTarget'
      | 'releaseServingTarget'
      | 'describeServing'
      | 'ensureStableService'
      | 'shiftCanaryTraffic'
      | 'rollbackCanary'
      | 'promoteCanary'
    >
  >({
    taskQueue: TASK_QUEUES.cluster,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: `${t.shiftTimeoutSeconds + 120}s`,
    heartbeatTimeout,
    // An abort waits until a cancelled shift or rollback has really stopped, so the
    // compensation that follows reads the cluster as the activity left it, never a change
    // still in flight.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: retry(10),
  });
  const analysis = proxyActivities<Pick<ServingActivities, 'analyseCanaryStep'>>({
    taskQueue: TASK_QUEUES.cluster,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: `${t.analysisWindowSeconds + 180}s`,
    heartbeatTimeout,
    retry: retry(3),
  });
  const loadTest = proxyActivities<Pick<ServingActivities, 'runLoadTest'>>({
    taskQueue: TASK_QUEUES.cluster,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: `${t.loadTestSeconds + 300}s`,
    heartbeatTimeout,
    retry: retry(3),
  });
  // Holds the rollout lease for as long as the rollout runs: one heartbeating activity that
  // renews it, so days at an approval gate add no history. Its heartbeat timeout is well
  // under the lease duration, so a dead worker's hold moves to a live one in time. Stopping
  // it abandons it rather than cancelling: it ends by itself at its first renewal after the
  // release (renewal never re-creates a lease), or when its heartbeat finds the workflow
  // closed; meanwhile it keeps the lease through the compensations.
  const lease = proxyActivities<Pick<ServingActivities, 'holdServingTarget'>>({
    taskQueue: TASK_QUEUES.cluster,
    cancellationType: ActivityCancellationType.ABANDON,
    scheduleToStartTimeout: queueWait,
    startToCloseTimeout: '30d',
    heartbeatTimeout: '30s',
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '10s',
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
  return {
    holdServingTarget: lease.holdServingTarget,
    claimServingTarget: control.claimServingTarget,
    releaseServingTarget: control.releaseServingTarget,
    describeServing: control.describeServing,
    ensureStableService: control.ensureStableService,
    shiftCanaryTraffic: control.shiftCanaryTraffic,
    rollbackCanary: control.rollbackCanary,
    promoteCanary: control.promoteCanary,
    analyseCanaryStep: analysis.analyseCanaryStep,
    runLoadTest: loadTest.runLoadTest,
  };
}

/** The re-index phases, on the knowledge queue; clean-up outlives a flaky database. */
export function knowledgeActivities(t: { heartbeatTimeoutSeconds: number }) {
  const heartbeatTimeout = `${t.heartbeatTimeoutSeconds}s`;
  const phases = proxyActivities<KnowledgeActivities>({
    taskQueue: TASK_QUEUES.knowledge,
    scheduleToStartTimeout: QUEUE_WAIT_TIMEOUT,
    startToCloseTimeout: '2h',
    heartbeatTimeout,
    retry: retry(10),
  });
  // Clean-up must outlive a cancelled workflow and a flaky database.
  const cleanup = proxyActivities<Pick<KnowledgeActivities, 'abortKnowledgeReindex'>>({
    taskQueue: TASK_QUEUES.knowledge,
    scheduleToStartTimeout: QUEUE_WAIT_TIMEOUT,
    startToCloseTimeout: '10m',
    heartbeatTimeout,
    retry: retry(20),
  });
  // Proxies have no own keys: hand them out as they are, never spread.
  return { phases, cleanup };
}

/** A load test against a known URL, on the cluster queue; `expectedSeconds` bounds the measurement. */
export function loadTestActivities(t: { expectedSeconds: number; heartbeatTimeoutSeconds: number }) {
  return proxyActivities<LoadTestActivities>({
    taskQueue: TASK_QUEUES.cluster,
    scheduleToStartTimeout: QUEUE_WAIT_TIMEOUT,
    startToCloseTimeout: `${Math.ceil(t.expectedSeconds) + 300}s`,
    heartbeatTimeout: `${t.heartbeatTimeoutSeconds}s`,
    retry: retry(3, '5s'),
  });
}

export type PromotionActivityProxies = ReturnType<typeof promotionActivities>;
export type ServingActivityProxies = ReturnType<typeof servingActivities>;
