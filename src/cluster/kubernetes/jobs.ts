import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { labelValue } from '../../domain/names.js';
import type { Logger } from '../../observability/logger.js';
import {
  ClusterError,
  type ClusterJobs,
  type GpuJobSpec,
  type JobStatus,
  type WaitOptions,
} from '../port.js';
import { callApi, describeApiError, type KubeClients, type RetryPolicy } from './client.js';
import { isAlreadyExists, isNotFound } from './errors.js';
import { buildJobManifest, type JobTemplates, jobStatusFromObject, LABELS } from './job-manifest.js';
import { type WatchStats, watchOptions, watchUntil } from './watch.js';

// GPU Jobs (batch/v1): check-then-create with adoption, a watch-based wait, the pods' last
// log lines on failure, and deletion with background propagation (pods go too).

export interface KubernetesJobsOptions {
  clients: KubeClients;
  templates: JobTemplates;
  /** Overrides the templates' image (config cluster.jobImage). */
  image?: string;
  retry: RetryPolicy;
  watchTimeoutSeconds: number;
  keepAliveMs: number;
  logger?: Logger;
  watchStats: WatchStats;
}

export class KubernetesJobs implements ClusterJobs {
  constructor(private readonly options: KubernetesJobsOptions) {}

  private get batch() {
    return this.options.clients.batch;
  }

  private async readJob(namespace: string, name: string): Promise<V1Job | undefined> {
    try {
      return await callApi(
        `get Job ${namespace}/${name}`,
        () => this.batch.readNamespacedJob({ namespace, name }),
        this.options.retry,
      );
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  /** An existing Job is adopted only when it was made for the same workflow and stage. */
  private adopt(existing: V1Job, spec: GpuJobSpec): { status: JobStatus; adopted: boolean } {
    const labels = existing.metadata?.labels ?? {};
    const owner = labels[LABELS.workflowId];
    const stage = labels[LABELS.stage];
    if (owner !== labelValue(spec.workflowId) || stage !== labelValue(spec.stage)) {
      throw new ClusterError(
        'Conflict',
        `Job ${spec.namespace}/${spec.name} exists but belongs to workflow "${owner ?? '?'}" stage "${stage ?? '?'}", not "${spec.workflowId}" stage "${spec.stage}"`,
        false,
      );
    }
    this.options.logger?.info({ job: spec.name, namespace: spec.namespace }, 'adopted existing Job');
    return { status: jobStatusFromObject(existing), adopted: true };
  }

  async createJob(spec: GpuJobSpec): Promise<{ status: JobStatus; adopted: boolean }> {
    const manifest = buildJobManifest(this.options.templates[spec.template], spec, {
      image: this.options.image,
    });
    const existing = await this.readJob(spec.namespace, spec.name);
    if (existing) return this.adopt(existing, spec);
    try {
      const created = await callApi(
        `create Job ${spec.namespace}/${spec.name}`,
        () =>
          this.batch.createNamespacedJob({
            namespace: spec.namespace,
            body: manifest,
            fieldManager: 'qwenops',
            fieldValidation: 'Strict',
          }),
        this.options.retry,
      );
      this.options.logger?.info(
        { job: spec.name, namespace: spec.namespace, template: spec.template },
        'created Job',
      );
      return { status: jobStatusFromObject(created), adopted: false };
    } catch (err) {
      // A retried create whose first attempt landed, or a concurrent activity: adopt.
      if (err instanceof ClusterError && isAlreadyExists(err.cause)) {
        const raced = await this.readJob(spec.namespace, spec.name);
        if (raced) return this.adopt(raced, spec);
      }
      throw err;
    }
  }

  async getJob(namespace: string, name: string): Promise<JobStatus | undefined> {
    const job = await this.readJob(namespace, name);
    return job ? jobStatusFromObject(job) : undefined;
  }

  async waitForJob(namespace: string, name: string, options: WaitOptions): Promise<JobStatus> {
    const what = `Job ${namespace}/${name}`;
    return watchUntil<V1Job, JobStatus>({
      ...watchOptions(this.options, options),
      what,
      path: `/apis/batch/v1/namespaces/${namespace}/jobs`,
      name,
      list: async () => {
        const list = await callApi(
          `list ${what}`,
          () => this.batch.listNamespacedJob({ namespace, fieldSelector: `metadata.name=${name}` }),
          this.options.retry,
        );
        return { item: list.items[0], resourceVersion: list.metadata?.resourceVersion ?? '' };
      },
      evaluate: (job) => {
        if (!job)
          throw new ClusterError('NotFound', `${what} no longer exists (deleted while waiting)`, false);
        const status = jobStatusFromObject(job);
        if (status.phase === 'Succeeded' || status.phase === 'Failed') return { done: true, value: status };
        return { done: false, progress: `${status.phase}: ${status.message ?? ''}`.trim() };
      },
    });
  }

  /** Pods of this Job (matched by its uid, so an older Job with the same name never leaks in), newest first. */
  private async jobPods(namespace: string, job: V1Job): Promise<V1Pod[]> {
    const uid = job.metadata?.uid;
    if (!uid) return [];
    const pods = await callApi(
      `list pods of Job ${namespace}/${job.metadata?.name}`,
      () =>
        this.options.clients.core.listNamespacedPod({
          namespace,
          labelSelector: `batch.kubernetes.io/controller-uid=${uid}`,
        }),
      this.options.retry,
    );
    const created = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
    return [...pods.items].sort((a, b) => created(b) - created(a));
  }

  async jobLogs(namespace: string, name: string, tailLines: number): Promise<string> {
    const job = await this.readJob(namespace, name);
    if (!job) return '';
    const pods = await this.jobPods(namespace, job);
    // The most recent failed pod explains a failure best; otherwise the most recent pod.
    const pod = pods.find((p) => p.status?.phase === 'Failed') ?? pods[0];
    if (!pod?.metadata?.name) return '';
    const container = pod.spec?.containers[0]?.name;
    try {
      const text = await callApi(
        `read log of pod ${namespace}/${pod.metadata.name}`,
        () =>
          this.options.clients.core.readNamespacedPodLog({
            namespace,
            name: pod.metadata?.name as string,
            container,
            tailLines,
          }),
        { ...this.options.retry, attempts: 2 },
      );
      if (text) return `[pod ${pod.metadata.name}]\n${text.trimEnd()}`;
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'Forbidden') throw err;
      this.options.logger?.warn(
        { pod: pod.metadata.name, error: err instanceof Error ? err.message : String(err) },
        'pod log unavailable, using the termination message',
      );
    }
    // No kubelet to ask (node gone, log rotated): the termination message holds the tail.
    const terminated = pod.status?.containerStatuses?.find((s) => s.name === container)?.state?.terminated;
    const message = terminated?.message?.trimEnd();
    if (!message) return '';
    return `[pod ${pod.metadata.name}, termination message]\n${message.split('\n').slice(-tailLines).join('\n')}`;
  }

  async deleteJob(namespace: string, name: string): Promise<boolean> {
    try {
      await callApi(
        `delete Job ${namespace}/${name}`,
        () => this.batch.deleteNamespacedJob({ namespace, name, propagationPolicy: 'Background' }),
        this.options.retry,
      );
      this.options.logger?.info({ job: name, namespace }, 'deleted Job (background propagation)');
      return true;
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'NotFound') return false;
      if (isNotFound(err)) return false;
      this.options.logger?.warn({ job: name, error: describeApiError(err) }, 'delete Job failed');
      throw err;
    }
  }
}
