import { z } from 'zod';
import { DEFAULT_ROLLOUT_LEASE_SECONDS, MAX_LEASE_SECONDS, MIN_LEASE_SECONDS } from '../../domain/lease.js';
import type { ServingStatus } from '../../domain/serving-revision.js';
import { dnsLabelSchema } from '../../domain/validation.js';
import type { ClusterErrorCode, GpuJobSpec, JobStatus } from '../port.js';
import type { ProxyFault } from './traffic-proxy.js';

// The sandbox daemon's control API, shared by the daemon (server) and SandboxClusterBackend
// (client). Paths follow Kubernetes conventions so they read like the real thing:
//   /apis/batch/v1/namespaces/{ns}/jobs[/{name}[/log]]
//   /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}[/canary|/canary/traffic|/promote|/rollback|/lease]
//     /lease: POST claim, PUT renew ({owner, leaseSeconds}), GET, DELETE ?owner= release, DELETE ?version= break
// plus list endpoints without a namespace for tests and observability.

export const JOBS_PATH = '/apis/batch/v1';
export const SERVING_PATH = '/apis/serving.kserve.io/v1beta1';
/** Prometheus HTTP service discovery of every revision server (http_sd_configs url). */
export const SCRAPE_TARGETS_PATH = '/prometheus/targets';

export const jobPath = (namespace: string, name?: string) =>
  `${JOBS_PATH}/namespaces/${encodeURIComponent(namespace)}/jobs${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
export const servicePath = (namespace: string, name: string) =>
  `${SERVING_PATH}/namespaces/${encodeURIComponent(namespace)}/inferenceservices/${encodeURIComponent(name)}`;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name');

export const gpuJobSpecSchema = z
  .object({
    namespace: dnsLabelSchema,
    name: dnsLabelSchema,
    template: z.enum(['download', 'quantize', 'evaluate']),
    workflowId: z.string().min(1),
    stage: z.string().min(1),
    args: z.array(z.string()),
    env: z.record(envName, z.string()),
    secretEnv: z.array(z.object({ name: envName, secretName: z.string().min(1), key: z.string().min(1) })),
    gpus: z.number().int().min(0),
    gpuType: z.string().min(1).optional(),
    activeDeadlineSeconds: z.number().int().positive('must be > 0'),
    backoffLimit: z.number().int().min(0, 'must be >= 0').max(100),
    ttlSecondsAfterFinished: z.number().int().min(0, 'must be >= 0'),
    labels: z.record(z.string(), z.string()),
  })
  .strict() satisfies z.ZodType<GpuJobSpec>;

export const servingRevisionSpecSchema = z.object({
  storageUri: z.string().min(1),
  image: z.string().min(1),
  servedModelName: z.string().min(1),
  vllm: z.object({
    trustRemoteCode: z.boolean(),
    maxModelLen: z.number().int().min(16),
    gpuMemoryUtilization: z.number().gt(0).max(1),
    enablePrefixCaching: z.boolean(),
    dtype: z.string().min(1),
    tensorParallelSize: z.number().int().min(1),
    quantization: z.enum(['awq', 'rtn']).optional(),
    extraArgs: z.array(z.string()),
  }),
  env: z.record(envName, z.string()),
  minReplicas: z.number().int().min(0),
  maxReplicas: z.number().int().min(1),
  gpusPerReplica: z.number().int().min(0),
  gpuType: z.string().min(1).optional(),
  labels: z.record(z.string(), z.string()),
});

const percentSchema = z
  .number()
  .int('must be a whole percentage')
  .min(0, 'must be >= 0')
  .max(100, 'must be <= 100');

export const deploymentModeSchema = z.enum(['Serverless', 'Standard', 'RawDeployment']);

export const deployBodySchema = z
  .object({ deploymentMode: deploymentModeSchema, revision: servingRevisionSpecSchema })
  .strict();
export const canaryBodySchema = z
  .object({
    deploymentMode: deploymentModeSchema,
    revision: servingRevisionSpecSchema,
    percent: percentSchema,
    baseline: z.boolean().default(false),
  })
  .strict();
export const trafficBodySchema = z.object({ percent: percentSchema }).strict();
export const leaseBodySchema = z
  .object({
    owner: z.string().min(1),
    leaseSeconds: z
      .number()
      .int()
      .min(MIN_LEASE_SECONDS)
      .max(MAX_LEASE_SECONDS)
      .default(DEFAULT_ROLLOUT_LEASE_SECONDS),
  })
  .strict();

/** What the daemon answers for one Job (status plus what tests check). */
export interface JobView {
  spec: GpuJobSpec;
  status: JobStatus;
  /** Processes started for this Job; an adopted (repeated) create never adds one. */
  launches: number;
  pid?: number;
  /** Exit code of the last attempt that ended (null when killed by a signal). */
  exitCode?: number | null;
  logFile: string;
}

export const proxyFaultSchema = z
  .object({
    delayMs: z.number().int().min(0, 'must be >= 0').max(600_000, 'must be <= 600000').default(0),
    delayPercent: z.number().min(0, 'must be >= 0').max(100, 'must be <= 100').default(100),
    abortPercent: z.number().min(0, 'must be >= 0').max(100, 'must be <= 100').default(0),
    abortStatus: z.number().int().min(400, 'must be an HTTP error status').max(599).default(503),
  })
  .strict()
  .refine((f) => f.delayMs > 0 || f.abortPercent > 0, {
    message: 'a fault needs delayMs > 0 or abortPercent > 0',
  });

/** Body of PUT .../inferenceservices/{name}/faults: fault per role and/or per revision name. */
export const faultRulesSchema = z
  .object({
    canary: proxyFaultSchema.optional(),
    stable: proxyFaultSchema.optional(),
    revisions: z.record(dnsLabelSchema, proxyFaultSchema).optional(),
  })
  .strict();

export interface RevisionView {
  name: string;
  role: 'stable' | 'canary' | 'baseline';
  storageUri: string;
  servedModelName: string;
  url?: string;
  pid?: number;
  healthy: boolean;
  restarts: number;
  /** Weight the proxy applies now (percent). */
  weight: number;
  /** Requests the proxy sent to this revision since the service was created. */
  requests: number;
  inflight: number;
  logFile: string;
  engine: 'simulator' | 'vllm';
  /** Where the server itself listens (its metrics); `url` is its sidecar. */
  serverUrl?: string;
  fault?: ProxyFault;
  /** Why the revision can no longer become ready. */
  failed?: { reason: string; message: string };
  /** Seconds from its first start (model copy included) to its first healthy answer. */
  readySeconds?: number;
}

export interface ServiceView {
  status: ServingStatus;
  proxyUrl: string;
  revisions: RevisionView[];
  /** Revisions that served before and were stopped (promoted away or rolled back). */
  history: Array<{
    name: string;
    storageUri: string;
    outcome: 'replaced' | 'rolled-back' | 'baseline-removed';
    /** Its start-up to first healthy answer, when it got there. */
    readySeconds?: number;
  }>;
}

export interface ApiErrorBody {
  error: { code: ClusterErrorCode; message: string };
}

export const HTTP_STATUS_OF: Record<ClusterErrorCode, number> = {
  Invalid: 400,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  Unsupported: 422,
  Aborted: 499,
  Timeout: 504,
  Unavailable: 503,
};
