import { setTimeout as sleep } from 'node:timers/promises';
import type { AnalysisResult, LatencySummary, RevisionMeasurement } from '../domain/analysis.js';
import { distributionFromBuckets, type LatencyDistribution } from '../domain/latency-distribution.js';
import type { Logger } from '../observability/logger.js';
import { judgeStep } from './checks.js';
import type { AnalysisHooks, CanaryAnalysisRequest, CanaryAnalyzer } from './port.js';
import { errorBreakdown, modelNameProblem, parseCanaryAnalysisRequest, runProbeLoad } from './probe-load.js';
import {
  bucketsFromVector,
  type HistogramQuantile,
  histogramQuantile,
  PrometheusClient,
  PrometheusQueryError,
} from './prometheus-client.js';

// The Prometheus provider: latency as the serving engine itself recorded it, from vLLM's
// histograms, queried over Prometheus's HTTP API per revision. The probe load still runs
// (idle revisions produce no data); the error rate comes from that probe client, because
// vLLM counts only finished requests, not failed HTTP answers.
//
// Metric names are vLLM's current ones; when a series is missing, the older name it
// replaced is tried (vllm:time_per_output_token_seconds -> vllm:inter_token_latency_seconds,
// vllm:gpu_cache_usage_perc -> vllm:kv_cache_usage_perc). The judge ranks the bucket
// counts of each histogram's increase over the window (every request of a bucket tied at its
// bound): E2E, TTFT, and TPOT where vLLM records it per request
// (vllm:request_time_per_output_token_seconds). Inter-token latency is per token, not per
// request (its observations are not independent), so it is shown, not tested. Any query failure after
// `consecutiveErrorLimit` tries in a row, or a series with no data, makes the analysis
// inconclusive, never a pass.

export const VLLM_METRICS = {
  e2e: ['vllm:e2e_request_latency_seconds'],
  ttft: ['vllm:time_to_first_token_seconds'],
  tpot: ['vllm:request_time_per_output_token_seconds'],
  itl: ['vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds'],
  kvCache: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
  success: ['vllm:request_success_total'],
} as const;

export interface PrometheusAnalyzerOptions {
  url: string;
  /** The label that tells revisions apart in the scraped series. */
  revisionLabel?: string;
  /** Extra label matchers added to every selector, e.g. 'namespace="llm-prod"'. */
  extraMatchers?: string;
  /** Prometheus's scrape interval for the serving pods; the analysis waits one after the load. */
  scrapeIntervalSeconds?: number;
  /** Tries per query before the analysis gives up as inconclusive (Argo's default: 4). */
  consecutiveErrorLimit?: number;
  retryDelayMs?: number;
  queryTimeoutMs?: number;
  latencyNoiseFloorMs?: number;
  apiKey?: string;
  logger?: Logger;
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

interface HistogramFigures {
  count: number;
  summary?: LatencySummary;
  p99?: HistogramQuantile;
  metric: string;
  /** The window's bucket counts, for the judge's rank tests. */
  distribution?: LatencyDistribution;
}

interface RevisionFigures {
  e2e?: HistogramFigures;
  ttft?: HistogramFigures;
  tpot?: HistogramFigures;
  itl?: HistogramFigures;
  kvCacheMax?: number;
  aborted?: number;
  problems: string[];
  notes: string[];
}

export class PrometheusCanaryAnalyzer implements CanaryAnalyzer {
  readonly provider = 'prometheus';
  private readonly client: PrometheusClient;
  private readonly revisionLabel: string;

  constructor(private readonly options: PrometheusAnalyzerOptions) {
    this.client = new PrometheusClient(options.url, { timeoutMs: options.queryTimeoutMs ?? 10_000 });
    this.revisionLabel = options.revisionLabel ?? 'revision';
    if (!LABEL_NAME.test(this.revisionLabel)) {
      throw new Error(`revisionLabel ${JSON.stringify(this.revisionLabel)} is not a Prometheus label name`);
    }
  }

  async analyse(input: CanaryAnalysisRequest, hooks: AnalysisHooks = {}): Promise<AnalysisResult> {
    const request = parseCanaryAnalysisRequest(input);
    const startedAt = new Date();
    const loads = await runProbeLoad(request, hooks, { apiKey: this.options.apiKey });

    // One scrape after the last probe answer, so every request is in Prometheus.
    const scrape = this.options.scrapeIntervalSeconds ?? 15;
    hooks.onProgress?.(
      `step ${request.step}: waiting ${scrape + 1}s for Prometheus to scrape the last requests`,
    );
    await sleep((scrape + 1) * 1000, undefined, { signal: hooks.signal });
    const at = new Date();
    // The range covers the load plus a scrape before it (increase() needs a sample before
    // the first request) and the settle time after it.
    const rangeSeconds = Math.ceil((at.getTime() - startedAt.getTime()) / 1000 + scrape);

    const canaryFigures = await this.measure(request.canary.revision, rangeSeconds, at, hooks);
    const stableFigures = request.stable
      ? await this.measure(request.stable.revision, rangeSeconds, at, hooks)
      : undefined;

    const measurement = (
      revision: string,
      figures: RevisionFigures,
      load: { report?: { results: { requests: number; failed: number; errorRatePct: number } } } | undefined,
    ): RevisionMeasurement => ({
      revision,
      // Requests and errors as the probe client saw them: vLLM has no failed-request counter.
      requests: load?.report?.results.requests ?? 0,
      errors: load?.report?.results.failed ?? 0,
      errorRatePct: load?.report?.results.errorRatePct ?? 0,
      latency: figures.e2e?.summary,
      ttft: figures.ttft?.summary,
      distributions: Object.fromEntries(
        (['e2e', 'ttft', 'tpot'] as const)
          .map((m) => [m, figures[m]?.distribution] as const)
          .filter((e) => e[1] !== undefined),
      ),
    });
    const canary = measurement(request.canary.revision, canaryFigures, loads.canary);
    const stable =
      request.stable && stableFigures
        ? measurement(request.stable.revision, stableFigures, loads.stable)
        : undefined;

    const problems = [
      ...[loads.canary.error, loads.stable?.error].filter((e): e is string => e !== undefined),
      ...canaryFigures.problems.map((p) => `canary: ${p}`),
      ...(stableFigures?.problems ?? []).map((p) => `stable: ${p}`),
    ];
    const notes = [
      ...canaryFigures.notes.map((n) => `canary: ${n}`),
      ...(stableFigures?.notes ?? []).map((n) => `stable: ${n}`),
      ...(errorBreakdown(loads.canary.report)
        ? [`canary probe errors: ${errorBreakdown(loads.canary.report)}`]
        : []),
      `Prometheus range ${rangeSeconds}s at ${at.toISOString()}, selector ${this.selector(request.canary.revision)}`,
    ];
    return judgeStep(
      request,
      {
        canary,
        stable,
        source: 'Prometheus vLLM histograms, probe client for errors',
        problems,
        notes,
        invalidMeasurement: modelNameProblem(request.model, loads.canary, loads.stable),
      },
      { ...this.options, provider: this.provider, startedAt },
    );
  }

  private selector(revision: string, extra?: string): string {
    const matchers = [`${this.revisionLabel}=${quote(revision)}`];
    if (this.options.extraMatchers) matchers.push(this.options.extraMatchers);
    if (extra) matchers.push(extra);
    return `{${matchers.join(',')}}`;
  }

  /** A query, retried up to consecutiveErrorLimit times in a row before it counts as failed. */
  private async query(promql: string, at: Date, hooks: AnalysisHooks) {
    const limit = this.options.consecutiveErrorLimit ?? 4;
    let lastError: unknown;
    for (let attempt = 1; attempt <= limit; attempt++) {
      try {
        return await this.client.query(promql, at);
      } catch (error) {
        lastError = error;
        if (!(error instanceof PrometheusQueryError) || attempt === limit) break;
        hooks.onProgress?.(`Prometheus query failed (${attempt}/${limit}): ${error.message}`);
        await sleep(this.options.retryDelayMs ?? 1000, undefined, { signal: hooks.signal });
      }
    }
    throw new PrometheusQueryError(`${(lastError as Error).message} (after ${limit} tries)`);
  }

  /** Queries the first metric name that has data; names later in the list are older vLLM names. */
  private async firstWithData(
    names: readonly string[],
    build: (name: string) => string,
    at: Date,
    hooks: AnalysisHooks,
  ): Promise<{ name: string; samples: { metric: Record<string, string>; value: number }[] } | undefined> {
    for (const name of names) {
      const samples = await this.query(build(name), at, hooks);
      if (samples.length > 0) return { name, samples };
    }
    return undefined;
  }

  private async histogram(
    names: readonly string[],
    revision: string,
    rangeSeconds: number,
    at: Date,
    hooks: AnalysisHooks,
  ): Promise<HistogramFigures | undefined> {
    const sel = this.selector(revision);
    const found = await this.firstWithData(
      names,
      (name) => `sum by (le) (increase(${name}_bucket${sel}[${rangeSeconds}s]))`,
      at,
      hooks,
    );
    if (!found) return undefined;
    const buckets = bucketsFromVector(found.samples);
    const count = buckets[buckets.length - 1]?.count ?? 0;
    if (count <= 0) return { count: 0, metric: found.name };
    const sum = await this.query(`sum(increase(${found.name}_sum${sel}[${rangeSeconds}s]))`, at, hooks);
    const q = (p: number) => histogramQuantile(p, buckets);
    const toMs = (v: HistogramQuantile | undefined) => Math.round((v?.value ?? 0) * 1_000_000) / 1000;
    const p99 = q(0.99);
    // The maximum is only known to be under the bound of the highest occupied bucket.
    const top = buckets.find((b) => b.count >= count) as { le: number };
    const finiteBounds = buckets.filter((b) => Number.isFinite(b.le));
    const maxBound = Number.isFinite(top.le) ? top.le : (finiteBounds[finiteBounds.length - 1]?.le ?? 0);
    return {
      count,
      metric: found.name,
      p99,
      distribution: distributionFromBuckets(buckets),
      summary: {
        count: Math.round(count),
        meanMs: Math.round(((sum[0]?.value ?? 0) / count) * 1_000_000) / 1000,
        p50Ms: toMs(q(0.5)),
        p90Ms: toMs(q(0.9)),
        p95Ms: toMs(q(0.95)),
        p99Ms: toMs(p99),
        maxMs: maxBound * 1000,
      },
    };
  }

  private async measure(
    revision: string,
    rangeSeconds: number,
    at: Date,
    hooks: AnalysisHooks,
  ): Promise<RevisionFigures> {
    const figures: RevisionFigures = { problems: [], notes: [] };
    const sel = this.selector(revision);
    try {
      figures.e2e = await this.histogram(VLLM_METRICS.e2e, revision, rangeSeconds, at, hooks);
      figures.ttft = await this.histogram(VLLM_METRICS.ttft, revision, rangeSeconds, at, hooks);
      figures.tpot = await this.histogram(VLLM_METRICS.tpot, revision, rangeSeconds, at, hooks);
      figures.itl = await this.histogram(VLLM_METRICS.itl, revision, rangeSeconds, at, hooks);
      if (!figures.e2e) {
        figures.problems.push(
          `no data: Prometheus has no ${VLLM_METRICS.e2e[0]} series matching ${sel} (is the revision scraped, with the "${this.revisionLabel}" label?)`,
        );
      } else if (figures.e2e.count <= 0) {
        figures.problems.push(
          `no data: ${figures.e2e.metric}${sel} recorded no request in the last ${rangeSeconds}s`,
        );
      } else {
        figures.notes.push(
          `p99 E2E in histogram bucket (${(figures.e2e.p99?.lower ?? 0) * 1000}, ${(figures.e2e.p99?.upper ?? 0) * 1000}] ms`,
        );
      }
      if (figures.itl?.summary) {
        const older =
          figures.itl.metric !== VLLM_METRICS.itl[0] ? ` (older vLLM name ${figures.itl.metric})` : '';
        figures.notes.push(`p99 inter-token latency ${figures.itl.summary.p99Ms.toFixed(1)} ms${older}`);
      }
      const kv = await this.firstWithData(
        VLLM_METRICS.kvCache,
        (name) => `max(max_over_time(${name}${sel}[${rangeSeconds}s]))`,
        at,
        hooks,
      );
      if (kv?.samples[0]) {
        figures.kvCacheMax = kv.samples[0].value;
        figures.notes.push(
          `peak KV cache usage ${(kv.samples[0].value * 100).toFixed(1)} %${kv.name !== VLLM_METRICS.kvCache[0] ? ` (older vLLM name ${kv.name})` : ''}`,
        );
      }
      const aborted = await this.query(
        `sum(increase(${VLLM_METRICS.success[0]}${this.selector(revision, 'finished_reason="abort"')}[${rangeSeconds}s]))`,
        at,
        hooks,
      );
      if (aborted[0] && aborted[0].value >= 0.5) {
        figures.aborted = aborted[0].value;
        figures.notes.push(`${Math.round(aborted[0].value)} requests finished as "abort" in vLLM`);
      }
    } catch (error) {
      if (hooks.signal?.aborted) throw error;
      figures.problems.push(`provider error: ${(error as Error).message}`);
    }
    return figures;
  }
}
