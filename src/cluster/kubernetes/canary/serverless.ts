import type { ServingStatus, TrafficTarget } from '../../../domain/serving-revision.js';
import { type InferenceService, ISVC_ANNOTATIONS } from '../inference-service.js';
import {
  alreadyStable,
  baselineUnsupported,
  baseStatus,
  type CanaryStrategy,
  canaryPredictor,
  noCanaryInProgress,
  type ServingReadback,
  type Settled,
  type StrategyContext,
  settleTraffic,
} from './strategy.js';

// KServe's Serverless (Knative) canary API: one predictor, and `canaryTrafficPercent` sends
// that share to the latest revision and the rest to the last rolled-out one. The spec only
// ever describes the latest revision, so qwenops' annotations remember the stable one
// (digest, storageUri) and a rolled-back one. Status: status.components.predictor.traffic[].
// Promote: drop the field; roll back: 0 pins all traffic to the previous rolled-out revision.

/** Serverless: latest-/prev- URLs reach each revision alone (canary analysis). */
export const TAG_ROUTING_ANNOTATION = 'serving.kserve.io/enable-tag-routing';

/** Annotations of an object being edited, created when absent. */
function annotationsOf(isvc: InferenceService): Record<string, string> {
  if (!isvc.metadata.annotations) isvc.metadata.annotations = {};
  return isvc.metadata.annotations;
}

/** A canary is in progress when the latest revision is neither the stable one nor rolled back. */
export function serverlessCanaryActive(isvc: InferenceService): boolean {
  const a = isvc.metadata.annotations ?? {};
  const latest = a[ISVC_ANNOTATIONS.revisionDigest];
  return (
    isvc.spec.predictor.canaryTrafficPercent !== undefined &&
    latest !== undefined &&
    latest !== a[ISVC_ANNOTATIONS.stableDigest] &&
    latest !== a[ISVC_ANNOTATIONS.rolledBackDigest]
  );
}

/** Knative's status read as qwenops' split; `canaryActive` false reads one revision (RawDeployment too). */
export function knativeStatus(isvc: InferenceService, canaryActive: boolean, owner?: string): ServingStatus {
  const component = isvc.status?.components?.predictor ?? {};
  const specUri = isvc.spec.predictor.model.storageUri;
  const stableUri = isvc.metadata.annotations?.[ISVC_ANNOTATIONS.stableStorageUri] ?? specUri;
  const traffic: TrafficTarget[] = (component.traffic ?? []).map((t) => {
    const latest = t.latestRevision === true && (canaryActive || t.percent !== 100);
    return {
      revision: t.revisionName ?? component.latestReadyRevision ?? '',
      percent: t.percent ?? 0,
      tag: latest ? 'latest' : 'prev',
      url: t.url,
      storageUri: latest ? specUri : stableUri,
    };
  });
  // At canaryTrafficPercent 100 KServe already books the canary as rolled out; until qwenops
  // promotes it, the stable revision is still the one before it.
  const latestRevision = traffic.find((t) => t.tag === 'latest')?.revision;
  const canaryBookedAsRolledOut = canaryActive && latestRevision === component.latestRolledoutRevision;
  return {
    ...baseStatus(isvc, owner),
    traffic,
    canaryPercent: canaryActive ? traffic.find((t) => t.tag === 'latest')?.percent : undefined,
    latestCreatedRevision: component.latestCreatedRevision,
    latestReadyRevision: component.latestReadyRevision,
    latestRolledoutRevision: canaryBookedAsRolledOut
      ? component.previousRolledoutRevision
      : component.latestRolledoutRevision,
    previousRolledoutRevision: canaryBookedAsRolledOut ? undefined : component.previousRolledoutRevision,
    stableStorageUri: stableUri,
    canaryStorageUri: canaryActive ? specUri : undefined,
  };
}

/** Knative's split settled: one revision at 100 % with no canary, else the latest at `canaryPercent`. */
export function knativeSettled(
  isvc: InferenceService,
  status: ServingStatus,
  canaryPercent: number | undefined,
): Settled {
  return settleTraffic(isvc, status, canaryPercent, (split) => {
    if (canaryPercent === undefined) {
      const settled = status.canaryPercent === undefined && status.traffic.some((t) => t.percent === 100);
      return settled ? undefined : `traffic is ${split}`;
    }
    const latest = status.traffic.find((t) => t.tag === 'latest');
    if (!latest || latest.percent !== canaryPercent) return `traffic is ${split}`;
    if (
      status.latestReadyRevision !== status.latestCreatedRevision ||
      latest.revision !== status.latestCreatedRevision
    ) {
      return `latest revision ${status.latestCreatedRevision ?? '?'} not ready yet (${split})`;
    }
    if (
      canaryPercent < 100 &&
      !status.traffic.some((t) => t.tag === 'prev' && t.percent === 100 - canaryPercent)
    ) {
      return `stable revision does not carry ${100 - canaryPercent}% (${split})`;
    }
    return undefined;
  });
}

export const serverlessReadback: ServingReadback = {
  status: (isvc, owner) => knativeStatus(isvc, serverlessCanaryActive(isvc), owner),
  settled(isvc, canaryPercent) {
    return knativeSettled(isvc, knativeStatus(isvc, serverlessCanaryActive(isvc)), canaryPercent);
  },
};

export function serverlessCanary({ ref, predictor: options }: StrategyContext): CanaryStrategy {
  return {
    ...serverlessReadback,
    mode: 'Serverless',
    deployAnnotations: { [TAG_ROUTING_ANNOTATION]: 'true' },
    startCanary(revision, percent, canaryOptions) {
      if (canaryOptions?.baseline) throw baselineUnsupported(ref, 'Serverless');
      const { predictor, digest } = canaryPredictor(revision, options);
      return (isvc) => {
        const a = annotationsOf(isvc);
        if (a[ISVC_ANNOTATIONS.stableDigest] === digest) throw alreadyStable(ref);
        const same =
          a[ISVC_ANNOTATIONS.revisionDigest] === digest && a[ISVC_ANNOTATIONS.rolledBackDigest] !== digest;
        if (same && isvc.spec.predictor.canaryTrafficPercent === percent) return false; // adopt
        // The predictor now describes the new revision; canaryTrafficPercent sends `percent`
        // to it and the rest to the last rolled-out revision.
        isvc.spec.predictor = { ...predictor, canaryTrafficPercent: percent };
        a[ISVC_ANNOTATIONS.revisionDigest] = digest;
        delete a[ISVC_ANNOTATIONS.rolledBackDigest];
        return true;
      };
    },
    setTraffic: (percent) => (isvc) => {
      if (!serverlessCanaryActive(isvc)) throw noCanaryInProgress(ref);
      if (isvc.spec.predictor.canaryTrafficPercent === percent) return false;
      isvc.spec.predictor.canaryTrafficPercent = percent;
      return true;
    },
    promote: () => (isvc) => {
      if (!serverlessCanaryActive(isvc)) return false;
      // Dropping canaryTrafficPercent sends 100 % to the latest revision, which KServe then
      // records as latestRolledoutRevision.
      delete isvc.spec.predictor.canaryTrafficPercent;
      const a = annotationsOf(isvc);
      a[ISVC_ANNOTATIONS.stableDigest] = a[ISVC_ANNOTATIONS.revisionDigest] as string;
      a[ISVC_ANNOTATIONS.stableStorageUri] = isvc.spec.predictor.model.storageUri ?? '';
      return true;
    },
    rollBack: () => (isvc) => {
      if (!serverlessCanaryActive(isvc)) return false;
      // KServe's rollback: 0 % pins all traffic to the previous rolled-out revision.
      isvc.spec.predictor.canaryTrafficPercent = 0;
      const a = annotationsOf(isvc);
      a[ISVC_ANNOTATIONS.rolledBackDigest] = a[ISVC_ANNOTATIONS.revisionDigest] as string;
      return true;
    },
  };
}
