import { type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import type { Logger } from '../../observability/logger.js';
import {
  ClusterError,
  type ClusterServing,
  type DeploymentMode,
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

const LEASE_PREFIX = 'qwenops-rollout-';
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

  private leaseName(ref: ServingRef): string {
    return `${LEASE_PREFIX}${ref.name}`;
  }

  private async readLease(ref: ServingRef): Promise<V1Lease | undefined> {
    try {
      return await callApi(
        `get Lease ${ref.namespace}/${this.leaseName(ref)}`,
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

  async claimService(
    ref: ServingRef,
    owner: string,
  ): Promise<{ claimed: true } | { claimed: false; holder: string }> {
    const existing = await this.readLease(ref);
    if (existing) {
      const holder = existing.spec?.holderIdentity ?? '';
      return holder === owner ? { claimed: true } : { claimed: false, holder };
    }
    try {
      await callApi(
        `create Lease ${ref.namespace}/${this.leaseName(ref)}`,
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
              spec: { holderIdentity: owner, acquireTime: new V1MicroTime() },
            },
          }),
        this.options.retry,
      );
      return { claimed: true };
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'Conflict') {
        // Another claimant created it between our read and create.
        const holder = (await this.readLease(ref))?.spec?.holderIdentity ?? '';
        return holder === owner ? { claimed: true } : { claimed: false, holder };
      }
      throw err;
    }
  }

  async releaseService(ref: ServingRef, owner: string): Promise<void> {
    const lease = await this.readLease(ref);
    if (!lease || lease.spec?.holderIdentity !== owner) return;
    try {
      await callApi(
        `delete Lease ${ref.namespace}/${this.leaseName(ref)}`,
        () =>
          this.options.clients.coordination.deleteNamespacedLease({
            namespace: ref.namespace,
            name: this.leaseName(ref),
            // Only the lease we read: never one a new holder took in between.
            body: { preconditions: { resourceVersion: lease.metadata?.resourceVersion } },
          }),
        this.options.retry,
      );
    } catch (err) {
      if (err instanceof ClusterError && (err.code === 'NotFound' || err.code === 'Conflict')) return;
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
