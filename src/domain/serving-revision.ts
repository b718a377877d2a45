import { labelValue } from './names.js';
import type { PromotionSpec, ServingTarget } from './promotion-spec.js';

// The serving vocabulary shared by workflows, services and the cluster adapters
// (src/cluster/port.ts re-exports it).

export type DeploymentMode = 'Serverless' | 'Standard' | 'RawDeployment';

export interface ServingRef {
  namespace: string;
  /** InferenceService name. */
  name: string;
  deploymentMode: DeploymentMode;
}

/** Everything that defines one serving revision (a new model, image or config). */
export interface ServingRevisionSpec {
  /** Where the weights are: s3://bucket/prefix, pvc://claim/path, file:///abs/path. */
  storageUri: string;
  image: string;
  /** Name the OpenAI API serves the model under. */
  servedModelName: string;
  vllm: {
    trustRemoteCode: boolean;
    maxModelLen: number;
    gpuMemoryUtilization: number;
    enablePrefixCaching: boolean;
    dtype: string;
    tensorParallelSize: number;
    quantization?: 'awq' | 'rtn';
    extraArgs: string[];
  };
  env: Record<string, string>;
  minReplicas: number;
  maxReplicas: number;
  gpusPerReplica: number;
  gpuType?: string;
  /** Labels / annotations carried onto the revision (workflow id, model, stage). */
  labels: Record<string, string>;
}

export interface TrafficTarget {
  revision: string;
  percent: number;
  /**
   * 'prev' = the stable, rolled-out revision; 'latest' = the newest (canary) one;
   * 'baseline' = a fresh copy of the stable revision started with the canary.
   */
  tag?: 'prev' | 'latest' | 'baseline';
  /** Address that reaches only this revision (tag routing), when the backend offers one. */
  url?: string;
  storageUri?: string;
}

export interface ServingCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
}

export interface ServingStatus {
  namespace: string;
  name: string;
  ready: boolean;
  conditions: ServingCondition[];
  /** Address that goes through the traffic split. */
  url?: string;
  traffic: TrafficTarget[];
  /** Percent currently sent to the canary (latest) revision; undefined when there is no canary. */
  canaryPercent?: number;
  /** Percent sent to the baseline revision, when the canary was started with one. */
  baselinePercent?: number;
  latestCreatedRevision?: string;
  latestReadyRevision?: string;
  latestRolledoutRevision?: string;
  previousRolledoutRevision?: string;
  /** storageUri of the stable and the canary revision. */
  stableStorageUri?: string;
  canaryStorageUri?: string;
  /** Workflow id holding the rollout lease, if any. */
  owner?: string;
}

// Pure builders for what a serving revision looks like, shared by both workflows.

/** The vLLM engine flags a revision's settings mean (model path, name and port are the caller's). */
export function vllmEngineFlags(
  v: Pick<
    ServingRevisionSpec['vllm'],
    | 'maxModelLen'
    | 'gpuMemoryUtilization'
    | 'dtype'
    | 'tensorParallelSize'
    | 'trustRemoteCode'
    | 'enablePrefixCaching'
    | 'extraArgs'
  >,
): string[] {
  const args = [
    `--max-model-len=${v.maxModelLen}`,
    `--gpu-memory-utilization=${v.gpuMemoryUtilization}`,
    `--dtype=${v.dtype}`,
    `--tensor-parallel-size=${v.tensorParallelSize}`,
  ];
  if (v.trustRemoteCode) args.push('--trust-remote-code');
  if (v.enablePrefixCaching) args.push('--enable-prefix-caching');
  return [...args, ...v.extraArgs];
}

/**
 * The baseline's share beside a canary at `canaryPercent`: the same weight as the canary
 * while the stable revision can give it (up to 50 %), then what the stable has left. A
 * baseline and a canary both started cold, on the same load, compare like for like
 * (Spinnaker's practice); the long-running stable has warm caches and a different history.
 */
export function baselinePercentFor(canaryPercent: number): number {
  return Math.max(0, Math.min(canaryPercent, 100 - canaryPercent));
}

export function servingRef(target: Pick<ServingTarget, 'namespace' | 'name' | 'deploymentMode'>): ServingRef {
  return { namespace: target.namespace, name: target.name, deploymentMode: target.deploymentMode };
}

/** The serving revision for a model at `storageUri`, with the serving target's vLLM settings. */
export function buildRevisionSpec(
  serving: ServingTarget,
  storageUri: string,
  options: { quantized: boolean; method?: 'awq' | 'rtn'; labels: Record<string, string> },
): ServingRevisionSpec {
  return {
    storageUri,
    image: serving.image,
    servedModelName: serving.name,
    vllm: {
      trustRemoteCode: serving.vllm.trustRemoteCode,
      maxModelLen: serving.vllm.maxModelLen,
      gpuMemoryUtilization: serving.vllm.gpuMemoryUtilization,
      enablePrefixCaching: serving.vllm.enablePrefixCaching,
      dtype: serving.vllm.dtype,
      tensorParallelSize: serving.vllm.tensorParallelSize,
      quantization: options.quantized ? (options.method ?? 'awq') : undefined,
      extraArgs: [...serving.vllm.extraArgs],
    },
    env: { ...serving.env },
    minReplicas: serving.minReplicas,
    maxReplicas: serving.maxReplicas,
    gpusPerReplica: serving.gpusPerReplica,
    gpuType: serving.gpuType,
    labels: { ...options.labels },
  };
}

/**
 * The same revision on one replica, for a private validation service: the gate needs the
 * candidate's answers, not production capacity (nor its autoscaler).
 */
export function validationRevision(
  revision: ServingRevisionSpec,
  labels: Record<string, string>,
): ServingRevisionSpec {
  return { ...revision, minReplicas: 1, maxReplicas: 1, labels: { ...labels } };
}

/** Labels every object a promotion creates carries (Kubernetes label values: <= 63 chars). */
export function promotionLabels(
  spec: PromotionSpec,
  workflowId: string,
  stage: string,
): Record<string, string> {
  return {
    'app.kubernetes.io/managed-by': 'qwenops',
    'qwenops.io/workflow-id': labelValue(workflowId),
    'qwenops.io/stage': labelValue(stage),
    'qwenops.io/model': labelValue(spec.model),
  };
}
