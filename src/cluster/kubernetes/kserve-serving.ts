import type { ServingRef, ServingRevisionSpec, ServingStatus } from '../../domain/serving-revision.js';
import type { Logger } from '../../observability/logger.js';
import { type CanaryOptions, ClusterError, type ClusterServing, type WaitOptions } from '../port.js';
import { type CanaryStrategy, canaryStrategyFor, describeService, type ServiceEdit } from './canary/index.js';
import { callApi, type KubeClients, type RetryPolicy } from './client.js';
import {
  buildPredictor,
  DEPLOYMENT_MODE_ANNOTATION,
  deploymentModeOf,
  type InferenceService,
  ISVC,
  ISVC_ANNOTATIONS,
  type PredictorOptions,
  predictorDigest,
} from './inference-service.js';
import { RolloutLeases } from './rollout-lease.js';
import { type WatchStats, watchOptions, watchUntil } from './watch.js';

// Serving on KServe: deploy an InferenceService, then canary, step, promote and roll back
// through the canary API of its deployment mode (canary/: one strategy per API, picked once
// per call). This file owns the apiserver side: every write is a PUT carrying the
// resourceVersion it read, and a 409 re-reads and re-applies the strategy's edit; waits
// watch the object until the strategy's read-back says traffic has settled. The rollout
// lease (rollout-lease.ts) says which workflow drives the service.

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

function checkPercent(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
    throw new ClusterError(
      'Invalid',
      `canary traffic percent must be an integer 0..100, got ${percent}`,
      false,
    );
  }
}

/** The serving half of the port; the rollout lease half is `leases` (RolloutLeases). */
export type ServingChanges = Omit<
  ClusterServing,
  'claimService' | 'renewService' | 'releaseService' | 'getServiceLease' | 'breakServiceLease'
>;

export class KubernetesServing implements ServingChanges {
  /** 409 Conflicts met and resolved by re-reading (observability and tests). */
  conflictRetries = 0;
  readonly leases: RolloutLeases;

  constructor(private readonly options: KubernetesServingOptions) {
    this.leases = new RolloutLeases(options);
  }

  /** Lease writes that lost a race (409) or found the Lease gone, and looked again. */
  get leaseConflicts(): number {
    return this.leases.conflicts;
  }

  private get custom() {
    return this.options.clients.custom;
  }

  private strategy(ref: ServingRef): CanaryStrategy {
    return canaryStrategyFor({ ref, predictor: this.options.predictor, logger: this.options.logger });
  }

  private async read(ref: ServingRef): Promise<InferenceService | undefined> {
    try {
      return (await callApi(
        `get ${describeService(ref)}`,
        () => this.custom.getNamespacedCustomObject({ ...ISVC, namespace: ref.namespace, name: ref.name }),
        this.options.retry,
      )) as InferenceService;
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  /** Refuses a service whose mode is not the one the caller believes it is. */
  private checkMode(ref: ServingRef, isvc: InferenceService): void {
    const actual = deploymentModeOf(isvc) ?? ref.deploymentMode;
    if (actual !== ref.deploymentMode) {
      throw new ClusterError(
        'Invalid',
        `${describeService(ref)} runs in ${actual} mode (annotation ${DEPLOYMENT_MODE_ANNOTATION}), not ${ref.deploymentMode} as requested`,
        false,
      );
    }
  }

  private async status(ref: ServingRef, isvc: InferenceService): Promise<ServingStatus> {
    this.checkMode(ref, isvc);
    return this.strategy(ref).status(isvc, await this.leases.holder(ref));
  }

  /**
   * Read-modify-write with optimistic concurrency: `edit` changes a copy and says whether it
   * changed anything; a 409 (someone wrote in between) re-reads and re-applies it.
   */
  private async update(ref: ServingRef, action: string, edit: ServiceEdit): Promise<InferenceService> {
    for (let round = 1; ; round++) {
      const current = await this.read(ref);
      if (!current)
        throw new ClusterError('NotFound', `${action}: ${describeService(ref)} does not exist`, false);
      this.checkMode(ref, current);
      const next = structuredClone(current);
      delete next.status;
      if (!edit(next)) return current;
      try {
        const written = (await callApi(
          `${action} (update ${describeService(ref)})`,
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

  async deleteService(ref: ServingRef): Promise<boolean> {
    try {
      await callApi(
        `delete ${describeService(ref)}`,
        () =>
          this.custom.deleteNamespacedCustomObject({
            ...ISVC,
            namespace: ref.namespace,
            name: ref.name,
            // Background, as kubectl: the object goes now, KServe's owned objects follow via GC.
            propagationPolicy: 'Background',
          }),
        this.options.retry,
      );
      this.options.logger?.info({ service: ref.name, namespace: ref.namespace }, 'deleted InferenceService');
      return true;
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'NotFound') return false;
      throw err;
    }
  }

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
          ...this.strategy(ref).deployAnnotations,
          [ISVC_ANNOTATIONS.revisionDigest]: digest,
          [ISVC_ANNOTATIONS.stableDigest]: digest,
          [ISVC_ANNOTATIONS.stableStorageUri]: revision.storageUri,
        },
      },
      spec: { predictor },
    };
    try {
      const created = (await callApi(
        `create ${describeService(ref)}`,
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
        `${describeService(ref)} already exists serving ${status.stableStorageUri ?? '(unknown)'}; ` +
          `roll ${revision.storageUri} out with a canary instead of redeploying`,
        false,
      );
    }
    return status;
  }

  /**
   * Applies a canary change the strategy made; a strategy that cannot make it refuses before
   * anything is read (the methods below are async so that refusal rejects, never throws).
   */
  private async change(ref: ServingRef, action: string, edit: ServiceEdit): Promise<ServingStatus> {
    return this.status(ref, await this.update(ref, action, edit));
  }

  async startCanary(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    percent: number,
    options: CanaryOptions = {},
  ): Promise<ServingStatus> {
    checkPercent(percent);
    const edit = this.strategy(ref).startCanary(revision, percent, options);
    return this.change(ref, `start canary at ${percent}%${options.baseline ? ' with a baseline' : ''}`, edit);
  }

  async setCanaryTraffic(ref: ServingRef, percent: number): Promise<ServingStatus> {
    checkPercent(percent);
    return this.change(ref, `set canary traffic to ${percent}%`, this.strategy(ref).setTraffic(percent));
  }

  async promoteCanary(ref: ServingRef): Promise<ServingStatus> {
    return this.change(ref, 'promote canary', this.strategy(ref).promote());
  }

  async rollbackCanary(ref: ServingRef): Promise<ServingStatus> {
    return this.change(ref, 'roll back canary', this.strategy(ref).rollBack());
  }

  async waitForTraffic(
    ref: ServingRef,
    canaryPercent: number | undefined,
    options: WaitOptions,
  ): Promise<ServingStatus> {
    if (canaryPercent !== undefined) checkPercent(canaryPercent);
    const what = describeService(ref);
    const strategy = this.strategy(ref);
    const settled = await watchUntil<InferenceService, ServingStatus>({
      ...watchOptions(this.options, options),
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
        this.checkMode(ref, isvc);
        const result = strategy.settled(isvc, canaryPercent);
        return result.settled
          ? { done: true, value: result.status }
          : { done: false, progress: result.progress };
      },
    });
    return { ...settled, owner: await this.leases.holder(ref) };
  }
}
