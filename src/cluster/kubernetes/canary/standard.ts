import {
  baselinePercentFor,
  type ServingStatus,
  type TrafficTarget,
} from '../../../domain/serving-revision.js';
import { ClusterError } from '../../port.js';
import {
  type CanaryEntry,
  type InferenceService,
  type PredictorSpec,
  predictorDigest,
} from '../inference-service.js';
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
// named predictors, a `spec.canary[]` entry with its `trafficPercent` beside the stable
// predictor (and, with a baseline, a second entry: a copy of the stable predictor with the
// canary's weight), status.canaryStatuses[] and the CanaryPredictorReady condition. Each
// predictor is its own Deployment, so the stable one is in the spec and needs no annotation.
// Promote: the canary's predictor becomes spec.predictor (its pods stay) and the entries go;
// roll back: drop the entries.

/** The canary's predictor name, deterministic from what it serves. */
export function canaryPredictorName(digest: string): string {
  return `r-${digest.slice(0, 10)}`;
}

/** The Deployment KServe creates for a named predictor (must fit 63 characters). */
export function predictorDeploymentName(service: string, predictorName?: string): string {
  return predictorName ? `${service}-${predictorName}-predictor` : `${service}-predictor`;
}

/** The baseline's predictor name: a copy of the stable predictor with its digest. */
export function baselinePredictorName(digest: string): string {
  return `b-${digest.slice(0, 10)}`;
}

const isBaseline = (entry: CanaryEntry) => entry.predictor.name?.startsWith('b-') === true;

/** The canary's entry in spec.canary[] (the one that is not the baseline). */
function canaryEntryOf(isvc: InferenceService): CanaryEntry | undefined {
  return isvc.spec.canary?.find((e) => !isBaseline(e));
}

function baselineEntryOf(isvc: InferenceService): CanaryEntry | undefined {
  return isvc.spec.canary?.find(isBaseline);
}

function standardStatus(isvc: InferenceService, owner?: string): ServingStatus {
  const specUri = isvc.spec.predictor.model.storageUri;
  const canary = canaryEntryOf(isvc);
  const baseline = baselineEntryOf(isvc);
  const observedPercent = (entry: CanaryEntry | undefined) =>
    entry ? isvc.status?.canaryStatuses?.find((c) => c.name === entry.predictor.name) : undefined;
  const observed = observedPercent(canary);
  const canaryPercent = canary ? observed?.trafficPercent : undefined;
  const baselinePercent = baseline ? (observedPercent(baseline)?.trafficPercent ?? 0) : undefined;
  const stableRevision = predictorDeploymentName(isvc.metadata.name, isvc.spec.predictor.name);
  const traffic: TrafficTarget[] = [
    {
      revision: stableRevision,
      percent: 100 - (canaryPercent ?? 0) - (baselinePercent ?? 0),
      tag: 'prev',
      storageUri: specUri,
    },
  ];
  if (canary) {
    traffic.push({
      revision: predictorDeploymentName(isvc.metadata.name, canary.predictor.name),
      percent: canaryPercent ?? 0,
      tag: 'latest',
      storageUri: canary.predictor.model.storageUri,
    });
  }
  if (baseline) {
    traffic.push({
      revision: predictorDeploymentName(isvc.metadata.name, baseline.predictor.name),
      percent: baselinePercent ?? 0,
      tag: 'baseline',
      storageUri: baseline.predictor.model.storageUri,
    });
  }
  const canaryRevision = canary
    ? predictorDeploymentName(isvc.metadata.name, canary.predictor.name)
    : undefined;
  return {
    ...baseStatus(isvc, owner),
    traffic,
    canaryPercent,
    ...(baselinePercent !== undefined ? { baselinePercent } : {}),
    latestCreatedRevision: canaryRevision ?? stableRevision,
    latestReadyRevision: canary && observed?.ready ? canaryRevision : stableRevision,
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
      // Every entry (the canary, and the baseline when there is one) ready at its percent.
      for (const entry of isvc.spec.canary ?? []) {
        const name = entry.predictor.name;
        const observed = isvc.status?.canaryStatuses?.find((c) => c.name === name);
        const role = isBaseline(entry) ? 'baseline' : 'canary';
        if (!observed?.ready) return `${role} ${name ?? '?'} not ready`;
        if (observed.trafficPercent !== entry.trafficPercent) return `traffic is ${split}`;
      }
      const name = canaryEntryOf(isvc)?.predictor.name;
      const observedCanary = isvc.status?.canaryStatuses?.find((c) => c.name === name);
      if (!observedCanary?.ready || canaryCondition?.status !== 'True')
        return `canary ${name ?? '?'} not ready`;
      if (observedCanary.trafficPercent !== canaryPercent) return `traffic is ${split}`;
      return undefined;
    });
  },
};

export function standardCanary({ ref, predictor: options, logger }: StrategyContext): CanaryStrategy {
  const checkName = (deployment: string, role: string) => {
    if (deployment.length > 63) {
      throw new ClusterError(
        'Invalid',
        `${describeService(ref)}: the ${role} Deployment name "${deployment}" exceeds 63 characters; use a service name of at most ${63 - deployment.length + ref.name.length} characters`,
        false,
      );
    }
  };
  /** The baseline entry for a service whose stable predictor is `stable`, at the canary's `percent`. */
  const baselineEntry = (stable: PredictorSpec, percent: number): CanaryEntry => {
    const name = baselinePredictorName(predictorDigest(stable));
    checkName(predictorDeploymentName(ref.name, name), 'baseline');
    return { trafficPercent: baselinePercentFor(percent), predictor: { ...structuredClone(stable), name } };
  };
  return {
    ...standardReadback,
    mode: 'Standard',
    deployAnnotations: {},
    startCanary(revision, percent, canaryOptions) {
      const { predictor, digest } = canaryPredictor(revision, options);
      const name = canaryPredictorName(digest);
      return (isvc) => {
        if (predictorDigest(isvc.spec.predictor) === digest) throw alreadyStable(ref);
        checkName(predictorDeploymentName(ref.name, name), 'canary');
        const current = canaryEntryOf(isvc);
        if (current?.predictor.name === name) {
          // The same canary again (a retried activity): adopt it, re-aimed at `percent`.
          let changed = current.trafficPercent !== percent;
          current.trafficPercent = percent;
          const baseline = baselineEntryOf(isvc);
          if (baseline && baseline.trafficPercent !== baselinePercentFor(percent)) {
            baseline.trafficPercent = baselinePercentFor(percent);
            changed = true;
          }
          if (canaryOptions?.baseline && !baseline) {
            isvc.spec.canary = [current, baselineEntry(isvc.spec.predictor, percent)];
            changed = true;
          }
          return changed;
        }
        if (current) {
          logger?.warn(
            { service: ref.name, replaced: current.predictor.name, canary: name },
            'replacing a leftover canary entry',
          );
        }
        const entry: CanaryEntry = { trafficPercent: percent, predictor: { ...predictor, name } };
        isvc.spec.canary = canaryOptions?.baseline
          ? [entry, baselineEntry(isvc.spec.predictor, percent)]
          : [entry];
        return true;
      };
    },
    setTraffic: (percent) => (isvc) => {
      const entry = canaryEntryOf(isvc);
      if (!entry) throw noCanaryInProgress(ref);
      const baseline = baselineEntryOf(isvc);
      const unchanged =
        entry.trafficPercent === percent &&
        (!baseline || baseline.trafficPercent === baselinePercentFor(percent));
      if (unchanged) return false;
      entry.trafficPercent = percent;
      if (baseline) baseline.trafficPercent = baselinePercentFor(percent);
      return true;
    },
    promote: () => (isvc) => {
      const entry = canaryEntryOf(isvc);
      if (!entry) return false; // already promoted (a retried activity)
      // The canary's named predictor becomes the predictor; its pods stay. The baseline goes.
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
