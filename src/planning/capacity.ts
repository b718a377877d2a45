import { z } from 'zod';
import { servingTargetSchema } from '../domain/promotion-spec.js';
import { vllmEngineFlags } from '../domain/serving-revision.js';
import { InputValidationError, issuesFromZod } from '../domain/validation.js';
import { GPU_TYPES, GPUS, type GpuSpec, type GpuType } from './gpus.js';
import type { ModelShape } from './model-config.js';

// Capacity planning for one model on one GPU type: weight memory from the config's shape,
// KV-cache bytes per token, the tensor-parallel size, KV capacity under vLLM's
// gpu_memory_utilization, concurrency per replica and replicas for a target load. Pure: no
// I/O, every number derived from the inputs and the stated constants below.

export const GiB = 1024 ** 3;

/** The `serving` block of a promotion spec (src/domain/promotion-spec.ts), defaults applied. */
export type PlannedServing = z.output<typeof servingTargetSchema>;

/** vLLM's --gpu-memory-utilization the plan runs with. */
export const GPU_MEMORY_UTILIZATION = 0.92;
/** The plan's GPU utilisation target: a replica is sized to run at 70 % of its slots. */
export const TARGET_UTILIZATION = 0.7;
/** The plan's replica range; a load that needs more raises both ends. */
export const MIN_REPLICAS = 3;
export const MAX_REPLICAS = 15;
/** Tensor-parallel sizes tried (one node: at most 8 GPUs). */
export const TP_SIZES = [1, 2, 4, 8] as const;
/** vLLM's default --max-num-seqs: the most sequences one engine schedules at once. */
export const MAX_NUM_SEQS = 256;
/** AWQ group size (the plan: q_group_size 128). */
export const AWQ_GROUP_SIZE = 128;
/**
 * Per-GPU memory outside weights, KV cache and activations: CUDA graphs, cuBLAS/NCCL
 * workspaces, allocator slack. An estimate (vLLM's own profiler measures it at startup).
 */
export const FIXED_RESERVE_BYTES = 1 * GiB;

export const planInputSchema = z
  .object({
    model: z.string().min(1, 'is required'),
    gpu: z.enum(GPU_TYPES, `must be one of ${GPU_TYPES.join(', ')}`),
    quant: z.enum(['awq', 'none'], 'must be awq or none').default('none'),
    maxModelLen: z
      .number('must be a number')
      .int('must be a whole number')
      .min(256, 'must be >= 256')
      .max(1_048_576, 'must be <= 1048576')
      .default(8192),
    qps: z.number('must be a number').positive('must be > 0').max(1_000_000).default(10),
    p99Ms: z.number('must be a number').positive('must be > 0').max(600_000).default(300),
  })
  .strict();
export type PlanInput = z.input<typeof planInputSchema>;
export type PlanOptions = z.output<typeof planInputSchema>;

/** The CLI flag each input field comes from, so errors name what the user typed. */
export const PLAN_FLAGS: Record<keyof PlanOptions, string> = {
  model: '--model',
  gpu: '--gpu',
  quant: '--quant',
  maxModelLen: '--max-model-len',
  qps: '--qps',
  p99Ms: '--p99-ms',
};

export function parsePlanInput(input: unknown): PlanOptions {
  const parsed = planInputSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issues = issuesFromZod(parsed.error).map((issue) => ({
    ...issue,
    path: PLAN_FLAGS[issue.path as keyof PlanOptions] ?? issue.path,
  }));
  throw new InputValidationError('plan options', issues);
}

/** The model does not fit on any tried number of the chosen GPUs. */
export class PlanDoesNotFitError extends Error {
  override readonly name = 'PlanDoesNotFitError';
  constructor(
    readonly model: string,
    readonly gpu: GpuType,
    readonly neededGiB: number,
    detail: string,
  ) {
    super(
      `${model} does not fit on ${TP_SIZES[TP_SIZES.length - 1]} or fewer ${gpu} GPUs: it needs ${neededGiB.toFixed(1)} GiB (weights, runtime reserve and the KV cache of one sequence); ${detail}`,
    );
  }
}

export interface ParameterCounts {
  embedding: number;
  lmHead: number;
  /** Linear weights of the decoder blocks (attention, MLP, experts): what AWQ quantizes. */
  blockLinear: number;
  /** Biases, norms, MoE routers: kept in 16 bits. */
  other: number;
  total: number;
  /** Parameters one token passes through (MoE: the routed experts only). */
  active: number;
}

export function countParameters(m: ModelShape): ParameterCounts {
  const q = m.attentionHeads * m.headDim;
  const kv = m.kvHeads * m.headDim;
  const attention = m.hiddenSize * q + 2 * m.hiddenSize * kv + q * m.hiddenSize;
  const attentionBias = m.qkvBias ? q + 2 * kv : 0;
  const norms = 2 * m.hiddenSize;
  const dense = 3 * m.hiddenSize * m.intermediateSize;
  const moe = m.moe;
  const sparseLayers = moe?.sparseLayers ?? 0;
  const denseLayers = m.layers - sparseLayers;
  let sparseLinear = 0;
  let sparseOther = 0;
  let sparseActive = 0;
  if (moe) {
    const expert = 3 * m.hiddenSize * moe.expertIntermediateSize;
    const shared = 3 * m.hiddenSize * moe.sharedExpertIntermediateSize;
    sparseLinear = moe.experts * expert + shared;
    sparseOther = m.hiddenSize * moe.experts + (moe.sharedExpertIntermediateSize > 0 ? m.hiddenSize : 0);
    sparseActive = moe.expertsPerToken * expert + shared + sparseOther;
  }
  const embedding = m.vocabSize * m.hiddenSize;
  const lmHead = m.tiedEmbeddings ? 0 : m.vocabSize * m.hiddenSize;
  const blockLinear = m.layers * attention + denseLayers * dense + sparseLayers * sparseLinear;
  const other = m.layers * (attentionBias + norms) + sparseLayers * sparseOther + m.hiddenSize;
  const total = embedding + lmHead + blockLinear + other;
  const active =
    embedding +
    lmHead +
    m.layers * (attention + attentionBias + norms) +
    denseLayers * dense +
    sparseLayers * sparseActive +
    m.hiddenSize;
  return { embedding, lmHead, blockLinear, other, total, active };
}

/** Bytes per quantized weight: 4-bit values plus, per group of 128, a 16-bit scale and a 4-bit zero. */
export const AWQ_BYTES_PER_WEIGHT = 0.5 + (2 + 0.5) / AWQ_GROUP_SIZE;

export function weightBytes(counts: ParameterCounts, quant: 'awq' | 'none'): number {
  const sixteenBit = counts.embedding + counts.lmHead + counts.other;
  const linear = quant === 'awq' ? counts.blockLinear * AWQ_BYTES_PER_WEIGHT : counts.blockLinear * 2;
  return sixteenBit * 2 + linear;
}

/** KV-cache bytes per token for the whole model: 2 (K and V) x layers x KV heads x head dim x 2 bytes. */
export function kvBytesPerToken(m: ModelShape): number {
  return 2 * m.layers * m.kvHeads * m.headDim * 2;
}

/** Why a tensor-parallel size cannot shard this model, or undefined when it can. */
export function tensorParallelProblem(m: ModelShape, tp: number, quant: 'awq' | 'none'): string | undefined {
  if (m.attentionHeads % tp !== 0) return `${m.attentionHeads} attention heads do not divide by ${tp}`;
  if (m.kvHeads % tp !== 0 && tp % m.kvHeads !== 0)
    return `${m.kvHeads} KV heads neither divide by nor into ${tp}`;
  const widths = [m.intermediateSize];
  if (m.moe) widths.push(m.moe.expertIntermediateSize, m.moe.sharedExpertIntermediateSize);
  for (const width of widths.filter((w) => w > 0)) {
    if (width % tp !== 0) return `MLP width ${width} does not divide by ${tp}`;
    if (quant === 'awq' && (width / tp) % AWQ_GROUP_SIZE !== 0)
      return `MLP width ${width} / ${tp} is not a multiple of the AWQ group size ${AWQ_GROUP_SIZE}`;
  }
  return undefined;
}

/**
 * Tokens vLLM's startup profiling run puts through the model at once (its default
 * max_num_batched_tokens for the OpenAI server: 8192 on cards of 70 GiB or more, 2048 below;
 * from memory of vLLM's V1 defaults).
 */
export function profileTokens(gpu: GpuSpec): number {
  return gpu.memoryMiB >= 70 * 1024 ? 8192 : 2048;
}

/**
 * Per-GPU runtime reserve: the fixed part, the activations of the profiling forward pass
 * (hidden states and the widest MLP output of that many tokens, in 16 bits) and the
 * sampler's fp32 logits for MAX_NUM_SEQS sequences.
 */
export function reserveBytes(m: ModelShape, gpu: GpuSpec, tp: number): number {
  const widest = Math.max(
    m.intermediateSize,
    m.moe ? m.moe.expertsPerToken * m.moe.expertIntermediateSize + m.moe.sharedExpertIntermediateSize : 0,
  );
  const activations = profileTokens(gpu) * 2 * (4 * m.hiddenSize + (3 * widest) / tp);
  const logits = MAX_NUM_SEQS * m.vocabSize * 4;
  return FIXED_RESERVE_BYTES + activations + logits;
}

export interface TensorParallelOption {
  tensorParallelSize: number;
  weightsPerGpuGiB: number;
  reservePerGpuGiB: number;
  kvCachePerGpuGiB: number;
  /** Tokens the replica's KV cache holds (the same on every GPU of the replica). */
  kvCacheTokens: number;
  /** Sequences of max-model-len the KV cache holds at once (capped by vLLM's max-num-seqs). */
  concurrency: number;
  replicasForLoad: number;
  minReplicas: number;
  maxReplicas: number;
  /** GPUs the minimum replica count takes. */
  gpus: number;
}

export interface CapacityPlan {
  model: string;
  gpu: GpuType;
  quant: 'awq' | 'none';
  maxModelLen: number;
  qps: number;
  p99Ms: number;
  parameters: { totalBillions: number; activeBillions: number };
  weightsGiB: number;
  weightsGB: number;
  kvBytesPerToken: number;
  /** Weights plus the runtime reserve of every GPU of the replica (no KV cache). */
  staticGiB: number;
  /** staticGiB plus the KV cache of one max-model-len sequence: the least the replica needs to start. */
  minimumGiB: number;
  gpuMemoryGiB: number;
  gpuMemoryUtilization: number;
  tensorParallelSize: number;
  /** The smallest tensor-parallel size that fits; the chosen one may be larger when it needs fewer GPUs for the load. */
  minimumTensorParallelSize: number;
  chosen: TensorParallelOption;
  options: TensorParallelOption[];
  throughputModel: string;
  vllmArgs: string[];
  serving: PlannedServing;
  warnings: string[];
}

const gib = (bytes: number) => bytes / GiB;
const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

export const THROUGHPUT_MODEL =
  "Little's law with the p99 target as the latency: requests in flight = qps x p99; a replica " +
  `serves min(concurrency at max-model-len, ${MAX_NUM_SEQS}) at once and is sized to run at ` +
  `${TARGET_UTILIZATION * 100} % of that (the plan's GPU utilisation target); minReplicas = max(${MIN_REPLICAS}, ` +
  `replicas for the load), maxReplicas = max(${MAX_REPLICAS}, 2 x replicas for the load). ` +
  'Not modelled: prefill/decode speed, so whether a request meets the p99 at all is for the load test to show.';

/** Plans capacity for a parsed model shape. `modelId` is what the plan and the vLLM args name. */
export function planCapacity(modelId: string, shape: ModelShape, input: PlanInput): CapacityPlan {
  const options = parsePlanInput({ ...input, model: modelId });
  const gpu = GPUS[options.gpu];
  const counts = countParameters(shape);
  const weights = weightBytes(counts, options.quant);
  const perToken = kvBytesPerToken(shape);
  const usablePerGpu = gpu.memoryMiB * 1024 ** 2 * GPU_MEMORY_UTILIZATION;
  const inFlight = options.qps * (options.p99Ms / 1000);
  const warnings: string[] = [];
  if (shape.maxContext !== undefined && options.maxModelLen > shape.maxContext)
    warnings.push(
      `--max-model-len ${options.maxModelLen} is over the model's configured context (${shape.maxContext}); vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`,
    );
  if (options.quant === 'awq' && !gpu.bf16)
    warnings.push(
      `${gpu.type}: AWQ kernels run on it (compute capability 7.5) but not the faster Marlin ones`,
    );

  const fitting: TensorParallelOption[] = [];
  const rejected: string[] = [];
  let smallestNeed = Number.POSITIVE_INFINITY;
  for (const tp of TP_SIZES) {
    const problem = tensorParallelProblem(shape, tp, options.quant);
    if (problem) {
      rejected.push(`TP=${tp}: ${problem}`);
      continue;
    }
    const weightsPerGpu = weights / tp;
    const reserve = reserveBytes(shape, gpu, tp);
    const kvPerTokenPerGpu = 2 * shape.layers * Math.max(1, shape.kvHeads / tp) * shape.headDim * 2;
    const kvPerGpu = usablePerGpu - weightsPerGpu - reserve;
    const needPerGpu = weightsPerGpu + reserve + kvPerTokenPerGpu * options.maxModelLen;
    smallestNeed = Math.min(smallestNeed, (needPerGpu * tp) / GiB);
    const kvTokens = Math.max(0, Math.floor(kvPerGpu / kvPerTokenPerGpu));
    if (kvTokens < options.maxModelLen) {
      rejected.push(
        `TP=${tp}: ${gib(needPerGpu).toFixed(1)} GiB per GPU needed, ${gib(usablePerGpu).toFixed(1)} GiB usable at ${GPU_MEMORY_UTILIZATION}`,
      );
      continue;
    }
    const concurrency = Math.min(MAX_NUM_SEQS, Math.floor(kvTokens / options.maxModelLen));
    const replicasForLoad = Math.max(1, Math.ceil(inFlight / (concurrency * TARGET_UTILIZATION)));
    const minReplicas = Math.max(MIN_REPLICAS, replicasForLoad);
    fitting.push({
      tensorParallelSize: tp,
      weightsPerGpuGiB: round(gib(weightsPerGpu)),
      reservePerGpuGiB: round(gib(reserve)),
      kvCachePerGpuGiB: round(gib(kvPerGpu)),
      kvCacheTokens: kvTokens,
      concurrency,
      replicasForLoad,
      minReplicas,
      maxReplicas: Math.max(MAX_REPLICAS, 2 * replicasForLoad),
      gpus: minReplicas * tp,
    });
  }
  const [first] = fitting;
  if (!first) {
    throw new PlanDoesNotFitError(modelId, gpu.type, smallestNeed, rejected.join('; '));
  }
  // Fewest GPUs for the load; on a tie the smaller TP (less cross-GPU traffic per token).
  const chosen = fitting.reduce((best, o) => (o.gpus < best.gpus ? o : best), first);
  const tp = chosen.tensorParallelSize;
  const dtype = options.quant === 'awq' || !gpu.bf16 ? 'half' : 'bfloat16';
  const serving = servingTargetSchema.parse({
    minReplicas: chosen.minReplicas,
    maxReplicas: chosen.maxReplicas,
    gpusPerReplica: tp,
    gpuType: gpu.type,
    vllm: {
      trustRemoteCode: true,
      maxModelLen: options.maxModelLen,
      gpuMemoryUtilization: GPU_MEMORY_UTILIZATION,
      enablePrefixCaching: true,
      dtype,
      tensorParallelSize: tp,
      extraArgs: [],
    },
    // FlashAttention needs Ampere or newer; on a T4 vLLM picks its own backend.
    env: gpu.flashAttention ? { VLLM_ATTENTION_BACKEND: 'FLASH_ATTN' } : {},
  });
  const staticBytes = weights + tp * reserveBytes(shape, gpu, tp);
  return {
    model: modelId,
    gpu: gpu.type,
    quant: options.quant,
    maxModelLen: options.maxModelLen,
    qps: options.qps,
    p99Ms: options.p99Ms,
    parameters: {
      totalBillions: round(counts.total / 1e9, 3),
      activeBillions: round(counts.active / 1e9, 3),
    },
    weightsGiB: round(gib(weights)),
    weightsGB: round(weights / 1e9),
    kvBytesPerToken: perToken,
    staticGiB: round(gib(staticBytes)),
    minimumGiB: round(gib(staticBytes + perToken * options.maxModelLen)),
    gpuMemoryGiB: round(gpu.memoryMiB / 1024),
    gpuMemoryUtilization: GPU_MEMORY_UTILIZATION,
    tensorParallelSize: tp,
    minimumTensorParallelSize: first.tensorParallelSize,
    chosen,
    options: fitting,
    throughputModel: THROUGHPUT_MODEL,
    vllmArgs: vllmArgsFor(modelId, serving),
    serving,
    warnings,
  };
}

/** The vLLM OpenAI server flags the serving spec implies (same flags the cluster adapter writes). */
export function vllmArgsFor(modelId: string, serving: PlannedServing): string[] {
  return [`--model=${modelId}`, ...vllmEngineFlags(serving.vllm)];
}

/** The human rendering of a plan. */
export function renderPlan(plan: CapacityPlan): string {
  const c = plan.chosen;
  const lines = [
    `model        ${plan.model} (${plan.parameters.totalBillions}B parameters, ${plan.parameters.activeBillions}B active per token)`,
    `gpu          ${plan.gpu} (${plan.gpuMemoryGiB} GiB, ${plan.gpuMemoryUtilization} for vLLM)`,
    `weights      ${plan.weightsGiB} GiB (${plan.weightsGB} GB), quant ${plan.quant}`,
    `kv cache     ${plan.kvBytesPerToken} bytes/token (${((plan.kvBytesPerToken * plan.maxModelLen) / GiB).toFixed(2)} GiB per ${plan.maxModelLen}-token sequence)`,
    `memory       ${plan.staticGiB} GiB weights + runtime reserve; ${plan.minimumGiB} GiB with one full sequence`,
    `tensor par.  ${plan.tensorParallelSize} (smallest that fits: ${plan.minimumTensorParallelSize})`,
    `per GPU      weights ${c.weightsPerGpuGiB} GiB, reserve ${c.reservePerGpuGiB} GiB, KV cache ${c.kvCachePerGpuGiB} GiB`,
    `per replica  ${c.kvCacheTokens} KV tokens, ${c.concurrency} concurrent sequences at ${plan.maxModelLen} tokens`,
    `load         ${plan.qps} req/s at p99 ${plan.p99Ms} ms -> ${c.replicasForLoad} replica(s); serving ${c.minReplicas}-${c.maxReplicas} replicas x ${plan.tensorParallelSize} ${plan.gpu} (${c.gpus} GPUs at the minimum)`,
    '',
    'options (TP, concurrency, replicas, GPUs):',
    ...plan.options.map(
      (o) => `  TP=${o.tensorParallelSize}  ${o.concurrency} seqs  ${o.minReplicas} replicas  ${o.gpus} GPUs`,
    ),
    '',
    'vllm args:',
    `  ${plan.vllmArgs.join(' \\\n    ')}`,
    '',
    'serving:',
    ...JSON.stringify(plan.serving, null, 2)
      .split('\n')
      .map((l) => `  ${l}`),
    '',
    `throughput model: ${plan.throughputModel}`,
    ...plan.warnings.map((w) => `warning: ${w}`),
  ];
  return lines.join('\n');
}
