import type { z } from 'zod';
import type { AuditLog } from '../audit/audit-log.js';
import type { ClusterJobs, GpuJobSpec, JobStatus, JobTemplateName, SecretEnvRef } from '../cluster/port.js';
import type { QwenopsConfig } from '../config/config.js';
import { artifactKeys } from '../domain/artifact-layout.js';
import { labelValue } from '../domain/names.js';
import type { ArtifactStore } from '../storage/port.js';

// Runs one GPU Job to completion and returns the result it wrote: create (or adopt the
// Job a previous attempt created under the same deterministic name), wait with progress,
// read and validate the result JSON. Aborting the wait deletes the Job, because an
// abandoned GPU Job keeps a GPU busy for hours.

export class GpuJobFailedError extends Error {
  override readonly name = 'GpuJobFailedError';
  readonly failureType = 'GpuJobFailed';
  readonly retryable = false;
  constructor(
    readonly jobName: string,
    message: string,
    readonly logTail: string,
  ) {
    super(message);
  }
}

export interface GpuJobRequest<T> {
  workflowId: string;
  stage: string;
  jobName: string;
  template: JobTemplateName;
  /** Template arguments; --result-uri is appended by the service. */
  args: string[];
  gpuType: string;
  timeoutSeconds: number;
  actor: string;
  resultSchema: z.ZodType<T>;
}

export interface GpuJobOutcome<T> {
  jobName: string;
  namespace: string;
  adopted: boolean;
  resultUri: string;
  result: T;
  status: JobStatus;
}

export interface GpuJobHooks {
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

/** What a Job container needs to reach the artifact store: plain settings as env, credentials as Secret refs. */
export function jobStoreAccess(store: QwenopsConfig['store']): {
  env: Record<string, string>;
  secretEnv: SecretEnvRef[];
} {
  if (store.kind === 'fs')
    return { env: { QWENOPS_STORE: 'fs', QWENOPS_STORE_DIR: store.dir }, secretEnv: [] };
  return {
    env: {
      QWENOPS_STORE: 'minio',
      QWENOPS_S3_ENDPOINT: store.endpoint,
      QWENOPS_S3_BUCKET: store.bucket,
      QWENOPS_S3_REGION: store.region,
    },
    // KServe's S3 convention: the same Secret serves the predictor's storage initializer.
    secretEnv: [
      { name: 'QWENOPS_S3_ACCESS_KEY', secretName: store.credentialsSecret, key: 'AWS_ACCESS_KEY_ID' },
      { name: 'QWENOPS_S3_SECRET_KEY', secretName: store.credentialsSecret, key: 'AWS_SECRET_ACCESS_KEY' },
    ],
  };
}

export class GpuJobService {
  constructor(
    private readonly jobs: ClusterJobs,
    private readonly store: ArtifactStore,
    private readonly audit: AuditLog,
    private readonly settings: {
      namespace: string;
      storeAccess: { env: Record<string, string>; secretEnv: SecretEnvRef[] };
    },
  ) {}

  get namespace(): string {
    return this.settings.namespace;
  }

  resultKey(workflowId: string, stage: string): string {
    return `${artifactKeys.runDir(workflowId)}/${stage}/result.json`;
  }

  async run<T>(request: GpuJobRequest<T>, hooks: GpuJobHooks = {}): Promise<GpuJobOutcome<T>> {
    const namespace = this.settings.namespace;
    const resultKey = this.resultKey(request.workflowId, request.stage);
    const resultUri = this.store.uri(resultKey);
    const spec: GpuJobSpec = {
      namespace,
      name: request.jobName,
      template: request.template,
      workflowId: request.workflowId,
      stage: request.stage,
      args: [...request.args, '--result-uri', resultUri],
      env: { ...this.settings.storeAccess.env },
      secretEnv: this.settings.storeAccess.secretEnv,
      gpus: 1,
      gpuType: request.gpuType,
      activeDeadlineSeconds: request.timeoutSeconds,
      backoffLimit: 2,
      ttlSecondsAfterFinished: 24 * 3600,
      labels: {
        'app.kubernetes.io/managed-by': 'qwenops',
        'qwenops.io/workflow-id': labelValue(request.workflowId),
        'qwenops.io/stage': request.stage,
      },
    };
    const { status: created, adopted } = await this.jobs.createJob(spec);
    if (!adopted) {
      await this.audit.record({
        actor: request.actor,
        action: 'job.create',
        workflowId: request.workflowId,
        target: `job ${namespace}/${request.jobName}`,
        details: { template: request.template, args: spec.args, gpuType: request.gpuType },
      });
    }
    hooks.onProgress?.(
      `${adopted ? 'adopted' : 'created'} Job ${namespace}/${request.jobName} (${created.phase})`,
    );

    let final: JobStatus;
    try {
      final = await this.jobs.waitForJob(namespace, request.jobName, {
        deadline: Date.now() + request.timeoutSeconds * 1000,
        signal: hooks.signal,
        onProgress: hooks.onProgress,
      });
    } catch (err) {
      if (hooks.signal?.aborted) {
        // Cancelled (abort, or the workflow gave up): the Job must not outlive its purpose.
        await this.delete(request.workflowId, request.jobName, request.actor, 'cancelled');
      }
      throw err;
    }
    if (final.phase === 'Failed') {
      const logTail = await this.jobs
        .jobLogs(namespace, request.jobName, 30)
        .catch(() => '(logs unavailable)');
      throw new GpuJobFailedError(
        request.jobName,
        `GPU Job ${namespace}/${request.jobName} failed after ${final.attempts} attempt(s): ${final.message ?? 'no message'}\n--- last log lines ---\n${logTail}`,
        logTail,
      );
    }
    const raw = await this.store.getJson(resultKey);
    const parsed = request.resultSchema.safeParse(raw);
    if (!parsed.success) {
      throw new GpuJobFailedError(
        request.jobName,
        `GPU Job ${namespace}/${request.jobName} wrote an invalid result at ${resultUri}: ${parsed.error.issues
          .map((i) => `${i.path.join('.')}: ${i.message}`)
          .join('; ')}`,
        '',
      );
    }
    return { jobName: request.jobName, namespace, adopted, resultUri, result: parsed.data, status: final };
  }

  async delete(workflowId: string, jobName: string, actor: string, why: string): Promise<boolean> {
    const deleted = await this.jobs.deleteJob(this.settings.namespace, jobName);
    if (deleted) {
      await this.audit.record({
        actor,
        action: 'job.delete',
        workflowId,
        target: `job ${this.settings.namespace}/${jobName}`,
        details: { why },
      });
    }
    return deleted;
  }
}
