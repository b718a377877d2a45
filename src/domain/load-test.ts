import { z } from 'zod';
import type { LoadTestProfile } from './promotion-spec.js';
import { localPathSchema, parseInput } from './validation.js';

// What one load test is asked to do: the target, the load shape, when to stop, which
// prompts, and the SLOs it is judged by. Shared by the CLI, the loadTest workflow (which
// validates at start) and the load generator in src/loadtest. Pure: no I/O here.

/** Latency metrics, as vLLM's serving benchmark defines them (see src/loadtest/request.ts). */
export const LATENCY_METRICS = ['ttft', 'tpot', 'itl', 'e2e'] as const;
export type LatencyMetric = (typeof LATENCY_METRICS)[number];
export const SLO_PERCENTILES = [50, 90, 95, 99] as const;
export type SloPercentile = (typeof SLO_PERCENTILES)[number];

type Capitalised<S extends string> = S extends `${infer H}${infer T}` ? `${Uppercase<H>}${T}` : S;
/** "p99E2eMs", "p50TtftMs", ...: the aggregate percentile of a metric must stay at or under the value. */
export type LatencySloKey = `p${SloPercentile}${Capitalised<LatencyMetric>}Ms`;

export function latencySloKey(percentile: SloPercentile, metric: LatencyMetric): LatencySloKey {
  return `p${percentile}${metric.charAt(0).toUpperCase()}${metric.slice(1)}Ms` as LatencySloKey;
}

export const LATENCY_SLO_KEYS: readonly {
  key: LatencySloKey;
  percentile: SloPercentile;
  metric: LatencyMetric;
}[] = SLO_PERCENTILES.flatMap((percentile) =>
  LATENCY_METRICS.map((metric) => ({ key: latencySloKey(percentile, metric), percentile, metric })),
);

const positiveMs = z.number().positive('must be > 0 ms').max(3_600_000, 'must be <= 3600000 ms (one hour)');

const latencySloShape = Object.fromEntries(
  LATENCY_SLO_KEYS.map(({ key }) => [key, positiveMs.optional()]),
) as {
  [K in LatencySloKey]: z.ZodOptional<typeof positiveMs>;
};

export const loadTestSloSchema = z
  .object({
    ...latencySloShape,
    /** Failed requests (any error class, dropped starts included) in percent of all measured. */
    maxErrorRatePct: z.number().min(0, 'must be >= 0').max(100, 'must be <= 100').optional(),
    /** Output tokens per second over the measured window must reach this. */
    minOutputTokensPerSecond: z.number().positive('must be > 0').optional(),
    /** Requests meeting every per-request latency limit, in percent of all measured. */
    minGoodputPct: z.number().min(0, 'must be >= 0').max(100, 'must be <= 100').optional(),
  })
  .strict();
export type LoadTestSlo = z.output<typeof loadTestSloSchema>;

export const promptSourceSchema = z.discriminatedUnion(
  'kind',
  [
    /** The built-in Chinese dialogue set (src/loadtest/prompts/builtin-zh.ts). */
    z
      .object({
        kind: z.literal('builtin-zh'),
        /** Only prompts whose messages total at most this many characters (short probes). */
        maxChars: z.number().int().min(1, 'must be >= 1').optional(),
      })
      .strict(),
    /** Random Chinese text whose length in tokens is uniform in [minInputTokens, maxInputTokens]. */
    z
      .object({
        kind: z.literal('synthetic'),
        minInputTokens: z.number().int().min(1, 'must be >= 1').max(131_072).default(32),
        maxInputTokens: z.number().int().min(1, 'must be >= 1').max(131_072).default(512),
        count: z.number().int().min(1).max(100_000).default(256),
      })
      .strict()
      .refine((s) => s.minInputTokens <= s.maxInputTokens, {
        message: 'minInputTokens must be <= maxInputTokens',
        path: ['minInputTokens'],
      }),
    /** One request per line: {"messages":[...]} or {"prompt":"..."}, optional "max_tokens". */
    z.object({ kind: z.literal('jsonl'), path: localPathSchema }).strict(),
  ],
  'must be {"kind":"builtin-zh"}, {"kind":"synthetic",...} or {"kind":"jsonl","path":...}',
);
export type PromptSource = z.output<typeof promptSourceSchema>;

const httpUrl = z.string('must be a URL string').refine((value) => {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}, 'must be an absolute http(s) URL, e.g. http://127.0.0.1:8000/v1');

export const MAX_LOAD_CONCURRENCY = 10_000;

/** Open-loop defaults: 10 arrivals per second, Poisson (burstiness 1). */
export const DEFAULT_REQUESTS_PER_SECOND = 10;
export const DEFAULT_BURSTINESS = 1;

const OPEN_LOOP_ONLY =
  'only applies to mode "open": a closed loop keeps `concurrency` requests in flight and sends the next when one finishes, so it has no arrival rate; remove it or set mode "open"';

/**
 * Refuses open-loop settings on a closed loop (the load generator would ignore them, and a
 * user reading the spec would believe the rate was applied). Shared by the load-test request
 * and the promotion spec's load-test profile.
 */
export function openLoopOnly(
  value: { mode: 'open' | 'closed'; requestsPerSecond?: number; burstiness?: number },
  ctx: z.RefinementCtx,
): void {
  if (value.mode !== 'closed') return;
  for (const key of ['requestsPerSecond', 'burstiness'] as const) {
    if (value[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: OPEN_LOOP_ONLY });
  }
}

/** Fills the open-loop defaults on an open loop; a closed loop keeps neither. */
export function withOpenLoopDefaults<
  T extends { mode: 'open' | 'closed'; requestsPerSecond?: number; burstiness?: number },
>(value: T): T {
  return value.mode === 'open'
    ? {
        ...value,
        requestsPerSecond: value.requestsPerSecond ?? DEFAULT_REQUESTS_PER_SECOND,
        burstiness: value.burstiness ?? DEFAULT_BURSTINESS,
      }
    : value;
}

export const loadTestRequestSchema = z
  .object({
    /** OpenAI-compatible server: its root, its /v1 base, or the full /v1/chat/completions URL. */
    url: httpUrl,
    /** Served model name; when absent the first model of GET /v1/models is used. */
    model: z.string().min(1, 'must not be empty').max(256).optional(),
    /** open: arrivals at a rate regardless of answers; closed: a fixed number of requests in flight. */
    mode: z.enum(['open', 'closed'], 'must be "open" or "closed"').default('open'),
    /** Open loop only: mean arrivals per second (default 10). */
    requestsPerSecond: z
      .number('must be a number')
      .positive('must be > 0 (an open-loop test needs arrivals)')
      .max(100_000, 'must be <= 100000')
      .optional(),
    /** Open loop only: gamma shape of the gaps; 1 (default) = Poisson, < 1 burstier, > 1 more regular. */
    burstiness: z.number().positive('must be > 0').max(1000, 'must be <= 1000').optional(),
    /**
     * Closed loop: requests kept in flight (default 16). Open loop: the most in flight at
     * once (default 1000); later arrivals wait in the client queue, their wait counted.
     */
    concurrency: z
      .number('must be a number')
      .int('must be a whole number')
      .min(1, 'must be >= 1')
      .max(
        MAX_LOAD_CONCURRENCY,
        `must be <= ${MAX_LOAD_CONCURRENCY} (each request in flight holds a connection)`,
      )
      .optional(),
    /** Measured duration; the test stops at whichever of duration and maxRequests comes first. */
    durationSeconds: z.number().positive('must be > 0').max(86_400, 'must be <= 86400').optional(),
    maxRequests: z.number().int('must be a whole number').min(1, 'must be >= 1').max(100_000_000).optional(),
    /** Load before the measured window, not counted. */
    warmupSeconds: z.number().min(0, 'must be >= 0').max(3600, 'must be <= 3600').default(0),
    /**
     * Closed loop: start the workers evenly over this long instead of all at once, so the
     * server does not get `concurrency` requests in one burst (counted, unless in warm-up).
     */
    rampUpSeconds: z.number().min(0, 'must be >= 0').max(3600, 'must be <= 3600').default(0),
    maxTokens: z.number().int().min(1, 'must be >= 1').max(131_072).default(128),
    /** vLLM extension: generate exactly maxTokens (what benchmarks use for stable lengths). */
    ignoreEos: z.boolean().default(false),
    temperature: z.number().min(0).max(2).optional(),
    stream: z.boolean().default(true),
    prompts: z
      .preprocess(
        (value) => (value === 'builtin-zh' || value === 'synthetic' ? { kind: value } : value),
        promptSourceSchema,
      )
      .default({ kind: 'builtin-zh' }),
    requestTimeoutSeconds: z.number().positive('must be > 0').max(3600).default(120),
    /** Seeds arrival gaps and prompt order, so two runs send the same sequence. */
    seed: z.number().int().default(1),
    slo: loadTestSloSchema.default({}),
  })
  .strict()
  .superRefine((request, ctx) => openLoopOnly(request, ctx))
  .transform((request) => {
    const filled = withOpenLoopDefaults(request);
    return filled.durationSeconds === undefined && filled.maxRequests === undefined
      ? { ...filled, durationSeconds: 60 }
      : filled;
  });

export type LoadTestRequestInput = z.input<typeof loadTestRequestSchema>;
export type LoadTestRequest = z.output<typeof loadTestRequestSchema>;

/** Validates and fills defaults; throws InputValidationError naming every bad field. */
export function parseLoadTestRequest(input: unknown): LoadTestRequest {
  return parseInput('load test request', loadTestRequestSchema, input);
}

/** Concurrency actually used: the request's, else 16 closed-loop / 1000 open-loop. */
export function effectiveConcurrency(request: Pick<LoadTestRequest, 'mode' | 'concurrency'>): number {
  return request.concurrency ?? (request.mode === 'closed' ? 16 : 1000);
}

/** The load test a promotion's spec asks for, against `url` (the service's traffic split). */
export function loadTestRequestFromProfile(
  profile: LoadTestProfile,
  url: string,
  model?: string,
): LoadTestRequestInput {
  return {
    url,
    model,
    mode: profile.mode,
    // Open-loop settings only on an open loop (the request refuses them on a closed one).
    requestsPerSecond: profile.mode === 'open' ? profile.requestsPerSecond : undefined,
    burstiness: profile.mode === 'open' ? profile.burstiness : undefined,
    // The profile's concurrency is a closed-loop figure; an open loop keeps its wide default cap.
    concurrency: profile.mode === 'closed' ? profile.concurrency : undefined,
    durationSeconds: profile.durationSeconds,
    maxTokens: profile.maxTokens,
    ignoreEos: profile.ignoreEos,
    stream: profile.stream,
    prompts: { kind: profile.prompts },
    slo: {
      p99TtftMs: profile.slo.p99TtftMs,
      p99TpotMs: profile.slo.p99TpotMs,
      maxErrorRatePct: profile.slo.maxErrorRatePct,
    },
  };
}
