import type {
  DeploymentMode,
  ServingCondition,
  ServingRef,
  ServingRevisionSpec,
  ServingStatus,
} from '../../../domain/serving-revision.js';
import type { Logger } from '../../../observability/logger.js';
import { type CanaryOptions, ClusterError } from '../../port.js';
import {
  buildPredictor,
  type InferenceService,
  type PredictorOptions,
  type PredictorSpec,
  predictorDigest,
} from '../inference-service.js';

// One interface for KServe's canary APIs, one module per API behind it (serverless.ts:
// `canaryTrafficPercent`; standard.ts: `spec.canary[]`; raw-deployment.ts: the mode that has
// none), picked once per call by the factory in index.ts - the shape of Argo Rollouts'
// `rollout/trafficrouting/` (a small reconciler interface, one package per router).
// A strategy never talks to the apiserver. Its changes are edits of an InferenceService
// that serving.ts applies with optimistic concurrency (and re-applies to a fresh read after
// a 409); its read-back maps what the controller reports to the port's ServingStatus and
// says whether traffic has settled. Everything here is pure.

/**
 * A change to the InferenceService as read: edits it in place and says whether anything
 * changed (false: already so, nothing is written). Throws a ClusterError to refuse.
 */
export type ServiceEdit = (isvc: InferenceService) => boolean;

/** Whether the controller has applied the spec and shows the asked-for split. */
export interface Settled {
  settled: boolean;
  progress: string;
  status: ServingStatus;
}

/** How a deployment mode's InferenceService reads back. */
export interface ServingReadback {
  /** What the service serves and how traffic is split, as the controller last reported it. */
  status(isvc: InferenceService, owner?: string): ServingStatus;
  /**
   * Whether the split shows `canaryPercent` (undefined: no canary, one revision at 100 %).
   * Throws when the controller reports the new revision failed: waiting would not help.
   */
  settled(isvc: InferenceService, canaryPercent: number | undefined): Settled;
}

/** One KServe canary API: start / set traffic / promote / roll back, and the read-back. */
export interface CanaryStrategy extends ServingReadback {
  readonly mode: DeploymentMode;
  /** Annotations a new InferenceService of this mode carries (besides mode and digests). */
  readonly deployAnnotations: Readonly<Record<string, string>>;
  /**
   * Makes `revision` the canary at `percent`; an identical canary at that percent is adopted.
   * With `baseline`, a copy of the stable predictor runs beside it with the same weight
   * (a mode that routes to two revisions only refuses with Unsupported).
   */
  startCanary(revision: ServingRevisionSpec, percent: number, options?: CanaryOptions): ServiceEdit;
  setTraffic(percent: number): ServiceEdit;
  /** Makes the canary the stable revision; no canary (already promoted) changes nothing. */
  promote(): ServiceEdit;
  /** All traffic back to the stable revision; no canary (already rolled back) changes nothing. */
  rollBack(): ServiceEdit;
}

/** What a strategy is built with: the service it drives and how predictors are written. */
export interface StrategyContext {
  ref: ServingRef;
  predictor: PredictorOptions;
  logger?: Logger;
}

type Named = Pick<ServingRef, 'namespace' | 'name'>;

export function describeService(ref: Named): string {
  return `InferenceService ${ref.namespace}/${ref.name}`;
}

export function unsupportedCanary(ref: Named): ClusterError {
  return new ClusterError(
    'Unsupported',
    `${describeService(ref)} runs in RawDeployment mode, where KServe releases before v0.20 ` +
      'silently ignore spec.predictor.canaryTrafficPercent (kserve#5335): the "canary" would get all traffic or none. ' +
      'Use deploymentMode "Standard" (KServe >= 0.20, spec.canary[]) or "Serverless" (Knative) for canary releases.',
    false,
  );
}

/** A mode whose traffic split holds two revisions cannot add a baseline beside the canary. */
export function baselineUnsupported(ref: Named, mode: DeploymentMode): ClusterError {
  return new ClusterError(
    'Unsupported',
    `${describeService(ref)} runs in ${mode} mode, whose traffic split holds at most two revisions: ` +
      'a baseline beside the canary needs deploymentMode "Standard" (spec.canary[] entries)',
    false,
  );
}

export function noCanaryInProgress(ref: Named): ClusterError {
  return new ClusterError('Invalid', `${describeService(ref)} has no canary in progress`, false);
}

export function alreadyStable(ref: Named): ClusterError {
  return new ClusterError(
    'Invalid',
    `${describeService(ref)} already serves this revision as its stable one`,
    false,
  );
}

/** The predictor a canary revision runs, and its identity. */
export function canaryPredictor(
  revision: ServingRevisionSpec,
  options: PredictorOptions,
): { predictor: PredictorSpec; digest: string } {
  const predictor = buildPredictor(revision, options);
  return { predictor, digest: predictorDigest(predictor) };
}

function conditionsOf(isvc: InferenceService): ServingCondition[] {
  return (isvc.status?.conditions ?? []).map((c) => ({
    type: c.type,
    status: c.status === 'True' || c.status === 'False' ? c.status : 'Unknown',
    reason: c.reason,
    message: c.message,
  }));
}

/** The part of a ServingStatus every mode reads the same way. */
export function baseStatus(isvc: InferenceService, owner?: string) {
  const conditions = conditionsOf(isvc);
  return {
    namespace: isvc.metadata.namespace,
    name: isvc.metadata.name,
    ready: conditions.some((c) => c.type === 'Ready' && c.status === 'True'),
    conditions,
    url: isvc.status?.url,
    owner,
  };
}

const FAILED_REASONS = new Set(['RevisionFailed', 'RevisionMissing', 'ContainerMissing', 'ExitCode']);

/**
 * The rule every mode shares (a failed revision throws; the controller must have observed the
 * spec and report Ready), then the mode's own: `waitingFor` says what the split still lacks,
 * or undefined once it is the one asked for.
 */
export function settleTraffic(
  isvc: InferenceService,
  status: ServingStatus,
  canaryPercent: number | undefined,
  waitingFor: (split: string) => string | undefined,
): Settled {
  const failedCondition = status.conditions.find(
    (c) => c.status === 'False' && FAILED_REASONS.has(c.reason ?? ''),
  );
  if (failedCondition) {
    throw new ClusterError(
      'Unavailable',
      `${describeService(isvc.metadata)}: ${failedCondition.type} is False (${failedCondition.reason}: ${failedCondition.message ?? ''})`,
      false,
    );
  }
  const generation = isvc.metadata.generation ?? 0;
  const observed = isvc.status?.observedGeneration ?? 0;
  const want = canaryPercent === undefined ? 'no canary' : `canary at ${canaryPercent}%`;
  const not = (why: string) => ({ settled: false, progress: `waiting for ${want}: ${why}`, status });
  if (observed < generation)
    return not(`controller has not observed generation ${generation} yet (at ${observed})`);
  if (!status.ready) {
    const readyCondition = status.conditions.find((c) => c.type === 'Ready');
    return not(
      `not Ready (${readyCondition?.reason ?? 'no Ready condition'}${readyCondition?.message ? `: ${readyCondition.message}` : ''})`,
    );
  }
  const split = status.traffic.map((t) => `${t.revision}=${t.percent}%`).join(', ') || 'no traffic reported';
  const why = waitingFor(split);
  return why === undefined ? { settled: true, progress: `settled: ${split}`, status } : not(why);
}
