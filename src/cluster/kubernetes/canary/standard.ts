import { ClusterError, type ServingStatus, type TrafficTarget } from '../../port.js';
import { type CanaryEntry, type InferenceService, predictorDigest } from '../inference-service.js';
import {
  alreadyStable,
  baseStatus,
  type CanaryStrategy,
  canaryPredictor,
  describeService,
  noCanaryInProgress,
  type ServingReadback,
  type StrategyContext,
  settleTraffic,
} from './strategy.js';

// KServe's Standard-mode canary API (KServe >= 0.20, annotation deploymentMode: Standard):
// named predictors, one `spec.canary[]` entry with its `trafficPercent` beside the stable
// predictor, status.canaryStatuses[] and the CanaryPredictorReady condition. Each predictor
// is its own Deployment, so the stable one is in the spec and needs no annotation. Promote:
// the canary's predictor becomes spec.predictor (its pods stay); roll back: drop the entry.

/** The canary's predictor name, deterministic from what it serves. */
export function canaryPredictorName(digest: string): string {
  return `r-${digest.slice(0, 10)}`;
}

/** The Deployment KServe creates for a named predictor (must fit 63 characters). */
export function predictorDeploymentName(service: string, predictorName?: string): string {
  return predictorName ? `${service}-${predictorName}-predictor` : `${service}-predictor`;
}

function standardStatus(isvc: InferenceService, owner?: string): ServingStatus {
  const specUri = isvc.spec.predictor.model.storageUri;
  const canary = isvc.spec.canary?.[0];
  const canaryName = canary?.predictor.name;
  const observed = isvc.status?.canaryStatuses?.find((c) => c.name === canaryName);
  const canaryPercent = canary ? observed?.trafficPercent : undefined;
  const stableRevision = predictorDeploymentName(isvc.metadata.name, isvc.spec.predictor.name);
  const traffic: TrafficTarget[] = [
    { revision: stableRevision, percent: 100 - (canaryPercent ?? 0), tag: 'prev', storageUri: specUri },
  ];
  if (canary) {
    traffic.push({
      revision: predictorDeploymentName(isvc.metadata.name, canaryName),
      percent: canaryPercent ?? 0,
      tag: 'latest',
      storageUri: canary.predictor.model.storageUri,
    });
  }
  return {
    ...baseStatus(isvc, owner),
    traffic,
    canaryPercent,
    latestCreatedRevision: traffic[traffic.length - 1]?.revision,
    latestReadyRevision: canary && observed?.ready ? traffic[1]?.revision : stableRevision,
    latestRolledoutRevision: stableRevision,
    stableStorageUri: specUri,
    canaryStorageUri: canary?.predictor.model.storageUri,
  };
}

export const standardReadback: ServingReadback = {
  status: standardStatus,
  settled(isvc, canaryPercent) {
    const status = standardStatus(isvc);
    return settleTraffic(isvc, status, canaryPercent, (split) => {
      const canaryCondition = status.conditions.find((c) => c.type === 'CanaryPredictorReady');
      if (canaryPercent === undefined) {
        const leftovers = isvc.status?.canaryStatuses?.length ?? 0;
        const reported = isvc.spec.canary?.length || leftovers > 0 || canaryCondition;
        return reported ? `canary still reported (${split})` : undefined;
      }
      const name = isvc.spec.canary?.[0]?.predictor.name;
      const observedCanary = isvc.status?.canaryStatuses?.find((c) => c.name === name);
      if (!observedCanary?.ready || canaryCondition?.status !== 'True')
        return `canary ${name ?? '?'} not ready`;
      if (observedCanary.trafficPercent !== canaryPercent) return `traffic is ${split}`;
      return undefined;
    });
  },
};

export function standardCanary({ ref, predictor: options, logger }: StrategyContext): CanaryStrategy {
  return {
    ...standardReadback,
    mode: 'Standard',
    deployAnnotations: {},
    startCanary(revision, percent) {
      const { predictor, digest } = canaryPredictor(revision, options);
      const name = canaryPredictorName(digest);
      return (isvc) => {
        if (predictorDigest(isvc.spec.predictor) === digest) throw alreadyStable(ref);
        const deployment = predictorDeploymentName(ref.name, name);
        if (deployment.length > 63) {
          throw new ClusterError(
            'Invalid',
            `${describeService(ref)}: the canary Deployment name "${deployment}" exceeds 63 characters; use a service name of at most ${63 - deployment.length + ref.name.length} characters`,
            false,
          );
        }
        const current = isvc.spec.canary?.[0];
        if (current?.predictor.name === name) {
          if (current.trafficPercent === percent) return false; // adopt
          current.trafficPercent = percent;
          return true;
        }
        if (current) {
          logger?.warn(
            { service: ref.name, replaced: current.predictor.name, canary: name },
            'replacing a leftover canary entry',
          );
        }
        const entry: CanaryEntry = { trafficPercent: percent, predictor: { ...predictor, name } };
        isvc.spec.canary = [entry];
        return true;
      };
    },
    setTraffic: (percent) => (isvc) => {
      const entry = isvc.spec.canary?.[0];
      if (!entry) throw noCanaryInProgress(ref);
      if (entry.trafficPercent === percent) return false;
      entry.trafficPercent = percent;
      return true;
    },
    promote: () => (isvc) => {
      const entry = isvc.spec.canary?.[0];
      if (!entry) return false; // already promoted (a retried activity)
      // The canary's named predictor becomes the predictor; its pods stay.
      isvc.spec.predictor = entry.predictor;
      delete isvc.spec.canary;
      return true;
    },
    rollBack: () => (isvc) => {
      if (!isvc.spec.canary?.length) return false;
      delete isvc.spec.canary;
      return true;
    },
  };
}
