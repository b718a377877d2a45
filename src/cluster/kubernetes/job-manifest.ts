import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { V1Container, V1EnvVar, V1Job } from '@kubernetes/client-node';
import YAML from 'yaml';
import { isDnsLabel, labelValue } from '../../domain/names.js';
import {
  ClusterError,
  type GpuJobSpec,
  type JobPhase,
  type JobStatus,
  type JobTemplateName,
} from '../port.js';

// GPU Jobs are built from the templates in k8s/base/job-templates/ (mounted into the worker
// from a ConfigMap in the cluster): the template owns what operators tune (image, command,
// volumes, tolerations, security context, resources), the GpuJobSpec adds what one run
// needs (name, labels, args, env, GPU count and type, deadlines). Pure functions: unit
// tested without a cluster.

export const JOB_TEMPLATE_NAMES: readonly JobTemplateName[] = ['download', 'quantize', 'evaluate'];
export type JobTemplates = Record<JobTemplateName, V1Job>;

export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  workflowId: 'qwenops.io/workflow-id',
  stage: 'qwenops.io/stage',
  template: 'qwenops.io/job-template',
  gpuType: 'gpu-type',
} as const;
export const ANNOTATIONS = { workflowId: 'qwenops.io/workflow-id' } as const;
export const GPU_RESOURCE = 'nvidia.com/gpu';

/** Reads <dir>/<template>.yaml for every template; a missing or malformed one is an error naming the file. */
export function loadJobTemplates(dir: string): JobTemplates {
  const templates = {} as JobTemplates;
  for (const name of JOB_TEMPLATE_NAMES) {
    const file = path.join(dir, `${name}.yaml`);
    let parsed: unknown;
    try {
      parsed = YAML.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ClusterError('Invalid', `job template ${file}: ${(err as Error).message}`, false);
    }
    templates[name] = validateTemplate(parsed, file);
  }
  return templates;
}

function validateTemplate(value: unknown, source: string): V1Job {
  const job = value as V1Job;
  const problems: string[] = [];
  if (job?.apiVersion !== 'batch/v1' || job?.kind !== 'Job') problems.push('must be a batch/v1 Job');
  const containers = job?.spec?.template?.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0)
    problems.push('spec.template.spec.containers must not be empty');
  if (job?.spec?.template?.spec?.securityContext?.runAsNonRoot !== true) {
    problems.push('spec.template.spec.securityContext.runAsNonRoot must be true');
  }
  if (problems.length > 0)
    throw new ClusterError('Invalid', `job template ${source}: ${problems.join('; ')}`, false);
  return job;
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function invalid(field: string, rule: string): ClusterError {
  return new ClusterError('Invalid', `GpuJobSpec.${field}: ${rule}`, false);
}

/** Refuses a spec the apiserver would refuse, or that would run unsafely, naming the field. */
export function validateJobSpec(spec: GpuJobSpec): void {
  if (!isDnsLabel(spec.namespace)) throw invalid('namespace', 'must be a DNS-1123 label');
  if (!isDnsLabel(spec.name)) throw invalid('name', 'must be a DNS-1123 label of at most 63 characters');
  if (!JOB_TEMPLATE_NAMES.includes(spec.template)) {
    throw invalid('template', `must be one of ${JOB_TEMPLATE_NAMES.join(', ')}`);
  }
  if (!Number.isInteger(spec.gpus) || spec.gpus < 0 || spec.gpus > 16)
    throw invalid('gpus', 'must be an integer 0..16');
  if (!Number.isInteger(spec.activeDeadlineSeconds) || spec.activeDeadlineSeconds <= 0) {
    throw invalid('activeDeadlineSeconds', 'must be a positive integer');
  }
  if (!Number.isInteger(spec.backoffLimit) || spec.backoffLimit < 0)
    throw invalid('backoffLimit', 'must be an integer >= 0');
  if (!Number.isInteger(spec.ttlSecondsAfterFinished) || spec.ttlSecondsAfterFinished < 0) {
    throw invalid('ttlSecondsAfterFinished', 'must be an integer >= 0');
  }
  if (spec.gpuType !== undefined && !LABEL_VALUE.test(spec.gpuType)) {
    throw invalid('gpuType', 'must be a valid label value (e.g. "A10")');
  }
  for (const [key, value] of Object.entries(spec.labels)) {
    if (value.length > 63 || !LABEL_VALUE.test(value))
      throw invalid(`labels.${key}`, 'must be a valid label value');
  }
  const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;
  for (const name of [...Object.keys(spec.env), ...spec.secretEnv.map((s) => s.name)]) {
    if (!envName.test(name)) throw invalid(`env.${name}`, 'must be a valid environment variable name');
  }
  for (const ref of spec.secretEnv) {
    if (!isDnsLabel(ref.secretName) && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(ref.secretName)) {
      throw invalid(`secretEnv.${ref.name}.secretName`, 'must be a DNS-1123 subdomain');
    }
  }
}

function mergeEnv(base: V1EnvVar[] | undefined, extra: V1EnvVar[]): V1EnvVar[] {
  const names = new Set(extra.map((e) => e.name));
  return [...(base ?? []).filter((e) => !names.has(e.name)), ...extra];
}

/** The Job for one GPU run: the template, with the spec's identity, arguments and limits. */
export function buildJobManifest(template: V1Job, spec: GpuJobSpec, options: { image?: string } = {}): V1Job {
  validateJobSpec(spec);
  const job = structuredClone(template);
  const identity: Record<string, string> = {
    [LABELS.managedBy]: 'qwenops',
    [LABELS.workflowId]: labelValue(spec.workflowId),
    [LABELS.stage]: labelValue(spec.stage),
    [LABELS.template]: spec.template,
  };
  job.metadata = {
    name: spec.name,
    namespace: spec.namespace,
    labels: { ...template.metadata?.labels, ...spec.labels, ...identity },
    // Label values are clipped; the annotation keeps the full workflow id for humans.
    annotations: { ...template.metadata?.annotations, [ANNOTATIONS.workflowId]: spec.workflowId },
  };
  const jobSpec = job.spec as NonNullable<V1Job['spec']>;
  jobSpec.backoffLimit = spec.backoffLimit;
  jobSpec.activeDeadlineSeconds = spec.activeDeadlineSeconds;
  jobSpec.ttlSecondsAfterFinished = spec.ttlSecondsAfterFinished;
  // The apiserver generates the selector; a template must not carry a stale one.
  delete jobSpec.selector;
  delete jobSpec.manualSelector;
  const podMeta = jobSpec.template.metadata ?? {};
  podMeta.labels = { ...podMeta.labels, ...spec.labels, ...identity };
  jobSpec.template.metadata = podMeta;
  const pod = jobSpec.template.spec as NonNullable<V1Job['spec']>['template']['spec'] & object;
  pod.restartPolicy = pod.restartPolicy ?? 'Never';
  pod.securityContext = { ...pod.securityContext, runAsNonRoot: true };
  if (spec.gpuType) pod.nodeSelector = { ...pod.nodeSelector, [LABELS.gpuType]: spec.gpuType };

  const container = pod.containers[0] as V1Container;
  if (options.image) container.image = options.image;
  container.args = [...(container.args ?? []), ...spec.args];
  container.env = mergeEnv(container.env, [
    ...Object.entries(spec.env).map(([name, value]) => ({ name, value })),
    ...spec.secretEnv.map((ref) => ({
      name: ref.name,
      valueFrom: { secretKeyRef: { name: ref.secretName, key: ref.key } },
    })),
  ]);
  container.securityContext = {
    ...container.securityContext,
    allowPrivilegeEscalation: false,
    runAsNonRoot: true,
  };
  // Failed containers put their last log lines in the termination message, which survives
  // the pod's node going away (the log API needs the kubelet).
  container.terminationMessagePolicy = container.terminationMessagePolicy ?? 'FallbackToLogsOnError';
  const resources = container.resources ?? {};
  const limits = { ...resources.limits };
  const requests = { ...resources.requests };
  if (spec.gpus > 0) {
    limits[GPU_RESOURCE] = String(spec.gpus);
    requests[GPU_RESOURCE] = String(spec.gpus);
  } else {
    delete limits[GPU_RESOURCE];
    delete requests[GPU_RESOURCE];
  }
  container.resources = { ...resources, limits, requests };
  return job;
}

function isoTime(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return value instanceof Date ? value.toISOString() : String(value);
}

/** What the Job controller has reported, in the port's terms. */
export function jobStatusFromObject(job: V1Job): JobStatus {
  const status = job.status ?? {};
  const condition = (type: string) => status.conditions?.find((c) => c.type === type && c.status === 'True');
  const complete = condition('Complete');
  const failed = condition('Failed');
  const active = status.active ?? 0;
  let phase: JobPhase;
  let message: string | undefined;
  if (complete) {
    phase = 'Succeeded';
    message = 'completed';
  } else if (failed) {
    phase = 'Failed';
    message = [failed.reason, failed.message].filter(Boolean).join(': ') || 'failed';
  } else if (active > 0) {
    phase = 'Running';
    message = `${active} pod${active === 1 ? '' : 's'} running${status.ready ? ` (${status.ready} ready)` : ''}`;
  } else {
    phase = 'Pending';
    message = job.spec?.suspend ? 'suspended' : 'waiting for a pod';
  }
  if (!complete && !failed && (status.failed ?? 0) > 0) {
    message = `${message}; ${status.failed} attempt${status.failed === 1 ? '' : 's'} failed so far`;
  }
  return {
    namespace: job.metadata?.namespace ?? '',
    name: job.metadata?.name ?? '',
    phase,
    attempts: active + (status.succeeded ?? 0) + (status.failed ?? 0),
    startedAt: isoTime(status.startTime),
    finishedAt: isoTime(status.completionTime ?? failed?.lastTransitionTime),
    message,
  };
}
