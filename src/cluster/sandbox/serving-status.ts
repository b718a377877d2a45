import type { ServingCondition, ServingStatus, TrafficTarget } from '../../domain/serving-revision.js';
import { appliedBaselinePercent, type Observe, type ServiceRecord } from './serving-state.js';
import type { ProxyFault } from './traffic-proxy.js';

// A sandbox service's record read back (serving-state.ts): the traffic split the proxy
// applies, each revision's fault and role, and the ServingStatus KServe would report, where
// Ready means the split applied is the one asked for. Pure, like the transitions.

export function roleOf(record: ServiceRecord, revision: string): 'stable' | 'canary' | 'baseline' {
  if (revision === record.canary) return 'canary';
  return revision === record.baseline ? 'baseline' : 'stable';
}

/** The fault a revision's sidecar applies: its own rule, else its role's. */
export function faultOf(record: ServiceRecord, revision: string): ProxyFault | undefined {
  const faults = record.faults ?? {};
  const role =
    revision === record.canary ? faults.canary : revision === record.stable ? faults.stable : undefined;
  return faults.revisions?.[revision] ?? role;
}

/** The applied split, over the revisions that are healthy now (what the proxy gets). */
export function trafficWeights(
  record: ServiceRecord,
  observe: Observe,
): Array<{ revision: string; weight: number }> {
  const weights: Array<{ revision: string; weight: number }> = [];
  const stable = observe(record.stable);
  const canary = record.canary ? observe(record.canary) : undefined;
  const canaryWeight = canary && record.appliedCanaryPercent !== undefined ? record.appliedCanaryPercent : 0;
  const baselineWeight = appliedBaselinePercent(record, observe);
  if (stable?.healthy) weights.push({ revision: record.stable, weight: 100 - canaryWeight - baselineWeight });
  if (record.canary && canary?.healthy && canaryWeight > 0)
    weights.push({ revision: record.canary, weight: canaryWeight });
  if (record.baseline && baselineWeight > 0)
    weights.push({ revision: record.baseline, weight: baselineWeight });
  return weights;
}

function revisionTarget(
  record: ServiceRecord,
  observe: Observe,
  name: string,
  percent: number,
  tag?: TrafficTarget['tag'],
): TrafficTarget {
  const target: TrafficTarget = { revision: name, percent };
  if (tag) target.tag = tag;
  const url = observe(name)?.url;
  if (url) target.url = url;
  const storageUri = record.revisions[name]?.spec.storageUri;
  if (storageUri) target.storageUri = storageUri;
  return target;
}

const condition = (type: string, ok: boolean, reason: string, message?: string): ServingCondition =>
  ok ? { type, status: 'True' } : { type, status: 'False', reason, ...(message ? { message } : {}) };

/** The service as KServe would report it, from the record and what its processes show. */
export function serviceStatus(
  record: ServiceRecord,
  observe: Observe,
  where: { url: string; owner?: string },
): ServingStatus {
  const stable = observe(record.stable);
  const predictorProblems: string[] = [];
  const failed: string[] = [];
  for (const name of [record.stable, record.canary, record.baseline]) {
    const p = name === undefined ? undefined : observe(name);
    if (p?.failed) failed.push(`${p.failed.reason}: ${p.failed.message}`);
    else if (p && !p.healthy) predictorProblems.push(p.lastError ?? `revision ${name} is starting`);
  }
  predictorProblems.unshift(...failed);
  const baselinePending = record.baseline !== undefined && observe(record.baseline)?.healthy !== true;
  const routesPending =
    (record.canary !== undefined && record.appliedCanaryPercent !== record.desiredCanaryPercent) ||
    baselinePending;
  const predictorReady = predictorProblems.length === 0;
  const routesReady = !routesPending && stable?.healthy === true;
  const conditions = [
    // RevisionFailed: the revision can never become ready (Knative's reason); waiters stop.
    condition(
      'PredictorReady',
      predictorReady,
      failed.length > 0 ? 'RevisionFailed' : 'RevisionNotReady',
      predictorProblems.join('; '),
    ),
    condition(
      'RoutesReady',
      routesReady,
      'TrafficNotApplied',
      routesPending
        ? baselinePending
          ? `baseline ${record.baseline} gets the canary's weight once it is healthy`
          : `canary ${record.canary} gets ${record.desiredCanaryPercent}% once it is healthy`
        : 'no healthy revision',
    ),
    condition('Ready', predictorReady && routesReady, 'NotReady', 'predictor or routes not ready'),
  ];
  const applied = record.canary ? record.appliedCanaryPercent : undefined;
  const baseline = appliedBaselinePercent(record, observe);
  const traffic =
    applied !== undefined && record.canary
      ? [
          revisionTarget(record, observe, record.stable, 100 - applied - baseline, 'prev'),
          revisionTarget(record, observe, record.canary, applied, 'latest'),
        ]
      : [revisionTarget(record, observe, record.stable, 100)];
  if (record.baseline && applied !== undefined)
    traffic.push(revisionTarget(record, observe, record.baseline, baseline, 'baseline'));
  const status: ServingStatus = {
    namespace: record.namespace,
    name: record.name,
    ready: predictorReady && routesReady,
    conditions,
    url: where.url,
    traffic,
    latestCreatedRevision: record.latestCreatedRevision,
    stableStorageUri: record.revisions[record.stable]?.spec.storageUri,
  };
  if (applied !== undefined) status.canaryPercent = applied;
  if (record.baseline && applied !== undefined) status.baselinePercent = baseline;
  if (record.latestReadyRevision) status.latestReadyRevision = record.latestReadyRevision;
  if (record.latestRolledoutRevision) status.latestRolledoutRevision = record.latestRolledoutRevision;
  if (record.previousRolledoutRevision) status.previousRolledoutRevision = record.previousRolledoutRevision;
  if (record.canary) status.canaryStorageUri = record.revisions[record.canary]?.spec.storageUri;
  if (where.owner) status.owner = where.owner;
  return status;
}
