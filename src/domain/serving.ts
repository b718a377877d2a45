import type { ServingRef, ServingRevisionSpec } from '../cluster/port.js';
import type { PromotionSpec, ServingTarget } from './promotion-spec.js';

// Pure builders for what a serving revision looks like, shared by both workflows.

export function servingRef(target: Pick<ServingTarget, 'namespace' | 'name' | 'deploymentMode'>): ServingRef {
  return { namespace: target.namespace, name: target.name, deploymentMode: target.deploymentMode };
}

/** The serving revision for a model at `storageUri`, with the seed's vLLM settings from the spec. */
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

/** Labels every object a promotion creates carries (Kubernetes label values: <= 63 chars). */
export function promotionLabels(
  spec: PromotionSpec,
  workflowId: string,
  stage: string,
): Record<string, string> {
  const clip = (v: string) =>
    v
      .replace(/[^A-Za-z0-9_.-]/g, '_')
      .slice(0, 63)
      .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return {
    'app.kubernetes.io/managed-by': 'qwenops',
    'qwenops.io/workflow-id': clip(workflowId),
    'qwenops.io/stage': clip(stage),
    'qwenops.io/model': clip(spec.model),
  };
}
