import { z } from 'zod';

// What GPU Jobs write to the artifact store when they finish (the `--result-uri` argument).
// The Python entrypoints in jobs/ write the same shapes; jobs/schemas/*.json are generated
// from these schemas (scripts/generate-job-schemas.ts) and a test keeps them in sync.

const fileEntry = z.object({
  path: z.string().min(1),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/** Where a Job ran its model work: a GPU (production) or the CPU (the sandbox's real engine). */
const device = z.enum(['cuda', 'cpu']);

export const quantizeResultSchema = z.object({
  kind: z.literal('quantize'),
  /** True when the Job only simulated the work (sandbox); reports say so. */
  simulated: z.boolean(),
  /** awq: activation-aware scaling then int quantization; rtn: plain round-to-nearest. */
  method: z.enum(['awq', 'rtn']),
  bits: z.number().int(),
  groupSize: z.number().int(),
  zeroPoint: z.boolean(),
  kernel: z.string(),
  /** Prefix (URI) the quantized model was written under, with its manifest. */
  outputUri: z.string().min(1),
  files: z.array(fileEntry),
  sizeBytes: z.number().int().min(0),
  originalSizeBytes: z.number().int().min(0),
  durationSeconds: z.number().min(0),
  tool: z.object({ name: z.string(), version: z.string() }),
  device: device.optional(),
  /** Calibration texts the Job really used (AWQ), with their token length. */
  calibration: z
    .object({ samples: z.number().int().min(0), maxSeqLength: z.number().int().positive() })
    .optional(),
  /** Peak memory of the Job process while quantizing, GB (CUDA max allocated, or peak RSS on CPU). */
  peakMemoryGb: z.number().positive().optional(),
});
export type QuantizeResult = z.infer<typeof quantizeResultSchema>;

const count = z.number().int().positive();

const modelMeasurement = z.object({
  modelUri: z.string().min(1),
  /** Mean task score in [0, 1] on the evaluation set (real Jobs: multiple-choice accuracy). */
  qualityScore: z.number().min(0).max(1),
  /** Peak memory while the model was measured, GB (see memoryKind). */
  memoryGb: z.number().positive(),
  /** gpu-allocated: CUDA max allocated; process-rss: peak resident set of the measuring process (CPU). */
  memoryKind: z.enum(['gpu-allocated', 'process-rss']).optional(),
  /** Generation throughput, tokens/s, at the evaluation batch size. */
  tokensPerSecond: z.number().positive(),
  /** Per-task scores, e.g. {"ceval": 0.61, "dialogue-zh": 0.82}. */
  taskScores: z.record(z.string(), z.number().min(0).max(1)),
  /** Perplexity on the held-out text: exp(total NLL / tokens). */
  perplexity: z.object({ value: z.number().positive(), tokens: count, items: count }).optional(),
  /** Multiple-choice accuracy by log-likelihood, with its 95 % Wilson interval. */
  accuracy: z
    .object({
      value: z.number().min(0).max(1),
      low: z.number().min(0).max(1),
      high: z.number().min(0).max(1),
      items: count,
    })
    .optional(),
  /** What the throughput figure was measured on. */
  generation: z
    .object({ prompts: count, tokens: count, seconds: z.number().positive(), batchSize: count })
    .optional(),
});

/**
 * A paired comparison, candidate vs baseline on the same items, as the relative change that
 * hurts (positive = the candidate is worse), in percent, with its confidence interval.
 */
export const pairedDeltaSchema = z.object({
  /** accuracy: relative drop of the multiple-choice accuracy; perplexity: relative increase. */
  metric: z.enum(['accuracy', 'perplexity']),
  estimatePct: z.number(),
  lowPct: z.number(),
  highPct: z.number(),
  confidence: z.number().gt(0).lt(1),
  items: count,
  /** How the interval was computed, e.g. "paired t-interval over items". */
  method: z.string().min(1),
});
export type PairedDelta = z.infer<typeof pairedDeltaSchema>;

export const evaluationResultSchema = z.object({
  kind: z.literal('evaluate'),
  simulated: z.boolean(),
  evalSet: z.string().min(1),
  samples: z.number().int().positive(),
  gpuType: z.string().min(1),
  baseline: modelMeasurement,
  candidate: modelMeasurement,
  durationSeconds: z.number().min(0),
  device: device.optional(),
  /** The quality gate's figure: relative accuracy drop with its paired interval. */
  qualityDelta: pairedDeltaSchema.optional(),
  /** Relative perplexity increase with its paired interval. */
  perplexityDelta: pairedDeltaSchema.optional(),
  tool: z.object({ name: z.string(), version: z.string() }).optional(),
});
export type EvaluationResult = z.infer<typeof evaluationResultSchema>;
export type ModelMeasurement = z.infer<typeof modelMeasurement>;
