import { z } from 'zod';
import type { LatencySummary, RevisionMeasurement } from '../domain/analysis.js';
import { sloSchema } from '../domain/promotion-spec.js';
import { parseInput } from '../domain/validation.js';
import type { LatencyStats } from '../loadtest/aggregate.js';
import { LoadTargetError } from '../loadtest/endpoint.js';
import type { LoadTestReport } from '../loadtest/report.js';
import { LoadTestCancelledError, runLoadTest } from '../loadtest/runner.js';
import type { AnalysisHooks, CanaryAnalysisRequest, RevisionEndpoint } from './port.js';

// The load every provider puts on the revisions during an analysis window: the same
// open-loop schedule (same seed, same prompts) against the canary and the stable revision
// at once, through their own endpoints. Idle revisions produce no data, so Prometheus
// analysis needs this load as much as the probe provider does.

const endpointSchema = z
  .object({
    revision: z.string().min(1, 'must not be empty'),
    baseUrl: z.string().min(1, 'must not be empty'),
  })
  .strict();

export const canaryAnalysisRequestSchema = z
  .object({
    step: z.number().int().min(0, 'must be >= 0'),
    canaryPercent: z.number().min(0).max(100, 'must be <= 100'),
    model: z.string().min(1, 'must not be empty'),
    canary: endpointSchema,
    stable: endpointSchema.optional(),
    comparison: z.enum(['stable', 'baseline']).optional(),
    windowSeconds: z.number().positive('must be > 0').max(3600, 'must be <= 3600'),
    minSamples: z.number().int().min(1, 'must be >= 1'),
    probe: z
      .object({
        requestsPerSecond: z.number().positive('must be > 0').max(10_000, 'must be <= 10000'),
        maxTokens: z.number().int().min(1).max(4096),
        concurrency: z.number().int().min(1, 'must be >= 1').max(10_000, 'must be <= 10000'),
        ignoreEos: z.boolean().optional(),
      })
      .strict(),
    slo: sloSchema,
  })
  .strict();

/** Validates a request; throws InputValidationError naming each bad field. */
export function parseCanaryAnalysisRequest(input: unknown): CanaryAnalysisRequest {
  return parseInput('canary analysis request', canaryAnalysisRequestSchema, input);
}

/** Short prompts only: the SLO is about short probe requests, not long-document prefill. */
const PROBE_PROMPT_MAX_CHARS = 160;

/** Warm-up before each measured window: a quarter of it, between 0.5 and 5 seconds. */
export function probeWarmupSeconds(windowSeconds: number): number {
  return Math.min(5, Math.max(0.5, windowSeconds / 4));
}

export interface ProbeLoadResult {
  revision: string;
  report?: LoadTestReport;
  /** Why no report: the endpoint could not be reached or the load failed to run. */
  error?: string;
}

export async function runProbeLoad(
  request: CanaryAnalysisRequest,
  hooks: AnalysisHooks,
  options: { apiKey?: string; requestTimeoutSeconds?: number },
): Promise<{ canary: ProbeLoadResult; stable?: ProbeLoadResult }> {
  const progress = new Map<string, string>();
  const load = async (endpoint: RevisionEndpoint, role: string): Promise<ProbeLoadResult> => {
    try {
      const report = await runLoadTest(
        {
          url: endpoint.baseUrl,
          model: request.model,
          mode: 'open',
          requestsPerSecond: request.probe.requestsPerSecond,
          concurrency: request.probe.concurrency,
          durationSeconds: request.windowSeconds,
          // A revision that just started (cold caches, fresh connections through the split)
          // answers its first requests slowly; those belong to no window.
          warmupSeconds: probeWarmupSeconds(request.windowSeconds),
          maxTokens: request.probe.maxTokens,
          ignoreEos: request.probe.ignoreEos ?? false,
          stream: true,
          prompts: { kind: 'builtin-zh', maxChars: PROBE_PROMPT_MAX_CHARS },
          // Same seed for both revisions: the same arrivals and prompts hit each.
          seed: 1000 + request.step,
          requestTimeoutSeconds: options.requestTimeoutSeconds ?? Math.max(30, request.windowSeconds),
        },
        {
          signal: hooks.signal,
          apiKey: options.apiKey,
          progressIntervalMs: 2000,
          onProgress: (p) => {
            progress.set(role, `${role} ${p.sent} sent, ${p.ok} ok, ${p.failed} failed`);
            hooks.onProgress?.(`step ${request.step}: ${[...progress.values()].join('; ')}`);
          },
        },
      );
      return { revision: endpoint.revision, report };
    } catch (error) {
      if (error instanceof LoadTestCancelledError) throw error;
      if (error instanceof LoadTargetError)
        return { revision: endpoint.revision, error: `${role}: ${error.message}` };
      return {
        revision: endpoint.revision,
        error: `${role}: probe load failed: ${(error as Error).message}`,
      };
    }
  };
  const [canary, stable] = await Promise.all([
    load(request.canary, 'canary'),
    request.stable ? load(request.stable, 'stable') : Promise.resolve(undefined),
  ]);
  return { canary, stable };
}

function summary(stats: LatencyStats | undefined): LatencySummary | undefined {
  if (!stats) return undefined;
  const { count, meanMs, p50Ms, p90Ms, p95Ms, p99Ms, maxMs } = stats;
  return { count, meanMs, p50Ms, p90Ms, p95Ms, p99Ms, maxMs };
}

/**
 * A model name neither revision serves is a configuration mistake, not a verdict on the
 * canary: every probe would fail on both sides. Returned as a measurement problem.
 */
export function modelNameProblem(
  model: string,
  canary: ProbeLoadResult,
  stable: ProbeLoadResult | undefined,
): string | undefined {
  if (!stable?.report || !canary.report) return undefined;
  if (canary.report.target.modelListed === false && stable.report.target.modelListed === false) {
    return `model ${JSON.stringify(model)} is served by neither revision (GET /v1/models): check the served model name`;
  }
  return undefined;
}

/** What the probe client measured on one revision. */
export function measurementFromReport(
  revision: string,
  report: LoadTestReport | undefined,
): RevisionMeasurement {
  if (!report) return { revision, requests: 0, errors: 0, errorRatePct: 0 };
  const r = report.results;
  return {
    revision,
    requests: r.requests,
    errors: r.failed,
    errorRatePct: r.errorRatePct,
    latency: summary(r.latency.e2e),
    ttft: summary(r.latency.ttft),
    ...(r.distributions && Object.keys(r.distributions).length > 0 ? { distributions: r.distributions } : {}),
  };
}

/** The headline error classes of a report, e.g. "http_5xx 12, connection_reset 3". */
export function errorBreakdown(report: LoadTestReport | undefined): string | undefined {
  if (!report) return undefined;
  const entries = Object.entries(report.results.errors.byClass);
  return entries.length > 0 ? entries.map(([k, v]) => `${k} ${v}`).join(', ') : undefined;
}
