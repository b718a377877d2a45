import { z } from 'zod';
import { openLoopOnly, withOpenLoopDefaults } from './load-test.js';
import { dnsName, isDnsLabel, slugify } from './names.js';
import { safetyGateSchema } from './safety-gate.js';
import { dnsLabelSchema, modelIdSchema, parseInput, revisionSchema } from './validation.js';

// Every default here is a fact from the production plan: AWQ 4 bit / group 128,
// vLLM with trust-remote-code, 8K context, 0.92 GPU memory, KServe 3..15 replicas on one
// A10, P99 < 300 ms, quality loss < 1 %. A Temporal UI start with only
// {"model":"qwen/Qwen-7B-Chat"} gets all of them.

const seconds = (what: string) =>
  z.number().int(`${what} must be a whole number of seconds`).positive(`${what} must be > 0`);
const percent = z.number().min(0, 'must be >= 0').max(100, 'must be <= 100');

export const hubSchema = z
  .object({
    provider: z.enum(['modelscope', 'local']).default('modelscope'),
    revision: revisionSchema.default('master'),
  })
  .strict();

export const quantizationSchema = z
  .object({
    /** awq: activation-aware (the plan's choice); rtn: plain round-to-nearest, no calibration. */
    method: z.enum(['awq', 'rtn']).default('awq'),
    bits: z.union([z.literal(2), z.literal(4), z.literal(8)], 'must be 2, 4 or 8').default(4),
    groupSize: z.union([z.literal(32), z.literal(64), z.literal(128)], 'must be 32, 64 or 128').default(128),
    zeroPoint: z.boolean().default(true),
    kernel: z.enum(['GEMM', 'GEMV']).default('GEMM'),
    calibrationSamples: z.number().int().min(16, 'must be >= 16').max(4096, 'must be <= 4096').default(128),
  })
  .strict()
  .refine((q) => q.method !== 'awq' || q.bits === 4, {
    message: 'AWQ here supports 4-bit weights only',
    path: ['bits'],
  });

export const qualityGatesSchema = z
  .object({
    /** Largest acceptable relative drop of the evaluation score, candidate vs baseline. */
    maxQualityDropPct: z.number().gt(0, 'must be > 0').max(100, 'must be <= 100').default(1),
    /** Largest acceptable relative perplexity increase on held-out text (when measured). */
    maxPerplexityIncreasePct: z.number().gt(0, 'must be > 0').max(10_000).default(5),
    /** The candidate must fit this much GPU memory (seed: 9.6 GB on a 24 GB A10). */
    maxCandidateMemoryGb: z.number().positive('must be > 0').default(10),
    /** Candidate tokens/s divided by baseline tokens/s must reach this (seed: 420 -> 850). */
    minThroughputGain: z.number().positive('must be > 0').default(1.5),
    evalSamples: z.number().int().min(10, 'must be >= 10').max(100_000).default(200),
  })
  .strict()
  .superRefine((gates, ctx) => {
    const needed = requiredEvalSamples(gates.maxQualityDropPct);
    if (gates.evalSamples < needed) {
      ctx.addIssue({
        code: 'custom',
        path: ['evalSamples'],
        message: `must be >= ${needed} to judge a ${gates.maxQualityDropPct}% quality gate (one item out of n moves the score by 100/n %)`,
      });
    }
  });

/**
 * Items an evaluation needs before a relative quality gate of `maxDropPct` can be judged at
 * all: one item out of n changes a score by 100/n %, and that step must be at most half the
 * gate. (Whether the gate then holds is for the confidence interval to say.)
 */
export function requiredEvalSamples(maxDropPct: number): number {
  return Math.ceil(200 / maxDropPct);
}

export const vllmArgsSchema = z
  .object({
    trustRemoteCode: z.boolean().default(true),
    maxModelLen: z.number().int().min(256, 'must be >= 256').max(1_048_576).default(8192),
    gpuMemoryUtilization: z.number().gt(0, 'must be > 0').max(1, 'must be <= 1').default(0.92),
    enablePrefixCaching: z.boolean().default(true),
    dtype: z.enum(['auto', 'half', 'bfloat16', 'float16']).default('auto'),
    tensorParallelSize: z.number().int().min(1).max(16).default(1),
    extraArgs: z
      .array(z.string().regex(/^--[a-z0-9-]+(=.*)?$/, 'must look like --flag or --flag=value'))
      .default([]),
  })
  .strict();

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name');

export const servingTargetSchema = z
  .object({
    namespace: dnsLabelSchema.default('llm-prod'),
    /** InferenceService name; derived from the model id when absent. */
    name: dnsLabelSchema.optional(),
    deploymentMode: z.enum(['Serverless', 'Standard', 'RawDeployment']).default('Serverless'),
    image: z.string().min(1).default('vllm/vllm-openai:v0.11.0'),
    minReplicas: z.number().int().min(0).max(1000).default(3),
    maxReplicas: z.number().int().min(1).max(1000).default(15),
    gpusPerReplica: z.number().int().min(1).max(16).default(1),
    gpuType: z.string().min(1).default('A10'),
    vllm: vllmArgsSchema.default(vllmArgsSchema.parse({})),
    env: z.record(envName, z.string()).default({ VLLM_ATTENTION_BACKEND: 'FLASH_ATTN' }),
  })
  .strict()
  .refine((s) => s.minReplicas <= s.maxReplicas, {
    message: 'minReplicas must be <= maxReplicas',
    path: ['minReplicas'],
  });

export const sloSchema = z
  .object({
    /** p99 end-to-end latency of the short probe requests, in ms (seed: P99 < 300 ms). */
    p99LatencyMs: z.number().positive('must be > 0').default(300),
    /** Largest acceptable error rate, in percent of requests. */
    maxErrorRatePct: percent.default(1),
    /**
     * Canary p99 may be at most this multiple of stable p99 under the same load: a tail check,
     * failed only when the canary's p99 is over it even at the favourable ends of both p99s'
     * 95 % intervals.
     */
    maxLatencyRatioVsStable: z.number().min(1, 'must be >= 1').default(1.5),
    // The statistical judge (src/analysis/checks.ts). Every field has a default, so specs and
    // workflow histories written before these existed still parse.
    /** Significance level of every test: the judge's false-alarm rate per check. */
    alpha: z.number().gt(0, 'must be > 0').max(0.5, 'must be <= 0.5').default(0.01),
    /**
     * A latency regression fails the canary only when it is significant (one-sided
     * Mann-Whitney p < alpha), the 95 % interval of the canary/stable ratio (Hodges-Lehmann)
     * lies above 1, and the ratio is at least this large. 1.2: above the 5-15 % differences
     * host noise puts between two equal revisions, well under the 1.5x regressions to catch.
     */
    minLatencyEffectRatio: z.number().min(1, 'must be >= 1').max(100, 'must be <= 100').default(1.2),
    /**
     * How the absolute p99 SLO is judged when the canary is over it. "worse-than-stable": a
     * breach only when the canary is also significantly slower than the stable (a stable
     * just as far over says the host or the load is slow, not the canary); without a usable
     * stable, or with a stable within the SLO, the margin rule applies. "margin": a breach
     * only when even the low end of the p99's 95 % interval is over the SLO by more than
     * absoluteMarginPct; over it by less is inconclusive.
     */
    absolutePolicy: z.enum(['worse-than-stable', 'margin']).default('worse-than-stable'),
    /** Margin over the p99 SLO that counts as a breach beyond measurement noise, percent. */
    absoluteMarginPct: z.number().min(0, 'must be >= 0').max(1000, 'must be <= 1000').default(20),
  })
  .strict();

export const probeLoadSchema = z
  .object({
    /**
     * 10 req/s over the default 60 s window gives 600 requests per revision: the smallest
     * window where the exact error tests catch 2 % errors against none at least 95 % of the
     * time (bench/judge.ts, judge_detect_rate_errors_2pct); 300 caught them 40 % of the time.
     */
    requestsPerSecond: z.number().positive('must be > 0').max(10_000, 'must be <= 10000').default(10),
    maxTokens: z.number().int().min(1).max(4096).default(16),
    concurrency: z.number().int().min(1).max(1024, 'must be <= 1024').default(16),
    /**
     * vLLM's ignore_eos: every probe generates exactly maxTokens, so canary and stable are
     * timed on the same output lengths (and a model that stops at once is not an error).
     */
    ignoreEos: z.boolean().default(false),
  })
  .strict();

export const canaryPlanSchema = z
  .object({
    /** Canary traffic percentages; strictly increasing, ending at 100. */
    steps: z
      .array(z.number().int('must be a whole percentage').min(1, 'must be >= 1').max(100, 'must be <= 100'))
      .min(1, 'needs at least one step')
      .default([10, 25, 50, 100])
      .superRefine((steps, ctx) => {
        for (let i = 1; i < steps.length; i++) {
          if ((steps[i] as number) <= (steps[i - 1] as number)) {
            ctx.addIssue({
              code: 'custom',
              path: [i],
              message: `must be greater than the previous step (${steps[i - 1]})`,
            });
          }
        }
        if (steps.length > 0 && steps[steps.length - 1] !== 100) {
          ctx.addIssue({ code: 'custom', path: [steps.length - 1], message: 'the last step must be 100' });
        }
      }),
    analysisWindowSeconds: seconds('analysisWindowSeconds').max(3600, 'must be <= 3600').default(60),
    minSamples: z.number().int().min(1, 'must be >= 1').default(30),
    probe: probeLoadSchema.default(probeLoadSchema.parse({})),
    slo: sloSchema.default(sloSchema.parse({})),
    /** Failed analyses tolerated before rolling back (Argo's default: 0). */
    failureLimit: z.number().int().min(0, 'must be >= 0').max(100).default(0),
    /** How long a traffic shift may take to show in the serving status. */
    shiftTimeoutSeconds: seconds('shiftTimeoutSeconds').default(600),
    /** How long an inconclusive analysis waits for a human before rolling back. */
    inconclusiveDecisionTimeoutSeconds: seconds('inconclusiveDecisionTimeoutSeconds').default(3600),
    /** The longest a paused canary stays paused before it rolls back. */
    maxPauseSeconds: seconds('maxPauseSeconds').default(86_400),
    /**
     * Start a fresh copy of the stable revision (the baseline) beside the canary, with the
     * same traffic weight, and judge the canary against it instead of the long-running
     * stable: both cold, both under the same load. Needs a serving mode that routes to
     * more than two revisions (Standard: `spec.canary[]`; Serverless routes to two).
     */
    baseline: z.boolean().default(false),
  })
  .strict();

export const approvalsSchema = z
  .object({
    beforeCanary: z.boolean().default(true),
    beforePromote: z.boolean().default(true),
    timeoutSeconds: seconds('timeoutSeconds').default(86_400),
  })
  .strict();

export const loadTestProfileSchema = z
  .object({
    enabled: z.boolean().default(true),
    mode: z.enum(['open', 'closed']).default('open'),
    /** Open loop only: mean arrival rate (requests/s), default 10. */
    requestsPerSecond: z.number().positive('must be > 0').max(10_000).optional(),
    /** Closed loop: concurrent requests in flight. */
    concurrency: z.number().int().min(1).max(10_000, 'must be <= 10000').default(16),
    /** Open loop only: gamma shape of the arrival gaps, default 1 (Poisson). */
    burstiness: z.number().positive('must be > 0').optional(),
    durationSeconds: seconds('durationSeconds').max(86_400).default(60),
    maxTokens: z.number().int().min(1).max(32_768).default(128),
    /** vLLM's ignore_eos: generate exactly maxTokens per request (stable lengths, as benchmarks do). */
    ignoreEos: z.boolean().default(false),
    stream: z.boolean().default(true),
    prompts: z.enum(['builtin-zh', 'synthetic']).default('builtin-zh'),
    slo: z
      .object({
        p99TtftMs: z.number().positive().default(300),
        p99TpotMs: z.number().positive().default(100),
        maxErrorRatePct: percent.default(1),
      })
      .strict()
      .default({ p99TtftMs: 300, p99TpotMs: 100, maxErrorRatePct: 1 }),
  })
  .strict()
  // A closed loop has no arrival rate: refused rather than silently ignored.
  .superRefine((profile, ctx) => openLoopOnly(profile, ctx))
  .transform((profile) => withOpenLoopDefaults(profile));

export const executionSchema = z
  .object({
    /** Heartbeat timeout for long activities; a dead worker is noticed this fast. */
    heartbeatTimeoutSeconds: seconds('heartbeatTimeoutSeconds').max(600).default(60),
    /** Deadline for one GPU Job (quantize / evaluate), also its activeDeadlineSeconds. */
    gpuJobTimeoutSeconds: seconds('gpuJobTimeoutSeconds').default(6 * 3600),
    /**
     * How long an activity may wait in its task queue for a worker: a queue nobody polls
     * fails the stage with a ScheduleToStart timeout instead of waiting in silence.
     */
    queueWaitTimeoutSeconds: seconds('queueWaitTimeoutSeconds').max(86_400).default(600),
  })
  .strict();

export const promotionSpecSchema = z
  .object({
    model: modelIdSchema,
    hub: hubSchema.default(hubSchema.parse({})),
    quantization: quantizationSchema.default(quantizationSchema.parse({})),
    qualityGates: qualityGatesSchema.default(qualityGatesSchema.parse({})),
    safetyGate: safetyGateSchema.default(safetyGateSchema.parse({})),
    serving: servingTargetSchema.default(servingTargetSchema.parse({})),
    canary: canaryPlanSchema.default(canaryPlanSchema.parse({})),
    approvals: approvalsSchema.default(approvalsSchema.parse({})),
    loadTest: loadTestProfileSchema.default(loadTestProfileSchema.parse({})),
    execution: executionSchema.default(executionSchema.parse({})),
    /** Who asked; goes into audit records. */
    requestedBy: z.string().min(1).max(128).default('unknown'),
    /** Free text shown in reports. */
    note: z.string().max(2000).optional(),
  })
  .strict()
  .superRefine((spec, ctx) => baselineNeedsStandardMode(spec, ctx));

/**
 * A baseline is a third revision in the traffic split; only KServe's Standard mode
 * (`spec.canary[]`) routes to more than two. Refused here, naming both fields, rather than
 * by the cluster halfway through a rollout.
 */
export function baselineNeedsStandardMode(
  spec: { canary: { baseline: boolean }; serving: { deploymentMode: string } },
  ctx: z.RefinementCtx,
): void {
  if (spec.canary.baseline && spec.serving.deploymentMode !== 'Standard') {
    ctx.addIssue({
      code: 'custom',
      path: ['canary', 'baseline'],
      message: `needs serving.deploymentMode "Standard" (it is "${spec.serving.deploymentMode}": that mode routes to at most two revisions)`,
    });
  }
}

export type PromotionSpecInput = z.input<typeof promotionSpecSchema>;
export type PromotionSpec = z.output<typeof promotionSpecSchema> & {
  serving: z.output<typeof servingTargetSchema> & { name: string };
};
export type CanaryPlan = z.output<typeof canaryPlanSchema>;
export type ServingTarget = PromotionSpec['serving'];
export type QualityGates = z.output<typeof qualityGatesSchema>;
export type LoadTestProfile = z.output<typeof loadTestProfileSchema>;
export type ApprovalPolicy = z.output<typeof approvalsSchema>;
export type ExecutionPolicy = z.output<typeof executionSchema>;
export type Slo = z.output<typeof sloSchema>;

/** The InferenceService name a model gets when the spec does not set one: "qwen/Qwen-7B-Chat" -> "qwen-7b-chat". */
export function defaultServiceName(model: string): string {
  const name = model.split('/').pop() ?? model;
  const slug = slugify(name);
  return slug.length > 0 && slug.length <= 40 && isDnsLabel(slug) ? slug : dnsName([name], 40);
}

/** Validates and fills defaults; throws InputValidationError naming every bad field. */
export function parsePromotionSpec(input: unknown): PromotionSpec {
  const spec = parseInput('promotion spec', promotionSpecSchema, input);
  return { ...spec, serving: { ...spec.serving, name: spec.serving.name ?? defaultServiceName(spec.model) } };
}
