import { z } from 'zod';
import { InputValidationError, issuesFromZod } from '../../domain/validation.js';

// Everything that shapes one simulated revision: its timing model, limits and faults.
// Defaults describe a Qwen-7B-Chat-AWQ replica on one A10 at low batch (the production plan's setup):
// fast enough that a 16-token probe stays under the 300 ms P99 SLO.

export const faultSettingsSchema = z
  .object({
    /** Added to every request's time to first token. */
    extraLatencyMs: z.number().min(0, 'must be >= 0').max(600_000).default(0),
    /** Share of requests answered with `errorStatus` at once. */
    errorRatePct: z.number().min(0, 'must be >= 0').max(100, 'must be <= 100').default(0),
    errorStatus: z
      .union([z.literal(500), z.literal(429), z.literal(503)], 'must be 500, 429 or 503')
      .default(500),
    /** Retry-After (seconds) sent with 429 and 503 answers. */
    retryAfterSeconds: z.number().int().min(0).max(3600).default(1),
    /** Every request started within this many ms (from when the fault is set) waits until then. */
    stallMs: z.number().min(0).max(600_000).default(0),
    /** Share of requests whose connection is destroyed half-way through the answer. */
    resetMidStreamPct: z.number().min(0).max(100, 'must be <= 100').default(0),
    /** Share of requests answered with an HTML 502 page, as a misbehaving gateway does. */
    htmlErrorPct: z.number().min(0).max(100, 'must be <= 100').default(0),
  })
  .strict();
export type FaultSettings = z.output<typeof faultSettingsSchema>;
export type FaultSettingsInput = z.input<typeof faultSettingsSchema>;

export const simulatorOptionsSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port. */
    port: z.number().int().min(0).max(65535).default(0),
    /** Name the OpenAI API serves the chat model under (vLLM --served-model-name). */
    model: z.string().min(1).default('qwen-7b-chat'),
    /** Name /v1/embeddings answers to, as a bge-m3 server would. */
    embeddingModel: z.string().min(1).default('BAAI/bge-m3'),
    /** Revision label reported by /health and /admin/stats (the sandbox sets it). */
    revision: z.string().default(''),
    /** Where the weights of this revision are (informational, shown in /v1/models). */
    storageUri: z.string().default(''),
    ttftMs: z.number().min(0).max(600_000).default(50),
    /** Time per output token after the first. */
    tpotMs: z.number().min(0).max(60_000).default(10),
    /** Extra prefill time per 1,000 prompt tokens. */
    prefillMsPer1kTokens: z.number().min(0).default(20),
    /** Lognormal sigma of the TTFT / TPOT jitter (0 = none). */
    jitterSigma: z.number().min(0).max(2).default(0.2),
    /** Mean output length when the client does not force one (ignore_eos). */
    meanOutputTokens: z.number().int().min(1).default(96),
    /** Requests decoded at once (vLLM --max-num-seqs); the rest wait in a FIFO queue. */
    maxConcurrency: z.number().int().min(1, 'must be >= 1').max(100_000).default(256),
    maxModelLen: z.number().int().min(16).default(8192),
    /** KV cache capacity in tokens, for vllm:kv_cache_usage_perc. */
    kvCacheTokens: z.number().int().min(1).default(131_072),
    seed: z.number().int().default(0),
    /** /health answers 503 ("loading") for this long after start. */
    startupDelayMs: z.number().min(0).max(600_000).default(0),
    embeddingDims: z.number().int().min(8).max(8192).default(1024),
    /** Inputs over this many tokens are refused with 400, as vLLM does. */
    embeddingMaxTokens: z.number().int().min(1).default(8192),
    /**
     * The embedding server's service model: at most this many embedding requests (batches)
     * are in service at once, the rest wait in arrival order (0: no limit, answered at once
     * when the latency below is 0). A batch of n inputs is in service for
     * embeddingBatchLatencyMs + n * embeddingInputLatencyMs, so capacity is a real limit:
     * embeddingMaxConcurrency * n / that time, inputs/s.
     */
    embeddingMaxConcurrency: z.number().int().min(0).max(100_000).default(0),
    embeddingBatchLatencyMs: z.number().min(0).max(600_000).default(0),
    embeddingInputLatencyMs: z.number().min(0).max(60_000).default(0),
    /**
     * Inputs per embedding request over this are refused with TEI's 422 ("batch size N >
     * maximum allowed batch size M", error_type Validation), as --max-client-batch-size
     * does (0: no limit).
     */
    embeddingMaxBatchInputs: z.number().int().min(0).default(0),
    /** Largest request body accepted. */
    maxBodyBytes: z
      .number()
      .int()
      .min(1024)
      .default(32 * 1024 * 1024),
    faults: faultSettingsSchema.prefault({}),
  })
  .strict();
export type SimulatorOptions = z.output<typeof simulatorOptionsSchema>;
export type SimulatorOptionsInput = z.input<typeof simulatorOptionsSchema>;

/** Environment variables a revision's env can carry (the fault-injection contract). */
export const SIMULATOR_ENV = {
  QWENOPS_SIM_TTFT_MS: 'ttftMs',
  QWENOPS_SIM_TPOT_MS: 'tpotMs',
  QWENOPS_SIM_MAX_CONCURRENCY: 'maxConcurrency',
  QWENOPS_SIM_SEED: 'seed',
  QWENOPS_SIM_STARTUP_DELAY_MS: 'startupDelayMs',
  QWENOPS_SIM_MEAN_OUTPUT_TOKENS: 'meanOutputTokens',
  QWENOPS_SIM_JITTER_SIGMA: 'jitterSigma',
  QWENOPS_SIM_MODEL: 'model',
  QWENOPS_SIM_EMBEDDING_MODEL: 'embeddingModel',
  QWENOPS_SIM_EMBEDDING_MAX_TOKENS: 'embeddingMaxTokens',
  QWENOPS_SIM_EMBEDDING_MAX_CONCURRENCY: 'embeddingMaxConcurrency',
  QWENOPS_SIM_EMBEDDING_BATCH_LATENCY_MS: 'embeddingBatchLatencyMs',
  QWENOPS_SIM_EMBEDDING_INPUT_LATENCY_MS: 'embeddingInputLatencyMs',
  QWENOPS_SIM_EMBEDDING_MAX_BATCH_INPUTS: 'embeddingMaxBatchInputs',
  QWENOPS_SIM_MAX_BODY_BYTES: 'maxBodyBytes',
  QWENOPS_SIM_EXTRA_LATENCY_MS: 'faults.extraLatencyMs',
  QWENOPS_SIM_ERROR_RATE_PCT: 'faults.errorRatePct',
  QWENOPS_SIM_ERROR_STATUS: 'faults.errorStatus',
} as const;

const STRING_OPTIONS = new Set(['model', 'embeddingModel']);

/** Raw option values from QWENOPS_SIM_* variables (numbers parsed, not yet validated). */
export function simulatorOptionsFromEnv(env: NodeJS.ProcessEnv): SimulatorOptionsInput {
  const options: Record<string, unknown> = {};
  const faults: Record<string, unknown> = {};
  const issues: { path: string; message: string }[] = [];
  for (const [name, target] of Object.entries(SIMULATOR_ENV)) {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') continue;
    let value: unknown = raw;
    if (!STRING_OPTIONS.has(target)) {
      value = Number(raw);
      if (!Number.isFinite(value)) {
        issues.push({ path: name, message: `must be a number, got ${JSON.stringify(raw)}` });
        continue;
      }
    }
    if (target.startsWith('faults.')) faults[target.slice('faults.'.length)] = value;
    else options[target] = value;
  }
  if (issues.length > 0) throw new InputValidationError('serving simulator environment', issues);
  if (Object.keys(faults).length > 0) options.faults = faults;
  return options as SimulatorOptionsInput;
}

/** Validated options; throws InputValidationError naming each bad field. */
export function parseSimulatorOptions(input: SimulatorOptionsInput): SimulatorOptions {
  const result = simulatorOptionsSchema.safeParse(input);
  if (!result.success)
    throw new InputValidationError('serving simulator options', issuesFromZod(result.error));
  return result.data;
}

export function parseFaultSettings(input: unknown, base: FaultSettings): FaultSettings {
  const result = faultSettingsSchema.partial().safeParse(input);
  if (!result.success) throw new InputValidationError('faults', issuesFromZod(result.error));
  const merged = { ...base };
  for (const [key, value] of Object.entries(result.data)) {
    if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
  }
  return merged;
}
