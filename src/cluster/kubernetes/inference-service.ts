import { createHash } from 'node:crypto';
import {
  ClusterError,
  type DeploymentMode,
  type ServingCondition,
  type ServingRevisionSpec,
  type ServingStatus,
  type TrafficTarget,
} from '../port.js';

// The KServe InferenceService (serving.kserve.io/v1beta1) as qwenops writes and reads it,
// for both canary APIs KServe has:
// - Serverless (Knative): one predictor; `canaryTrafficPercent` splits traffic between the
//   latest revision and the last rolled-out one; status.components.predictor.traffic[].
//   The stable revision is not in the spec, so annotations remember it.
// - Standard (KServe >= 0.20): named predictors; `spec.canary[]` entries with
//   `trafficPercent`; status.canaryStatuses[] and the CanaryPredictorReady condition.
// Pure functions: manifests, digests, status mapping and the "has traffic settled" rule.

export const ISVC = { group: 'serving.kserve.io', version: 'v1beta1', plural: 'inferenceservices' } as const;
export const DEPLOYMENT_MODE_ANNOTATION = 'serving.kserve.io/deploymentMode';
export const ISVC_ANNOTATIONS = {
  /** Digest of the predictor the spec describes (Serverless: the latest revision). */
  revisionDigest: 'qwenops.io/revision-digest',
  /** Serverless: the rolled-out (stable) revision, which the spec no longer shows during a canary. */
  stableDigest: 'qwenops.io/stable-digest',
  stableStorageUri: 'qwenops.io/stable-storage-uri',
  /** Serverless: set when the latest revision was rolled back (canaryTrafficPercent pinned to 0). */
  rolledBackDigest: 'qwenops.io/rolled-back-digest',
} as const;

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

export interface ModelSpec {
  modelFormat: { name: string; version?: string };
  runtime?: string;
  storageUri?: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: Array<Record<string, unknown>>;
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  livenessProbe?: Record<string, unknown>;
  readinessProbe?: Record<string, unknown>;
  startupProbe?: Record<string, unknown>;
  securityContext?: Record<string, unknown>;
}

export interface PredictorSpec {
  name?: string;
  minReplicas?: number;
  maxReplicas?: number;
  canaryTrafficPercent?: number;
  serviceAccountName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  nodeSelector?: Record<string, string>;
  tolerations?: Array<{ key?: string; operator?: string; value?: string; effect?: string }>;
  securityContext?: Record<string, unknown>;
  model: ModelSpec;
}

export interface CanaryEntry {
  trafficPercent: number;
  predictor: PredictorSpec;
}

export interface KnativeTrafficTarget {
  tag?: string;
  revisionName?: string;
  latestRevision?: boolean;
  percent?: number;
  url?: string;
}

export interface ComponentStatus {
  url?: string;
  latestReadyRevision?: string;
  latestCreatedRevision?: string;
  previousRolledoutRevision?: string;
  latestRolledoutRevision?: string;
  traffic?: KnativeTrafficTarget[];
}

export interface InferenceServiceStatus {
  observedGeneration?: number;
  url?: string;
  conditions?: Array<{ type: string; status: string; reason?: string; message?: string; severity?: string }>;
  components?: Record<string, ComponentStatus>;
  canaryStatuses?: Array<{ name?: string; ready?: boolean; trafficPercent?: number }>;
}

export interface InferenceService {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    generation?: number;
    uid?: string;
  };
  spec: { predictor: PredictorSpec; canary?: CanaryEntry[] };
  status?: InferenceServiceStatus;
}

export interface PredictorOptions {
  /** ServingRuntime the model runs on (k8s/base/serving/vllm-runtime.yaml). */
  runtime: string;
  /** ServiceAccount holding the object-store credentials for the storage initializer. */
  serviceAccountName?: string;
  /** Port the vLLM OpenAI server listens on (KServe routes to 8080). */
  port: number;
}

export const DEFAULT_PREDICTOR_OPTIONS: PredictorOptions = {
  runtime: 'qwenops-vllm',
  serviceAccountName: 'qwenops-serving',
  port: 8080,
};

/** The vLLM OpenAI server flags for a revision (the seed's settings, plus any extras). */
export function vllmArgs(revision: ServingRevisionSpec, port: number): string[] {
  const v = revision.vllm;
  const args = [
    // KServe's storage initializer puts storageUri's content here.
    '--model=/mnt/models',
    `--served-model-name=${revision.servedModelName}`,
    `--port=${port}`,
    `--max-model-len=${v.maxModelLen}`,
    `--gpu-memory-utilization=${v.gpuMemoryUtilization}`,
    `--dtype=${v.dtype}`,
    `--tensor-parallel-size=${v.tensorParallelSize}`,
  ];
  if (v.trustRemoteCode) args.push('--trust-remote-code');
  if (v.enablePrefixCaching) args.push('--enable-prefix-caching');
  // No --quantization: vLLM reads the method from the checkpoint's quantization_config, and
  // an explicit flag that differs from it (llm-compressor writes compressed-tensors AWQ) is
  // an error at startup.
  return [...args, ...v.extraArgs];
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function validateRevision(revision: ServingRevisionSpec): void {
  const bad = (field: string, rule: string) =>
    new ClusterError('Invalid', `ServingRevisionSpec.${field}: ${rule}`, false);
  if (!/^(s3|pvc|hf|oci|gs|https?):\/\/\S+$/.test(revision.storageUri)) {
    throw bad(
      'storageUri',
      'must be an s3://, pvc://, hf://, oci://, gs:// or http(s):// URI KServe can fetch',
    );
  }
  if (!revision.image) throw bad('image', 'must not be empty');
  if (!Number.isInteger(revision.minReplicas) || revision.minReplicas < 0)
    throw bad('minReplicas', 'must be an integer >= 0');
  if (!Number.isInteger(revision.maxReplicas) || revision.maxReplicas < Math.max(1, revision.minReplicas)) {
    throw bad('maxReplicas', 'must be an integer >= max(1, minReplicas)');
  }
  if (!Number.isInteger(revision.gpusPerReplica) || revision.gpusPerReplica < 1) {
    throw bad('gpusPerReplica', 'must be an integer >= 1');
  }
  for (const [key, value] of Object.entries(revision.labels)) {
    if (value.length > 63 || !LABEL_VALUE.test(value))
      throw bad(`labels.${key}`, 'must be a valid label value');
  }
}

/** The predictor serving one revision with vLLM (no canary fields). */
export function buildPredictor(revision: ServingRevisionSpec, options: PredictorOptions): PredictorSpec {
  validateRevision(revision);
  const gpus = String(revision.gpusPerReplica);
  const probe = (initialDelaySeconds: number, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path: '/health', port: options.port },
    initialDelaySeconds,
    periodSeconds,
    failureThreshold,
  });
  const predictor: PredictorSpec = {
    minReplicas: revision.minReplicas,
    maxReplicas: revision.maxReplicas,
    labels: { ...revision.labels },
    tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    model: {
      modelFormat: { name: 'huggingface' },
      runtime: options.runtime,
      storageUri: revision.storageUri,
      image: revision.image,
      command: ['python3', '-m', 'vllm.entrypoints.openai.api_server'],
      args: vllmArgs(revision, options.port),
      env: Object.entries(revision.env).map(([name, value]) => ({ name, value })),
      ports: [{ name: 'http1', containerPort: options.port, protocol: 'TCP' }],
      resources: { limits: { 'nvidia.com/gpu': gpus }, requests: { 'nvidia.com/gpu': gpus } },
      // Loading 7B weights takes minutes: the startup probe holds liveness off until then.
      startupProbe: probe(30, 10, 90),
      livenessProbe: probe(0, 15, 4),
      readinessProbe: probe(0, 5, 3),
      securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
    },
  };
  if (revision.vllm.quantization)
    predictor.annotations = { 'qwenops.io/quantization': revision.vllm.quantization };
  if (options.serviceAccountName) predictor.serviceAccountName = options.serviceAccountName;
  if (revision.gpuType) predictor.nodeSelector = { 'gpu-type': revision.gpuType };
  return predictor;
}

/** Identity of what a predictor serves (model, image, args, placement), not who deployed it. */
export function predictorDigest(predictor: PredictorSpec): string {
  const { canaryTrafficPercent: _c, name: _n, labels: _l, annotations: _a, ...served } = predictor;
  return createHash('sha256').update(canonicalJson(served)).digest('hex').slice(0, 16);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Standard mode: the canary's predictor name, deterministic from what it serves. */
export function canaryPredictorName(digest: string): string {
  return `r-${digest.slice(0, 10)}`;
}

/** Standard mode: the Deployment KServe creates for a named predictor (must fit 63 characters). */
export function predictorDeploymentName(service: string, predictorName?: string): string {
  return predictorName ? `${service}-${predictorName}-predictor` : `${service}-predictor`;
}

export function deploymentModeOf(isvc: InferenceService): DeploymentMode | undefined {
  const mode = isvc.metadata.annotations?.[DEPLOYMENT_MODE_ANNOTATION];
  return mode === 'Serverless' || mode === 'Standard' || mode === 'RawDeployment' ? mode : undefined;
}

/** Serverless: a canary is in progress when the latest revision is neither the stable one nor rolled back. */
export function serverlessCanaryActive(isvc: InferenceService): boolean {
  const a = isvc.metadata.annotations ?? {};
  const latest = a[ISVC_ANNOTATIONS.revisionDigest];
  return (
    isvc.spec.predictor.canaryTrafficPercent !== undefined &&
    latest !== undefined &&
    latest !== a[ISVC_ANNOTATIONS.stableDigest] &&
    latest !== a[ISVC_ANNOTATIONS.rolledBackDigest]
  );
}

function conditionsOf(isvc: InferenceService): ServingCondition[] {
  return (isvc.status?.conditions ?? []).map((c) => ({
    type: c.type,
    status: c.status === 'True' || c.status === 'False' ? c.status : 'Unknown',
    reason: c.reason,
    message: c.message,
  }));
}

/** What the service serves and how traffic is split, as the controller last reported it. */
export function servingStatusFrom(
  isvc: InferenceService,
  mode: DeploymentMode,
  owner?: string,
): ServingStatus {
  const conditions = conditionsOf(isvc);
  const ready = conditions.some((c) => c.type === 'Ready' && c.status === 'True');
  const base = {
    namespace: isvc.metadata.namespace,
    name: isvc.metadata.name,
    ready,
    conditions,
    url: isvc.status?.url,
    owner,
  };
  const specUri = isvc.spec.predictor.model.storageUri;
  if (mode === 'Standard') {
    const canary = isvc.spec.canary?.[0];
    const canaryName = canary?.predictor.name;
    const observed = isvc.status?.canaryStatuses?.find((c) => c.name === canaryName);
    const canaryPercent = canary ? observed?.trafficPercent : undefined;
    const stableRevision = predictorDeploymentName(isvc.metadata.name, isvc.spec.predictor.name);
    const traffic: TrafficTarget[] = [
      { revision: stableRevision, percent: 100 - (canaryPercent ?? 0), tag: 'prev', storageUri: specUri },
    ];
    if (canary) {
      traffic.push({
        revision: predictorDeploymentName(isvc.metadata.name, canaryName),
        percent: canaryPercent ?? 0,
        tag: 'latest',
        storageUri: canary.predictor.model.storageUri,
      });
    }
    return {
      ...base,
      traffic,
      canaryPercent,
      latestCreatedRevision: traffic[traffic.length - 1]?.revision,
      latestReadyRevision: canary && observed?.ready ? traffic[1]?.revision : stableRevision,
      latestRolledoutRevision: stableRevision,
      stableStorageUri: specUri,
      canaryStorageUri: canary?.predictor.model.storageUri,
    };
  }
  const component = isvc.status?.components?.predictor ?? {};
  const annotations = isvc.metadata.annotations ?? {};
  const stableUri = annotations[ISVC_ANNOTATIONS.stableStorageUri] ?? specUri;
  const canaryActive = mode === 'Serverless' && serverlessCanaryActive(isvc);
  const traffic: TrafficTarget[] = (component.traffic ?? []).map((t) => {
    const latest = t.latestRevision === true && (canaryActive || t.percent !== 100);
    return {
      revision: t.revisionName ?? component.latestReadyRevision ?? '',
      percent: t.percent ?? 0,
      tag: latest ? 'latest' : 'prev',
      url: t.url,
      storageUri: latest ? specUri : stableUri,
    };
  });
  // At canaryTrafficPercent 100 KServe already books the canary as rolled out; until qwenops
  // promotes it, the stable revision is still the one before it.
  const latestRevision = traffic.find((t) => t.tag === 'latest')?.revision;
  const canaryBookedAsRolledOut = canaryActive && latestRevision === component.latestRolledoutRevision;
  return {
    ...base,
    traffic,
    canaryPercent: canaryActive ? traffic.find((t) => t.tag === 'latest')?.percent : undefined,
    latestCreatedRevision: component.latestCreatedRevision,
    latestReadyRevision: component.latestReadyRevision,
    latestRolledoutRevision: canaryBookedAsRolledOut
      ? component.previousRolledoutRevision
      : component.latestRolledoutRevision,
    previousRolledoutRevision: canaryBookedAsRolledOut ? undefined : component.previousRolledoutRevision,
    stableStorageUri: stableUri,
    canaryStorageUri: canaryActive ? specUri : undefined,
  };
}

const FAILED_REASONS = new Set(['RevisionFailed', 'RevisionMissing', 'ContainerMissing', 'ExitCode']);

/**
 * Whether the controller has applied the current spec and the traffic split shows
 * `canaryPercent` (undefined: no canary, one revision at 100 %). Throws when the controller
 * reports the new revision failed: waiting longer would not help.
 */
export function trafficSettled(
  isvc: InferenceService,
  mode: DeploymentMode,
  canaryPercent: number | undefined,
): { settled: boolean; progress: string; status: ServingStatus } {
  const status = servingStatusFrom(isvc, mode);
  const failedCondition = status.conditions.find(
    (c) => c.status === 'False' && FAILED_REASONS.has(c.reason ?? ''),
  );
  if (failedCondition) {
    throw new ClusterError(
      'Unavailable',
      `InferenceService ${isvc.metadata.namespace}/${isvc.metadata.name}: ${failedCondition.type} is False (${failedCondition.reason}: ${failedCondition.message ?? ''})`,
      false,
    );
  }
  const generation = isvc.metadata.generation ?? 0;
  const observed = isvc.status?.observedGeneration ?? 0;
  const want = canaryPercent === undefined ? 'no canary' : `canary at ${canaryPercent}%`;
  const not = (why: string) => ({ settled: false, progress: `waiting for ${want}: ${why}`, status });
  if (observed < generation)
    return not(`controller has not observed generation ${generation} yet (at ${observed})`);
  if (!status.ready) {
    const readyCondition = status.conditions.find((c) => c.type === 'Ready');
    return not(
      `not Ready (${readyCondition?.reason ?? 'no Ready condition'}${readyCondition?.message ? `: ${readyCondition.message}` : ''})`,
    );
  }
  const split = status.traffic.map((t) => `${t.revision}=${t.percent}%`).join(', ') || 'no traffic reported';
  if (mode === 'Standard') {
    const canaryCondition = status.conditions.find((c) => c.type === 'CanaryPredictorReady');
    if (canaryPercent === undefined) {
      const leftovers = isvc.status?.canaryStatuses?.length ?? 0;
      if (isvc.spec.canary?.length || leftovers > 0 || canaryCondition)
        return not(`canary still reported (${split})`);
      return { settled: true, progress: `settled: ${split}`, status };
    }
    const name = isvc.spec.canary?.[0]?.predictor.name;
    const observedCanary = isvc.status?.canaryStatuses?.find((c) => c.name === name);
    if (!observedCanary?.ready || canaryCondition?.status !== 'True')
      return not(`canary ${name ?? '?'} not ready`);
    if (observedCanary.trafficPercent !== canaryPercent) return not(`traffic is ${split}`);
    return { settled: true, progress: `settled: ${split}`, status };
  }
  if (canaryPercent === undefined) {
    if (status.canaryPercent !== undefined || !status.traffic.some((t) => t.percent === 100)) {
      return not(`traffic is ${split}`);
    }
    return { settled: true, progress: `settled: ${split}`, status };
  }
  const latest = status.traffic.find((t) => t.tag === 'latest');
  if (!latest || latest.percent !== canaryPercent) return not(`traffic is ${split}`);
  if (
    status.latestReadyRevision !== status.latestCreatedRevision ||
    latest.revision !== status.latestCreatedRevision
  ) {
    return not(`latest revision ${status.latestCreatedRevision ?? '?'} not ready yet (${split})`);
  }
  if (
    canaryPercent < 100 &&
    !status.traffic.some((t) => t.tag === 'prev' && t.percent === 100 - canaryPercent)
  ) {
    return not(`stable revision does not carry ${100 - canaryPercent}% (${split})`);
  }
  return { settled: true, progress: `settled: ${split}`, status };
}
