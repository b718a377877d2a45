import path from 'node:path';
import { KubeConfig, type Middleware as PromiseMiddleware } from '@kubernetes/client-node';
import type { QwenopsConfig } from '../../config/config.js';
import { DEFAULT_ROLLOUT_LEASE_SECONDS } from '../../domain/lease.js';
import type { ServingRef, ServingRevisionSpec, ServingStatus } from '../../domain/serving-revision.js';
import type { Logger } from '../../observability/logger.js';
import { repoRoot } from '../../runtime/entrypoints.js';
import type {
  CanaryOptions,
  ClaimOutcome,
  ClusterBackend,
  GpuJobSpec,
  JobStatus,
  RenewOutcome,
  ServiceLease,
  WaitOptions,
} from '../port.js';
import { createKubeClients, DEFAULT_RETRY, type RetryPolicy } from './client.js';
import { DEFAULT_PREDICTOR_OPTIONS, type PredictorOptions } from './inference-service.js';
import { type JobTemplates, loadJobTemplates } from './job-manifest.js';
import { KubernetesJobs } from './jobs.js';
import { KubernetesServing } from './kserve-serving.js';
import { newWatchStats, type WatchStats } from './watch.js';

// The Kubernetes + KServe ClusterBackend: GPU Jobs (batch/v1) and InferenceServices
// (serving.kserve.io/v1beta1) through @kubernetes/client-node, behind the same port the
// sandbox implements, so workflows and activities do not know which one they drive.

export { servingStatusFrom, trafficSettled } from './canary/index.js';
export type { InferenceService } from './inference-service.js';
export { buildPredictor, vllmArgs } from './inference-service.js';
export type { JobTemplates } from './job-manifest.js';
export { buildJobManifest, jobStatusFromObject, loadJobTemplates } from './job-manifest.js';
export { ROLLOUT_LEASE_PREFIX, rolloutLeaseName, serviceLeaseOf } from './rollout-lease.js';
export { newWatchStats, type WatchStats, watchUntil } from './watch.js';

/** Where the Job templates are when no directory is configured: the repository's k8s/ base. */
export const DEFAULT_JOB_TEMPLATES_DIR = path.join(repoRoot, 'k8s', 'base', 'job-templates');

export interface KubernetesBackendOptions {
  kubeConfig: KubeConfig;
  /** Job templates by name; see loadJobTemplates(). */
  jobTemplates: JobTemplates;
  /** Overrides the templates' container image (config cluster.jobImage). */
  jobImage?: string;
  predictor?: Partial<PredictorOptions>;
  retry?: Partial<RetryPolicy>;
  conflictRetries?: number;
  /** Server-side timeout of one watch request; it is resumed from its resourceVersion after. */
  watchTimeoutSeconds?: number;
  /** How often waits repeat their progress while nothing changes (activity heartbeats). */
  keepAliveMs?: number;
  fieldManager?: string;
  /** Request/response hooks (client-node middleware): extra headers, auditing, fault injection in tests. */
  middleware?: PromiseMiddleware[];
  logger?: Logger;
}

export class KubernetesBackend implements ClusterBackend {
  readonly kind = 'kubernetes' as const;
  readonly jobs: KubernetesJobs;
  readonly serving: KubernetesServing;
  /** Lists, watches, 410 Gone re-lists and connection retries across all waits. */
  readonly watchStats: WatchStats = newWatchStats();

  constructor(options: KubernetesBackendOptions) {
    const clients = createKubeClients(options.kubeConfig, options.middleware);
    const retry = { ...DEFAULT_RETRY, ...options.retry };
    const watchTimeoutSeconds = options.watchTimeoutSeconds ?? 240;
    const keepAliveMs = options.keepAliveMs ?? 15_000;
    this.jobs = new KubernetesJobs({
      clients,
      templates: options.jobTemplates,
      image: options.jobImage,
      retry,
      watchTimeoutSeconds,
      keepAliveMs,
      logger: options.logger,
      watchStats: this.watchStats,
    });
    this.serving = new KubernetesServing({
      clients,
      predictor: { ...DEFAULT_PREDICTOR_OPTIONS, ...options.predictor },
      retry,
      conflictRetries: options.conflictRetries ?? 8,
      watchTimeoutSeconds,
      keepAliveMs,
      fieldManager: options.fieldManager ?? 'qwenops',
      logger: options.logger,
      watchStats: this.watchStats,
    });
  }

  createJob(spec: GpuJobSpec): Promise<{ status: JobStatus; adopted: boolean }> {
    return this.jobs.createJob(spec);
  }
  getJob(namespace: string, name: string): Promise<JobStatus | undefined> {
    return this.jobs.getJob(namespace, name);
  }
  waitForJob(namespace: string, name: string, options: WaitOptions): Promise<JobStatus> {
    return this.jobs.waitForJob(namespace, name, options);
  }
  jobLogs(namespace: string, name: string, tailLines: number): Promise<string> {
    return this.jobs.jobLogs(namespace, name, tailLines);
  }
  deleteJob(namespace: string, name: string): Promise<boolean> {
    return this.jobs.deleteJob(namespace, name);
  }

  getService(ref: ServingRef): Promise<ServingStatus | undefined> {
    return this.serving.getService(ref);
  }
  claimService(
    ref: ServingRef,
    owner: string,
    leaseSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
  ): Promise<ClaimOutcome> {
    return this.serving.leases.claim(ref, owner, leaseSeconds);
  }
  renewService(
    ref: ServingRef,
    owner: string,
    leaseSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
  ): Promise<RenewOutcome> {
    return this.serving.leases.renew(ref, owner, leaseSeconds);
  }
  releaseService(ref: ServingRef, owner: string): Promise<void> {
    return this.serving.leases.release(ref, owner);
  }
  getServiceLease(ref: ServingRef): Promise<ServiceLease | undefined> {
    return this.serving.leases.get(ref);
  }
  breakServiceLease(ref: ServingRef, expected: ServiceLease): Promise<boolean> {
    return this.serving.leases.break(ref, expected);
  }
  deployService(ref: ServingRef, revision: ServingRevisionSpec): Promise<ServingStatus> {
    return this.serving.deployService(ref, revision);
  }
  deleteService(ref: ServingRef): Promise<boolean> {
    return this.serving.deleteService(ref);
  }
  startCanary(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    percent: number,
    options?: CanaryOptions,
  ): Promise<ServingStatus> {
    return this.serving.startCanary(ref, revision, percent, options);
  }
  setCanaryTraffic(ref: ServingRef, percent: number): Promise<ServingStatus> {
    return this.serving.setCanaryTraffic(ref, percent);
  }
  promoteCanary(ref: ServingRef): Promise<ServingStatus> {
    return this.serving.promoteCanary(ref);
  }
  rollbackCanary(ref: ServingRef): Promise<ServingStatus> {
    return this.serving.rollbackCanary(ref);
  }
  waitForTraffic(
    ref: ServingRef,
    canaryPercent: number | undefined,
    options: WaitOptions,
  ): Promise<ServingStatus> {
    return this.serving.waitForTraffic(ref, canaryPercent, options);
  }

  async close(): Promise<void> {
    // Nothing held open between calls: every watch ends with the wait that started it.
  }
}

/** A KubeConfig from a file, or the in-cluster ServiceAccount / $KUBECONFIG / ~/.kube/config. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (file) kubeConfig.loadFromFile(file);
  else kubeConfig.loadFromDefault();
  return kubeConfig;
}

/**
 * The backend as a worker configures it (config.cluster.*): kubeconfig from the file named
 * there, else in-cluster / $KUBECONFIG; Job templates from cluster.jobTemplatesDir
 * (QWENOPS_JOB_TEMPLATES_DIR: the ConfigMap the gpu-jobs worker mounts), else the
 * repository's k8s/base/job-templates.
 */
export function createKubernetesBackend(
  cluster: QwenopsConfig['cluster'],
  logger?: Logger,
): KubernetesBackend {
  const templatesDir = cluster.jobTemplatesDir ?? DEFAULT_JOB_TEMPLATES_DIR;
  return new KubernetesBackend({
    kubeConfig: loadKubeConfig(cluster.kubeconfig),
    jobTemplates: loadJobTemplates(templatesDir),
    jobImage: cluster.jobImage,
    logger,
  });
}
