import { z } from 'zod';

// What GPU Jobs write to the artifact store when they finish (the `--result-uri` argument).
// The Python entrypoints in jobs/ write the same shapes; jobs/schemas/*.json are generated
// from these schemas (scripts/generate-job-schemas.ts) and a test keeps them in sync.

const fileEntry = z.object({
  path: z.string().min(1),
  size: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const quantizeResultSchema = z.object({
  kind: z.literal('quantize'),
  /** True when the Job only simulated the work (sandbox); reports say so. */
  simulated: z.boolean(),
  method: z.literal('awq'),
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
});
export type QuantizeResult = z.infer<typeof quantizeResultSchema>;

const modelMeasurement = z.object({
  modelUri: z.string().min(1),
  /** Mean task score in [0, 1] on the evaluation set. */
  qualityScore: z.number().min(0).max(1),
  /** Peak GPU memory while serving, GB. */
  memoryGb: z.number().positive(),
  /** Generation throughput, tokens/s, at the evaluation batch size. */
  tokensPerSecond: z.number().positive(),
  /** Per-task scores, e.g. {"ceval": 0.61, "dialogue-zh": 0.82}. */
  taskScores: z.record(z.string(), z.number().min(0).max(1)),
});

export const evaluationResultSchema = z.object({
  kind: z.literal('evaluate'),
  simulated: z.boolean(),
  evalSet: z.string().min(1),
  samples: z.number().int().positive(),
  gpuType: z.string().min(1),
  baseline: modelMeasurement,
  candidate: modelMeasurement,
  durationSeconds: z.number().min(0),
});
export type EvaluationResult = z.infer<typeof evaluationResultSchema>;
export type ModelMeasurement = z.infer<typeof modelMeasurement>;
