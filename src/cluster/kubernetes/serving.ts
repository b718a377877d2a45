import { type V1Lease, type V1LeaseSpec, V1MicroTime } from '@kubernetes/client-node';
import { checkLeaseSeconds, DEFAULT_ROLLOUT_LEASE_SECONDS, leaseExpired } from '../../domain/lease.js';
import type { Logger } from '../../observability/logger.js';
import {
  type ClaimOutcome,
  ClusterError,
  type ClusterServing,
  type DeploymentMode,
  type RenewOutcome,
  type ServiceLease,
  type ServingRef,
  type ServingRevisionSpec,
  type ServingStatus,
  type WaitOptions,
} from '../port.js';
import { callApi, type KubeClients, type RetryPolicy } from './client.js';
import {
  buildPredictor,
  type CanaryEntry,
  canaryPredictorName,
  DEPLOYMENT_MODE_ANNOTATION,
  deploymentModeOf,
  type InferenceService,
  ISVC,
  ISVC_ANNOTATIONS,
  type PredictorOptions,
  predictorDeploymentName,
  predictorDigest,
  serverlessCanaryActive,
  servingStatusFrom,
  trafficSettled,
} from './inference-service.js';
import { labelValue } from './job-manifest.js';
import { type WatchStats, watchUntil } from './watch.js';

// Serving on KServe: deploy, canary, step, promote and roll back an InferenceService in
// either canary API, with optimistic concurrency (every write is a PUT carrying the
// resourceVersion it read; a 409 re-reads and re-applies the change), and a rollout lease
// (a coordination.k8s.io Lease per service) so two workflows never drive one service.

export interface KubernetesServingOptions {
  clients: KubeClients;
  predictor: PredictorOptions;
  retry: RetryPolicy;
  /** Re-read-and-retry rounds for one change that keeps meeting 409 Conflict. */
  conflictRetries: number;
  watchTimeoutSeconds: number;
  keepAliveMs: number;
  fieldManager: string;
  logger?: Logger;
  watchStats: WatchStats;
}

/**
 * Prefix of the rollout Leases: `qwenops-rollout-<service>`, predictable so the worker's Role
 * can name each Lease it may get, update and delete (RBAC resourceNames has no wildcards).
 */
export const ROLLOUT_LEASE_PREFIX = 'qwenops-rollout-';

export function rolloutLeaseName(service: string): string {
  return `${ROLLOUT_LEASE_PREFIX}${service}`;
}

function isoTime(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** The port's view of a Lease object. */
export function serviceLeaseOf(lease: V1Lease): ServiceLease {
  const spec = lease.spec ?? {};
  const view: ServiceLease = { holder: spec.holderIdentity ?? '', transitions: spec.leaseTransitions ?? 0 };
  const acquireTime = isoTime(spec.acquireTime);
  const renewTime = isoTime(spec.renewTime);
  if (acquireTime) view.acquireTime = acquireTime;
  if (renewTime) view.renewTime = renewTime;
  if (spec.leaseDurationSeconds !== undefined) view.durationSeconds = spec.leaseDurationSeconds;
  if (lease.metadata?.resourceVersion) view.version = lease.metadata.resourceVersion;
  return view;
}
const TAG_ROUTING_ANNOTATION = 'serving.kserve.io/enable-tag-routing';

function unsupportedCanary(ref: ServingRef): ClusterError {
  return new ClusterError(
    'Unsupported',
    `InferenceService ${ref.namespace}/${ref.name} runs in RawDeployment mode, where KServe releases before v0.20 ` +
      'silently ignore spec.predictor.canaryTrafficPercent (kserve#5335): the "canary" would get all traffic or none. ' +
      'Use deploymentMode "Standard" (KServe >= 0.20, spec.canary[]) or "Serverless" (Knative) for canary releases.',
    false,
  );
}

/** The annotations of an object being edited, created when absent. */
function annotationsOf(isvc: InferenceService): Record<string, string> {
  if (!isvc.metadata.annotations) isvc.metadata.annotations = {};
  return isvc.metadata.annotations;
}

function checkPercent(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
    throw new ClusterError(
      'Invalid',
      `canary traffic percent must be an integer 0..100, got ${percent}`,
      false,
    );
  }
}

export class KubernetesServing implements ClusterServing {
  /** 409 Conflicts met and resolved by re-reading (observability and tests). */
  conflictRetries = 0;
  /** Lease writes that lost a race (409) or found the Lease gone, and looked again. */
  leaseConflicts = 0;

  constructor(private readonly options: KubernetesServingOptions) {}

  private get custom() {
    return this.options.clients.custom;
  }

  private what(ref: ServingRef): string {
    return `InferenceService ${ref.namespace}/${ref.name}`;
  }

  private async read(ref: ServingRef): Promise<InferenceService | undefined> {
    try {
      return (await callApi(
        `get ${this.what(ref)}`,
        () => this.custom.getNamespacedCustomObject({ ...ISVC, namespace: ref.namespace, name: ref.name }),
        this.options.retry,
      )) as InferenceService;
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  /** The service's mode, checked against what the caller believes it is. */
  private modeOf(ref: ServingRef, isvc: InferenceService): DeploymentMode {
    const actual = deploymentModeOf(isvc) ?? ref.deploymentMode;
    if (actual !== ref.deploymentMode) {
      throw new ClusterError(
        'Invalid',
        `${this.what(ref)} runs in ${actual} mode (annotation ${DEPLOYMENT_MODE_ANNOTATION}), not ${ref.deploymentMode} as requested`,
        false,
      );
    }
    return actual;
  }

  private async holder(ref: ServingRef): Promise<string | undefined> {
    const lease = await this.readLease(ref);
    return lease?.spec?.holderIdentity;
  }

  private async status(ref: ServingRef, isvc: InferenceService): Promise<ServingStatus> {
    return servingStatusFrom(isvc, this.modeOf(ref, isvc), await this.holder(ref));
  }

  /**
   * Read-modify-write with optimistic concurrency. `change` edits a copy and says whether
   * it changed anything; a 409 (someone wrote in between) re-reads and re-applies it.
   */
  private async update(
    ref: ServingRef,
    action: string,
    change: (isvc: InferenceService, mode: DeploymentMode) => boolean,
  ): Promise<InferenceService> {
    for (let round = 1; ; round++) {
      const current = await this.read(ref);
      if (!current) throw new ClusterError('NotFound', `${action}: ${this.what(ref)} does not exist`, false);
      const mode = this.modeOf(ref, current);
      const next = structuredClone(current);
      delete next.status;
      if (!change(next, mode)) return current;
      try {
        const written = (await callApi(
          `${action} (update ${this.what(ref)})`,
          () =>
            this.custom.replaceNamespacedCustomObject({
              ...ISVC,
              namespace: ref.namespace,
              name: ref.name,
              body: next,
              fieldManager: this.options.fieldManager,
              fieldValidation: 'Strict',
            }),
          this.options.retry,
        )) as InferenceService;
        this.options.logger?.info(
          { service: ref.name, namespace: ref.namespace, action },
          'updated InferenceService',
        );
        return written;
      } catch (err) {
        if (
          !(err instanceof ClusterError && err.code === 'Conflict') ||
          round >= this.options.conflictRetries
        )
          throw err;
        this.conflictRetries++;
        this.options.logger?.info(
          { service: ref.name, namespace: ref.namespace, action, round },
          'InferenceService changed since it was read (409); re-reading and re-applying',
        );
      }
    }
  }

  async getService(ref: ServingRef): Promise<ServingStatus | undefined> {
    const isvc = await this.read(ref);
    return isvc ? this.status(ref, isvc) : undefined;
  }

  // --- rollout lease -------------------------------------------------------------------
  //
  // One coordination.k8s.io Lease per service, named rolloutLeaseName(service) so the
  // worker's Role can list the names it may touch (k8s/base/rbac.yaml). It lasts
  // spec.leaseDurationSeconds from spec.renewTime; the holder renews it while it drives the
  // service, and a claimer takes over one that expired. Every change is a PUT carrying the
  // resourceVersion it read (a create for a new one), so of two claimers racing for the
  // same lease the apiserver lets exactly one write succeed; the other re-reads and sees
  // the winner.

  private leaseName(ref: ServingRef): string {
    return rolloutLeaseName(ref.name);
  }

  private leaseWhat(ref: ServingRef): string {
    return `Lease ${ref.namespace}/${this.leaseName(ref)}`;
  }

  private async readLease(ref: ServingRef): Promise<V1Lease | undefined> {
    try {
      return await callApi(
        `get ${this.leaseWhat(ref)}`,
        () =>
          this.options.clients.coordination.readNamespacedLease({
            namespace: ref.namespace,
            name: this.leaseName(ref),
          }),
        this.options.retry,
      );
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  /** Creates the lease; false when someone else created it first (409 AlreadyExists). */
  private async createLease(ref: ServingRef, spec: V1LeaseSpec): Promise<boolean> {
    try {
      await callApi(
        `create ${this.leaseWhat(ref)}`,
        () =>
          this.options.clients.coordination.createNamespacedLease({
            namespace: ref.namespace,
            fieldManager: this.options.fieldManager,
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: {
                name: this.leaseName(ref),
                namespace: ref.namespace,
                labels: {
                  'app.kubernetes.io/managed-by': 'qwenops',
                  'qwenops.io/service': labelValue(ref.name),
                },
              },
              spec,
            },
          }),
        this.options.retry,
      );
      return true;
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'Conflict') return false;
      throw err;
    }
  }

  /** Replaces the lease read as `current`; false when it changed since (409) or is gone. */
  private async replaceLease(ref: ServingRef, current: V1Lease, spec: V1LeaseSpec): Promise<boolean> {
    try {
      await callApi(
        `update ${this.leaseWhat(ref)}`,
        () =>
          this.options.clients.coordination.replaceNamespacedLease({
            namespace: ref.namespace,
            name: this.leaseName(ref),
            fieldManager: this.options.fieldManager,
            // metadata carries the resourceVersion read: the write fails if anyone wrote since.
            body: { ...current, spec },
          }),
        this.options.retry,
      );
      return true;
    } catch (err) {
      if (err instanceof ClusterError && (err.code === 'Conflict' || err.code === 'NotFound')) {
        this.leaseConflicts++;
        return false;
      }
      throw err;
    }
  }

  private tooManyConflicts(ref: ServingRef, action: string): ClusterError {
    return new ClusterError(
      'Conflict',
      `${action} ${this.leaseWhat(ref)}: it kept changing under ${this.options.conflictRetries} attempts`,
      true,
    );
  }

  async getServiceLease(ref: ServingRef): Promise<ServiceLease | undefined> {
    const lease = await this.readLease(ref);
    return lease ? serviceLeaseOf(lease) : undefined;
  }

  async claimService(
    ref: ServingRef,
    owner: string,
    leaseSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
  ): Promise<ClaimOutcome> {
    checkLeaseSeconds(leaseSeconds);
    for (let round = 1; round <= this.options.conflictRetries; round++) {
      const existing = await this.readLease(ref);
      const now = new V1MicroTime();
      if (!existing) {
        const created = await this.createLease(ref, {
          holderIdentity: owner,
          acquireTime: now,
          renewTime: now,
          leaseDurationSeconds: leaseSeconds,
          leaseTransitions: 0,
        });
        if (created) return { claimed: true };
        continue; // another claimer created it between our read and create: look again
      }
      const current = serviceLeaseOf(existing);
      const spec = existing.spec ?? {};
      if (current.holder === owner) {
        // A retried claim: renew, keep acquireTime.
        if (
          await this.replaceLease(ref, existing, {
            ...spec,
            renewTime: now,
            leaseDurationSeconds: leaseSeconds,
          })
        )
          return { claimed: true };
        continue;
      }
      if (current.holder !== '' && !leaseExpired(current, now.getTime(), leaseSeconds)) {
        return { claimed: false, holder: current.holder };
      }
      const taken = await this.replaceLease(ref, existing, {
        holderIdentity: owner,
        acquireTime: now,
        renewTime: now,
        leaseDurationSeconds: leaseSeconds,
        leaseTransitions: current.transitions + 1,
      });
      if (!taken) continue; // someone else wrote first (maybe took it): look again
      this.options.logger?.warn(
        {
          service: ref.name,
          namespace: ref.namespace,
          owner,
          previousHolder: current.holder,
          lastRenewed: current.renewTime,
        },
        'took over an expired rollout lease',
      );
      return current.holder ? { claimed: true, previousHolder: current.holder } : { claimed: true };
    }
    throw this.tooManyConflicts(ref, 'claim');
  }

  async renewService(
    ref: ServingRef,
    owner: string,
    leaseSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
  ): Promise<RenewOutcome> {
    checkLeaseSeconds(leaseSeconds);
    for (let round = 1; round <= this.options.conflictRetries; round++) {
      const existing = await this.readLease(ref);
      if (!existing) return { renewed: false };
      const holder = existing.spec?.holderIdentity ?? '';
      if (holder !== owner) return holder ? { renewed: false, holder } : { renewed: false };
      const spec: V1LeaseSpec = {
        ...existing.spec,
        renewTime: new V1MicroTime(),
        leaseDurationSeconds: leaseSeconds,
      };
      if (await this.replaceLease(ref, existing, spec)) return { renewed: true };
    }
    throw this.tooManyConflicts(ref, 'renew');
  }

  async releaseService(ref: ServingRef, owner: string): Promise<void> {
    const lease = await this.readLease(ref);
    if (!lease || lease.spec?.holderIdentity !== owner) return;
    await this.deleteLease(ref, lease.metadata?.resourceVersion);
  }

  async breakServiceLease(ref: ServingRef, expected: ServiceLease): Promise<boolean> {
    if (!expected.version) return false;
    return this.deleteLease(ref, expected.version);
  }

  /** Deletes the lease only at `resourceVersion`: never one a new holder took in between. */
  private async deleteLease(ref: ServingRef, resourceVersion: string | undefined): Promise<boolean> {
    try {
      await callApi(
        `delete ${this.leaseWhat(ref)}`,
        () =>
          this.options.clients.coordination.deleteNamespacedLease({
            namespace: ref.namespace,
            name: this.leaseName(ref),
            body: { preconditions: { resourceVersion } },
          }),
        this.options.retry,
      );
      return true;
    } catch (err) {
      if (err instanceof ClusterError && (err.code === 'NotFound' || err.code === 'Conflict')) return false;
      throw err;
    }
  }

  // --- serving changes -----------------------------------------------------------------

  async deployService(ref: ServingRef, revision: ServingRevisionSpec): Promise<ServingStatus> {
    const predictor = buildPredictor(revision, this.options.predictor);
    const digest = predictorDigest(predictor);
    const existing = await this.read(ref);
    if (existing) return this.adoptDeployed(ref, existing, revision);
    const body: InferenceService = {
      apiVersion: `${ISVC.group}/${ISVC.version}`,
      kind: 'InferenceService',
      metadata: {
        name: ref.name,
        namespace: ref.namespace,
        labels: { ...revision.labels },
        annotations: {
          [DEPLOYMENT_MODE_ANNOTATION]: ref.deploymentMode,
          // Serverless: latest-/prev- URLs reach each revision alone (canary analysis).
          ...(ref.deploymentMode === 'Serverless' ? { [TAG_ROUTING_ANNOTATION]: 'true' } : {}),
          [ISVC_ANNOTATIONS.revisionDigest]: digest,
          [ISVC_ANNOTATIONS.stableDigest]: digest,
          [ISVC_ANNOTATIONS.stableStorageUri]: revision.storageUri,
        },
      },
      spec: { predictor },
    };
    try {
      const created = (await callApi(
        `create ${this.what(ref)}`,
        () =>
          this.custom.createNamespacedCustomObject({
            ...ISVC,
            namespace: ref.namespace,
            body,
            fieldManager: this.options.fieldManager,
            fieldValidation: 'Strict',
          }),
        this.options.retry,
      )) as InferenceService;
      this.options.logger?.info(
        { service: ref.name, namespace: ref.namespace, mode: ref.deploymentMode },
        'created InferenceService',
      );
      return this.status(ref, created);
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'Conflict') {
        const raced = await this.read(ref);
        if (raced) return this.adoptDeployed(ref, raced, revision);
      }
      throw err;
    }
  }

  private async adoptDeployed(
    ref: ServingRef,
    existing: InferenceService,
    revision: ServingRevisionSpec,
  ): Promise<ServingStatus> {
    const status = await this.status(ref, existing);
    if (status.stableStorageUri !== revision.storageUri) {
      throw new ClusterError(
        'Conflict',
        `${this.what(ref)} already exists serving ${status.stableStorageUri ?? '(unknown)'}; ` +
          `roll ${revision.storageUri} out with a canary instead of redeploying`,
        false,
      );
    }
    return status;
  }

  async startCanary(ref: ServingRef, revision: ServingRevisionSpec, percent: number): Promise<ServingStatus> {
    checkPercent(percent);
    if (ref.deploymentMode === 'RawDeployment') throw unsupportedCanary(ref);
    const predictor = buildPredictor(revision, this.options.predictor);
    const digest = predictorDigest(predictor);
    const written = await this.update(ref, `start canary at ${percent}%`, (isvc, mode) => {
      if (mode === 'RawDeployment') throw unsupportedCanary(ref);
      if (mode === 'Standard') return this.startStandardCanary(ref, isvc, predictor, digest, percent);
      const a = annotationsOf(isvc);
      if (a[ISVC_ANNOTATIONS.stableDigest] === digest) {
        throw new ClusterError(
          'Invalid',
          `${this.what(ref)} already serves this revision as its stable one`,
          false,
        );
      }
      const same =
        a[ISVC_ANNOTATIONS.revisionDigest] === digest && a[ISVC_ANNOTATIONS.rolledBackDigest] !== digest;
      if (same && isvc.spec.predictor.canaryTrafficPercent === percent) return false; // adopt
      // Serverless: the predictor now describes the new revision; canaryTrafficPercent sends
      // `percent` to it and the rest to the last rolled-out revision.
      isvc.spec.predictor = { ...predictor, canaryTrafficPercent: percent };
      a[ISVC_ANNOTATIONS.revisionDigest] = digest;
      delete a[ISVC_ANNOTATIONS.rolledBackDigest];
      return true;
    });
    return this.status(ref, written);
  }

  private startStandardCanary(
    ref: ServingRef,
    isvc: InferenceService,
    predictor: ReturnType<typeof buildPredictor>,
    digest: string,
    percent: number,
  ): boolean {
    if (predictorDigest(isvc.spec.predictor) === digest) {
      throw new ClusterError(
        'Invalid',
        `${this.what(ref)} already serves this revision as its stable one`,
        false,
      );
    }
    const name = canaryPredictorName(digest);
    const deployment = predictorDeploymentName(ref.name, name);
    if (deployment.length > 63) {
      throw new ClusterError(
        'Invalid',
        `${this.what(ref)}: the canary Deployment name "${deployment}" exceeds 63 characters; use a service name of at most ${63 - deployment.length + ref.name.length} characters`,
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
      this.options.logger?.warn(
        { service: ref.name, replaced: current.predictor.name, canary: name },
        'replacing a leftover canary entry',
      );
    }
    const entry: CanaryEntry = { trafficPercent: percent, predictor: { ...predictor, name } };
    isvc.spec.canary = [entry];
    return true;
  }

  async setCanaryTraffic(ref: ServingRef, percent: number): Promise<ServingStatus> {
    checkPercent(percent);
    if (ref.deploymentMode === 'RawDeployment') throw unsupportedCanary(ref);
    const written = await this.update(ref, `set canary traffic to ${percent}%`, (isvc, mode) => {
      if (mode === 'Standard') {
        const entry = isvc.spec.canary?.[0];
        if (!entry) throw new ClusterError('Invalid', `${this.what(ref)} has no canary in progress`, false);
        if (entry.trafficPercent === percent) return false;
        entry.trafficPercent = percent;
        return true;
      }
      if (!serverlessCanaryActive(isvc)) {
        throw new ClusterError('Invalid', `${this.what(ref)} has no canary in progress`, false);
      }
      if (isvc.spec.predictor.canaryTrafficPercent === percent) return false;
      isvc.spec.predictor.canaryTrafficPercent = percent;
      return true;
    });
    return this.status(ref, written);
  }

  async promoteCanary(ref: ServingRef): Promise<ServingStatus> {
    if (ref.deploymentMode === 'RawDeployment') throw unsupportedCanary(ref);
    const written = await this.update(ref, 'promote canary', (isvc, mode) => {
      if (mode === 'Standard') {
        const entry = isvc.spec.canary?.[0];
        if (!entry) return false; // already promoted (a retried activity)
        // KServe >= 0.20: the canary's named predictor becomes the predictor; its pods stay.
        isvc.spec.predictor = entry.predictor;
        delete isvc.spec.canary;
        return true;
      }
      const a = annotationsOf(isvc);
      if (!serverlessCanaryActive(isvc)) return false;
      // Dropping canaryTrafficPercent sends 100 % to the latest revision, which KServe
      // then records as latestRolledoutRevision.
      delete isvc.spec.predictor.canaryTrafficPercent;
      a[ISVC_ANNOTATIONS.stableDigest] = a[ISVC_ANNOTATIONS.revisionDigest] as string;
      a[ISVC_ANNOTATIONS.stableStorageUri] = isvc.spec.predictor.model.storageUri ?? '';
      return true;
    });
    return this.status(ref, written);
  }

  async rollbackCanary(ref: ServingRef): Promise<ServingStatus> {
    if (ref.deploymentMode === 'RawDeployment') throw unsupportedCanary(ref);
    const written = await this.update(ref, 'roll back canary', (isvc, mode) => {
      if (mode === 'Standard') {
        if (!isvc.spec.canary?.length) return false;
        delete isvc.spec.canary;
        return true;
      }
      if (!serverlessCanaryActive(isvc)) return false;
      // KServe's rollback: 0 % pins all traffic to the previous rolled-out revision.
      isvc.spec.predictor.canaryTrafficPercent = 0;
      const a = annotationsOf(isvc);
      a[ISVC_ANNOTATIONS.rolledBackDigest] = a[ISVC_ANNOTATIONS.revisionDigest] as string;
      return true;
    });
    return this.status(ref, written);
  }

  async waitForTraffic(
    ref: ServingRef,
    canaryPercent: number | undefined,
    options: WaitOptions,
  ): Promise<ServingStatus> {
    if (canaryPercent !== undefined) checkPercent(canaryPercent);
    const what = this.what(ref);
    const settled = await watchUntil<InferenceService, ServingStatus>({
      kubeConfig: this.options.clients.kubeConfig,
      what,
      path: `/apis/${ISVC.group}/${ISVC.version}/namespaces/${ref.namespace}/${ISVC.plural}`,
      name: ref.name,
      list: async () => {
        const list = (await callApi(
          `list ${what}`,
          () =>
            this.custom.listNamespacedCustomObject({
              ...ISVC,
              namespace: ref.namespace,
              fieldSelector: `metadata.name=${ref.name}`,
            }),
          this.options.retry,
        )) as { items: InferenceService[]; metadata?: { resourceVersion?: string } };
        return { item: list.items[0], resourceVersion: list.metadata?.resourceVersion ?? '' };
      },
      evaluate: (isvc) => {
        if (!isvc) throw new ClusterError('NotFound', `${what} does not exist`, false);
        const mode = this.modeOf(ref, isvc);
        if (mode === 'RawDeployment' && canaryPercent !== undefined) throw unsupportedCanary(ref);
        const result = trafficSettled(isvc, mode, canaryPercent);
        return result.settled
          ? { done: true, value: result.status }
          : { done: false, progress: result.progress };
      },
      deadline: options.deadline,
      signal: options.signal,
      onProgress: options.onProgress,
      keepAliveMs: this.options.keepAliveMs,
      watchTimeoutSeconds: this.options.watchTimeoutSeconds,
      retry: this.options.retry,
      logger: this.options.logger,
      stats: this.options.watchStats,
    });
    return { ...settled, owner: await this.holder(ref) };
  }
}
