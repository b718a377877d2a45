import {
  baselinePercentFor,
  type DeploymentMode,
  type ServingRevisionSpec,
} from '../../domain/serving-revision.js';
import { ClusterError } from '../port.js';
import type { ServiceView } from './api.js';
import type { ProxyFault } from './traffic-proxy.js';

// The sandbox's serving bookkeeping as a state machine over one service's record, with
// KServe's canary semantics: a stable (rolled-out) revision and at most one canary (plus,
// in Standard mode, a baseline: a fresh copy of the stable revision with the canary's
// weight); revisions named <service>-predictor-00001, -00002...; a desired canary
// percent, and the applied one that trails it until the canary is healthy, so the status
// reports the split actually applied, and Ready only when it is the one asked for.
// Pure: each transition takes a record (never changed) and a command, and returns the new
// record plus the revisions whose processes must start or stop, or throws a ClusterError;
// a transition that changes nothing returns the record it was given (the same object).
// What only the processes know (healthy, failed, address) comes in as an observation;
// serving-status.ts reads a record back (status, split, faults), and serving-manager.ts runs
// the processes and the traffic proxy, and persists the record.

export interface ServiceRecord {
  namespace: string;
  name: string;
  deploymentMode: DeploymentMode;
  /** Number of the last revision created. */
  generation: number;
  revisions: Record<string, { spec: ServingRevisionSpec; createdAt: string; pid?: number }>;
  stable: string;
  canary?: string;
  /** A fresh copy of the stable revision started with the canary; its weight follows the canary's. */
  baseline?: string;
  desiredCanaryPercent?: number;
  /** The split the proxy applies; trails the desired one until the canary is healthy. */
  appliedCanaryPercent?: number;
  latestCreatedRevision: string;
  latestReadyRevision?: string;
  latestRolledoutRevision?: string;
  previousRolledoutRevision?: string;
  proxyPort: number;
  history: ServiceView['history'];
  /** Fault injection per role or revision name (what a mesh's VirtualService fault does). */
  faults?: FaultRules;
}

/** Where faults apply: the current canary, the current stable revision, or named revisions. */
export interface FaultRules {
  canary?: ProxyFault;
  stable?: ProxyFault;
  revisions?: Record<string, ProxyFault>;
}

/** What the process layer knows of a revision and the record does not (a RevisionProcess is one). */
export interface RevisionObservation {
  healthy: boolean;
  /** Set once the revision can no longer become ready. */
  failed?: { reason: string; message: string };
  lastError?: string;
  /** The revision's own address. */
  url?: string;
  readySeconds?: number;
}

/** The observation of a revision by name; undefined when no process runs it. */
export type Observe = (revision: string) => RevisionObservation | undefined;

export interface Transition {
  record: ServiceRecord;
  /** New revisions: start their processes. */
  started: string[];
  /** Revisions taken out of the service: stop their processes once in-flight requests drained. */
  retired: string[];
}

const keyOf = (record: Pick<ServiceRecord, 'namespace' | 'name'>) => `${record.namespace}/${record.name}`;

const transition = (record: ServiceRecord, started: string[] = [], retired: string[] = []): Transition => ({
  record,
  started,
  retired,
});

/** Identity of a revision: everything but labels (labels carry workflow ids, not behaviour). */
export function fingerprint(spec: ServingRevisionSpec): string {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
      );
    }
    return value;
  };
  const { labels: _labels, ...rest } = spec;
  return JSON.stringify(canonical(rest));
}

const revisionNumber = (name: string) => Number(name.slice(name.lastIndexOf('-') + 1));

/** Adds the next numbered revision to `record` (a copy being built) and names it. */
function addRevision(record: ServiceRecord, spec: ServingRevisionSpec, createdAt: string): string {
  record.generation++;
  const name = `${record.name}-predictor-${String(record.generation).padStart(5, '0')}`;
  record.revisions[name] = { spec, createdAt };
  record.latestCreatedRevision = name;
  return name;
}

/** Asks for `percent`; it applies at once when the canary is already healthy. */
function setDesired(record: ServiceRecord, percent: number, observe: Observe): void {
  record.desiredCanaryPercent = percent;
  if (record.canary && observe(record.canary)?.healthy) record.appliedCanaryPercent = percent;
}

function clearCanary(record: ServiceRecord): void {
  record.canary = undefined;
  record.baseline = undefined;
  record.desiredCanaryPercent = undefined;
  record.appliedCanaryPercent = undefined;
}

/** Takes a revision out of `record` (a copy being built), remembering it in the history. */
function retire(
  record: ServiceRecord,
  name: string,
  outcome: 'replaced' | 'rolled-back' | 'baseline-removed',
  observe: Observe,
): void {
  const entry = record.revisions[name];
  const readySeconds = observe(name)?.readySeconds;
  if (entry) {
    record.history.push({
      name,
      storageUri: entry.spec.storageUri,
      outcome,
      ...(readySeconds !== undefined ? { readySeconds: Math.round(readySeconds * 1000) / 1000 } : {}),
    });
  }
  delete record.revisions[name];
}

export interface DeployCommand {
  namespace: string;
  name: string;
  deploymentMode: DeploymentMode;
  spec: ServingRevisionSpec;
  /** ISO time the revision is created at. */
  now: string;
}

/** A new service serving `spec` at 100 %; an existing one is adopted if it serves the same storageUri. */
export function deploy(existing: ServiceRecord | undefined, command: DeployCommand): Transition {
  const { spec } = command;
  if (existing) {
    const stableSpec = existing.revisions[existing.stable]?.spec;
    if (stableSpec?.storageUri === spec.storageUri) return transition(existing); // the same object: nothing changed
    throw new ClusterError(
      'Conflict',
      `inferenceservice ${keyOf(existing)} already serves ${stableSpec?.storageUri} (revision ${existing.stable}); roll out ${spec.storageUri} as a canary instead`,
      false,
    );
  }
  const record: ServiceRecord = {
    namespace: command.namespace,
    name: command.name,
    deploymentMode: command.deploymentMode,
    generation: 0,
    revisions: {},
    stable: '',
    latestCreatedRevision: '',
    proxyPort: 0,
    history: [],
  };
  record.stable = addRevision(record, spec, command.now);
  return transition(record, [record.stable]);
}

export interface StartCanaryCommand {
  deploymentMode: DeploymentMode;
  spec: ServingRevisionSpec;
  percent: number;
  now: string;
  /** Also start a baseline: a fresh copy of the stable revision (Standard mode only). */
  baseline?: boolean;
}

/** The baseline's share of the applied split: the canary's, once both are serving. */
export function appliedBaselinePercent(record: ServiceRecord, observe: Observe): number {
  if (!record.baseline || record.appliedCanaryPercent === undefined) return 0;
  return observe(record.baseline)?.healthy ? baselinePercentFor(record.appliedCanaryPercent) : 0;
}

/** Adds the baseline (a copy of the stable revision's spec) to `record`, a copy being built. */
function addBaseline(record: ServiceRecord, now: string): string {
  const stable = record.revisions[record.stable]?.spec;
  if (!stable) {
    throw new ClusterError(
      'Conflict',
      `inferenceservice ${keyOf(record)} has no stable revision to copy`,
      false,
    );
  }
  return addRevision(record, structuredClone(stable), now);
}

/** A new canary revision asking for `percent`; the same canary again (a retry) is re-aimed. */
export function startCanary(
  record: ServiceRecord,
  command: StartCanaryCommand,
  observe: Observe,
): Transition {
  if (command.deploymentMode === 'RawDeployment' || record.deploymentMode === 'RawDeployment') {
    throw new ClusterError(
      'Unsupported',
      `inferenceservice ${keyOf(record)}: canary rollouts need Serverless or Standard mode (RawDeployment ignores canaryTrafficPercent)`,
      false,
    );
  }
  if (command.baseline && (command.deploymentMode !== 'Standard' || record.deploymentMode !== 'Standard')) {
    throw new ClusterError(
      'Unsupported',
      `inferenceservice ${keyOf(record)}: a baseline needs Standard mode (spec.canary[] routes to several revisions; ${record.deploymentMode} routes to at most two)`,
      false,
    );
  }
  const next = structuredClone(record);
  if (next.canary) {
    const current = next.revisions[next.canary]?.spec;
    if (!current || fingerprint(current) !== fingerprint(command.spec)) {
      throw new ClusterError(
        'Conflict',
        `inferenceservice ${keyOf(record)} already has canary ${next.canary} (${current?.storageUri}); promote or roll it back first`,
        false,
      );
    }
    // The same canary again (a retried activity): adopt it at the asked percent.
    setDesired(next, command.percent, observe);
    return transition(next);
  }
  // The baseline is created first, so the canary stays the latest revision (KServe's "latest").
  if (command.baseline) next.baseline = addBaseline(next, command.now);
  next.canary = addRevision(next, command.spec, command.now);
  next.desiredCanaryPercent = command.percent;
  next.appliedCanaryPercent = undefined;
  return transition(next, next.baseline ? [next.baseline, next.canary] : [next.canary]);
}

export function setCanaryTraffic(record: ServiceRecord, percent: number, observe: Observe): Transition {
  if (!record.canary) {
    throw new ClusterError(
      'Conflict',
      `inferenceservice ${keyOf(record)} has no canary to set traffic for`,
      false,
    );
  }
  const next = structuredClone(record);
  setDesired(next, percent, observe);
  return transition(next);
}

/** The healthy canary becomes the stable revision; the old stable one is retired. */
export function promote(record: ServiceRecord, observe: Observe): Transition {
  if (!record.canary) {
    // Promoted already (a retried call) is success; a rolled-back canary is not.
    if (record.latestRolledoutRevision === record.latestCreatedRevision) return transition(record);
    throw new ClusterError(
      'Conflict',
      `inferenceservice ${keyOf(record)} has no canary to promote (latest revision ${record.latestCreatedRevision} was rolled back)`,
      false,
    );
  }
  if (!observe(record.canary)?.healthy) {
    throw new ClusterError(
      'Unavailable',
      `canary ${record.canary} of ${keyOf(record)} is not ready yet; promote it once it is`,
      true,
    );
  }
  const next = structuredClone(record);
  const old = next.stable;
  next.previousRolledoutRevision = old;
  next.latestRolledoutRevision = record.canary;
  next.stable = record.canary;
  clearCanary(next);
  retire(next, old, 'replaced', observe);
  if (record.baseline) retire(next, record.baseline, 'baseline-removed', observe);
  return transition(next, [], record.baseline ? [old, record.baseline] : [old]);
}

/** All traffic back to the stable revision; the canary is retired. No canary: nothing to do. */
export function rollBack(record: ServiceRecord, observe: Observe): Transition {
  if (!record.canary) return transition(record);
  const next = structuredClone(record);
  clearCanary(next);
  retire(next, record.canary, 'rolled-back', observe);
  if (record.baseline) retire(next, record.baseline, 'baseline-removed', observe);
  return transition(next, [], record.baseline ? [record.canary, record.baseline] : [record.canary]);
}

/** A revision answered its readiness probe: it counts as ready, and a canary gets its traffic. */
export function revisionHealthy(record: ServiceRecord, name: string): ServiceRecord {
  const next = structuredClone(record);
  if (!next.latestReadyRevision || revisionNumber(name) > revisionNumber(next.latestReadyRevision)) {
    next.latestReadyRevision = name;
  }
  if (name === next.stable && !next.latestRolledoutRevision) next.latestRolledoutRevision = name;
  if (name === next.canary) next.appliedCanaryPercent = next.desiredCanaryPercent;
  return next;
}

export function setFaults(record: ServiceRecord, faults: FaultRules | undefined): ServiceRecord {
  return { ...structuredClone(record), faults };
}
