import { createHash } from 'node:crypto';
import {
  type DeploymentMode,
  type ServingRevisionSpec,
  vllmEngineFlags,
} from '../../domain/serving-revision.js';
import { ClusterError } from '../port.js';

// The KServe InferenceService (serving.kserve.io/v1beta1) as qwenops writes and reads it,
// for both canary APIs KServe has:
// - Serverless (Knative): one predictor; `canaryTrafficPercent` splits traffic between the
//   latest revision and the last rolled-out one; status.components.predictor.traffic[].
//   The stable revision is not in the spec, so annotations remember it.
// - Standard (KServe >= 0.20): named predictors; `spec.canary[]` entries with
//   `trafficPercent`; status.canaryStatuses[] and the CanaryPredictorReady condition.
// Pure functions: the object's types, predictors and digests. How each canary API edits and
// reads the object back is in canary/ (one module per API).

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

/** The vLLM OpenAI server flags for a revision (the revision's vllm settings, plus any extras). */
export function vllmArgs(revision: ServingRevisionSpec, port: number): string[] {
  // No --quantization: vLLM reads the method from the checkpoint's quantization_config, and
  // an explicit flag that differs from it (llm-compressor writes compressed-tensors AWQ) is
  // an error at startup.
  return [
    // KServe's storage initializer puts storageUri's content here.
    '--model=/mnt/models',
    `--served-model-name=${revision.servedModelName}`,
    `--port=${port}`,
    ...vllmEngineFlags(revision.vllm),
  ];
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

export function deploymentModeOf(isvc: InferenceService): DeploymentMode | undefined {
  const mode = isvc.metadata.annotations?.[DEPLOYMENT_MODE_ANNOTATION];
  return mode === 'Serverless' || mode === 'Standard' || mode === 'RawDeployment' ? mode : undefined;
}
