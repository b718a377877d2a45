import { type EvaluationResult, evaluationResultSchema } from '../../../domain/job-results.js';
import { fnv1a32 } from '../../../domain/names.js';
import { seededRandom } from '../../../domain/random.js';
import type { ArtifactStore } from '../../../storage/port.js';
import { intArg, JobInputError, requireArg, runSimulatedJob } from './common.js';

// Simulated evaluation of a candidate (usually the AWQ model) against its baseline on one
// GPU type. Numbers follow the production plan's A10 case for a 7B chat model (baseline
// ~14.2 GB and ~420 tok/s; AWQ ~9.6 GB and ~850 tok/s; quality drop 0.3-0.6 %), scaled by
// model size and GPU, deterministic per model with a small variation.

// Relative decode throughput of common inference GPUs, A10 = 1.
const GPU_SPEED: Record<string, number> = {
  A10: 1,
  T4: 0.45,
  L4: 0.75,
  A100: 2.6,
  H100: 4.2,
  H200: 4.6,
  V100: 1.1,
};
const TASKS = { ceval: -0.05, cmmlu: -0.03, 'dialogue-zh': 0.12 };

/** "qwen/Qwen-7B-Chat" -> 7, "Qwen1.5-1.8B" -> 1.8; 7 when the name says nothing. */
function parameterBillions(model: string): number {
  const match = /(\d+(?:\.\d+)?)[bB](?![a-z])/.exec(model);
  return match ? Number(match[1]) : 7;
}

async function isQuantized(
  store: ArtifactStore,
  prefix: string,
  metadata: Record<string, unknown>,
): Promise<boolean> {
  if (metadata.quantization) return true;
  const config = await store
    .getJson<{ quantization_config?: unknown }>(`${prefix}/config.json`)
    .catch(() => undefined);
  return config?.quantization_config !== undefined;
}

await runSimulatedJob(
  'evaluate',
  {
    'baseline-uri': { type: 'string' },
    'candidate-uri': { type: 'string' },
    'result-uri': { type: 'string' },
    samples: { type: 'string' },
    'min-samples': { type: 'string' },
    'gpu-type': { type: 'string' },
    'eval-set': { type: 'string' },
  },
  async (ctx, args) => {
    const baselineUri = requireArg(args, 'baseline-uri');
    const candidateUri = requireArg(args, 'candidate-uri');
    const resultUri = requireArg(args, 'result-uri');
    const samples = intArg(args, 'samples', 200);
    const minSamples = intArg(args, 'min-samples', 0, 0);
    if (samples < minSamples)
      throw new JobInputError(
        `--samples ${samples} is fewer than the ${minSamples} items the quality gate needs`,
      );
    const gpuType = args['gpu-type'] ?? 'A10';
    const evalSet = args['eval-set'] ?? 'qwenops-zh-mini';
    const { store } = ctx;
    const baselinePrefix = store.keyFromUri(baselineUri);
    const candidatePrefix = store.keyFromUri(candidateUri);
    const [baseline, candidate] = await Promise.all([
      store.readManifest(baselinePrefix),
      store.readManifest(candidatePrefix),
    ]);
    if (!baseline) throw new JobInputError(`no manifest under --baseline-uri ${baselineUri}`);
    if (!candidate) throw new JobInputError(`no manifest under --candidate-uri ${candidateUri}`);
    await ctx.step(0.05, `loaded ${evalSet} (${samples} samples) on ${gpuType}`);

    const model = typeof baseline.metadata.model === 'string' ? baseline.metadata.model : baselineUri;
    const random = seededRandom(Number.parseInt(fnv1a32(`${model}|${gpuType}|${evalSet}`), 16));
    const vary = (spread: number) => 1 + (random() * 2 - 1) * spread;
    const scale = parameterBillions(model) / 7;
    const speed = (GPU_SPEED[gpuType.toUpperCase()] ?? 1) / scale ** 0.8;
    const quantized = await isQuantized(store, candidatePrefix, candidate.metadata);

    const baseScore = 0.62 + random() * 0.1;
    const forcedDrop = Number(process.env.QWENOPS_SIM_QUALITY_DROP_PCT ?? Number.NaN);
    const dropPct = Number.isFinite(forcedDrop)
      ? forcedDrop
      : quantized
        ? 0.3 + random() * 0.3
        : random() * 0.05;
    const measure = (uri: string, memoryGb: number, tokensPerSecond: number, drop: number) => {
      const taskScores = Object.fromEntries(
        Object.entries(TASKS).map(([task, offset]) => [
          task,
          Math.min(1, Math.max(0, (baseScore + offset) * (1 - drop / 100))),
        ]),
      );
      return {
        modelUri: uri,
        qualityScore: Math.min(1, Math.max(0, baseScore * (1 - drop / 100))),
        memoryGb: Number(memoryGb.toFixed(2)),
        tokensPerSecond: Number(tokensPerSecond.toFixed(1)),
        taskScores,
      };
    };
    await ctx.step(0.4, 'baseline evaluated (simulated)');
    const baselineMeasure = measure(baselineUri, 14.2 * scale * vary(0.01), 420 * speed * vary(0.02), 0);
    await ctx.step(0.8, 'candidate evaluated (simulated)');
    const candidateMeasure = quantized
      ? measure(candidateUri, 9.6 * scale * vary(0.01), 850 * speed * vary(0.02), dropPct)
      : measure(
          candidateUri,
          baselineMeasure.memoryGb * vary(0.005),
          baselineMeasure.tokensPerSecond * vary(0.01),
          dropPct,
        );

    const result: EvaluationResult = evaluationResultSchema.parse({
      kind: 'evaluate',
      simulated: true,
      evalSet,
      samples,
      gpuType,
      baseline: baselineMeasure,
      candidate: candidateMeasure,
      durationSeconds: ctx.elapsedSeconds(),
    });
    await ctx.step(1, 'report written');
    await store.putJson(store.keyFromUri(resultUri), result);
    ctx.log(
      `evaluate: quality ${result.baseline.qualityScore.toFixed(4)} -> ${result.candidate.qualityScore.toFixed(4)} (-${dropPct.toFixed(2)}%), memory ${result.baseline.memoryGb} -> ${result.candidate.memoryGb} GB, ${result.baseline.tokensPerSecond} -> ${result.candidate.tokensPerSecond} tok/s`,
    );
  },
);
