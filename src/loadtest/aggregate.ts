import hdr from 'hdr-histogram-js';
import type { LatencySummary } from '../domain/analysis.js';
import { type LatencyDistribution, LogGridBinner } from '../domain/latency-distribution.js';
import { LATENCY_SLO_KEYS, type LatencyMetric, type LoadTestSlo } from '../domain/load-test.js';
import { ERROR_CLASSES, type ErrorClass, type RequestRecord } from './request.js';

// Aggregates request records as they finish, in HDR histograms (values in microseconds,
// 4 significant digits: better than 0.1 ms up to a second, 0.01 % beyond; ~1.2 MB each),
// so a test of any length keeps constant memory and percentiles stay exact to that
// resolution. Nothing here keeps per-request records except a few error samples.

const MAX_US = 3_600_000_000;

function newHistogram(digits: 2 | 4 = 4): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_US,
    numberOfSignificantValueDigits: digits,
    autoResize: false,
  });
}

function recordMs(histogram: hdr.Histogram, ms: number): void {
  const us = Math.round(ms * 1000);
  histogram.recordValue(Math.min(MAX_US, Math.max(0, us)));
}

export interface LatencyStats extends LatencySummary {
  minMs: number;
}

function statsOf(histogram: hdr.Histogram): LatencyStats | undefined {
  if (histogram.totalCount === 0) return undefined;
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count: histogram.totalCount,
    meanMs: ms(histogram.mean),
    minMs: ms(histogram.getValueAtPercentile(0)),
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p90Ms: ms(histogram.getValueAtPercentile(90)),
    p95Ms: ms(histogram.getValueAtPercentile(95)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    maxMs: ms(histogram.maxValue),
  };
}

const CDF_PERCENTILES = [...Array.from({ length: 100 }, (_, i) => i), 99.5, 99.9, 99.99, 100];

/** [latency ms, fraction of requests at or under it] points for a CDF chart. */
function cdfOf(histogram: hdr.Histogram): [number, number][] {
  if (histogram.totalCount === 0) return [];
  const points: [number, number][] = [];
  for (const p of CDF_PERCENTILES) {
    const ms = Math.round(histogram.getValueAtPercentile(p)) / 1000;
    const last = points[points.length - 1];
    if (last && last[0] === ms) last[1] = p / 100;
    else points.push([ms, p / 100]);
  }
  return points;
}

export interface TimelineBucket {
  /** Seconds from the start of the measured window to the start of the bucket. */
  startSeconds: number;
  /** Requests whose intended send time falls in the bucket. */
  started: number;
  /** Successful requests that finished in the bucket, and their output tokens. */
  completed: number;
  errors: number;
  outputTokens: number;
  /** Latency of the requests started in the bucket. */
  ttftP50Ms?: number;
  ttftP99Ms?: number;
  e2eP50Ms?: number;
  e2eP99Ms?: number;
}

interface Bucket {
  started: number;
  completed: number;
  errors: number;
  outputTokens: number;
  ttft: hdr.Histogram;
  e2e: hdr.Histogram;
}

export interface GoodputLimits {
  ttftMs?: number;
  tpotMs?: number;
  e2eMs?: number;
}

/**
 * Per-request limits for goodput (vLLM's --goodput): for each of TTFT, TPOT and E2E, the
 * SLO value of its highest percentile given. ITL is not part of vLLM's goodput.
 */
export function goodputLimitsFromSlo(slo: LoadTestSlo): GoodputLimits {
  const limits: GoodputLimits = {};
  for (const metric of ['ttft', 'tpot', 'e2e'] as const) {
    const entries = LATENCY_SLO_KEYS.filter((k) => k.metric === metric && slo[k.key] !== undefined);
    const highest = entries.sort((a, b) => b.percentile - a.percentile)[0];
    if (highest) limits[`${metric}Ms`] = slo[highest.key];
  }
  return limits;
}

export interface ErrorSample {
  errorClass: ErrorClass;
  status?: number;
  message: string;
}

export interface AggregateResult {
  /** Measured requests: sent or dropped during the measured window. */
  requests: number;
  ok: number;
  failed: number;
  errorRatePct: number;
  /** Seconds from the start of the measured window to the last measured completion. */
  durationSeconds: number;
  throughput: {
    requestsPerSecond: number;
    outputTokensPerSecond: number;
    inputTokensPerSecond: number;
    totalTokensPerSecond: number;
  };
  /** Successful requests within every per-request limit (all successful ones when no limit is set). */
  goodput: { limits: GoodputLimits; requests: number; requestsPerSecond: number; pct: number };
  latency: Partial<Record<LatencyMetric | 'queue', LatencyStats>>;
  tokens: {
    input: number;
    output: number;
    meanInput: number;
    meanOutput: number;
    /** How many successful requests' counts came from usage / streamed chunks / a tokenizer estimate / nowhere. */
    sources: Record<RequestRecord['tokenSource'], number>;
  };
  errors: {
    byClass: Partial<Record<ErrorClass, number>>;
    samples: ErrorSample[];
    /** Largest Retry-After seen on 429 / 503 answers. */
    maxRetryAfterSeconds?: number;
  };
  timeline: TimelineBucket[];
  cdf: Partial<Record<LatencyMetric, [number, number][]>>;
  /**
   * Per-request TTFT, TPOT and E2E binned on a 1 % log grid (coarsened to at most 400 bins):
   * what the canary judge's rank tests compare (src/analysis/checks.ts).
   */
  distributions?: Partial<Record<'ttft' | 'tpot' | 'e2e', LatencyDistribution>>;
}

export class LoadAggregator {
  private readonly histograms = {
    ttft: newHistogram(),
    tpot: newHistogram(),
    itl: newHistogram(),
    e2e: newHistogram(),
    queue: newHistogram(),
  };
  private readonly buckets: Bucket[] = [];
  private readonly binners = {
    ttft: new LogGridBinner(),
    tpot: new LogGridBinner(),
    e2e: new LogGridBinner(),
  };
  private readonly errorCounts = new Map<ErrorClass, number>();
  private readonly samples: ErrorSample[] = [];
  private requests = 0;
  private ok = 0;
  private good = 0;
  private inputTokens = 0;
  private outputTokens = 0;
  private lastFinishedMs: number;
  private maxRetryAfter: number | undefined;
  private readonly tokenSources: Record<RequestRecord['tokenSource'], number> = {
    usage: 0,
    chunks: 0,
    estimate: 0,
    none: 0,
  };

  constructor(
    /** Start of the measured window, ms on the run's clock. */
    private readonly windowStartMs: number,
    /** Width of a timeline bucket, seconds. */
    private readonly bucketSeconds: number,
    private readonly goodputLimits: GoodputLimits,
  ) {
    this.lastFinishedMs = windowStartMs;
  }

  private bucketAt(ms: number): Bucket {
    const index = Math.max(0, Math.floor((ms - this.windowStartMs) / 1000 / this.bucketSeconds));
    while (this.buckets.length <= index) {
      this.buckets.push({
        started: 0,
        completed: 0,
        errors: 0,
        outputTokens: 0,
        ttft: newHistogram(2),
        e2e: newHistogram(2),
      });
    }
    return this.buckets[index] as Bucket;
  }

  /** Live figures for progress lines. */
  get counts(): { requests: number; ok: number; failed: number; p99E2eMs?: number } {
    const e2e = this.histograms.e2e;
    return {
      requests: this.requests,
      ok: this.ok,
      failed: this.requests - this.ok,
      p99E2eMs: e2e.totalCount > 0 ? e2e.getValueAtPercentile(99) / 1000 : undefined,
    };
  }

  add(record: RequestRecord): void {
    this.requests += 1;
    this.lastFinishedMs = Math.max(this.lastFinishedMs, record.finishedMs);
    const startBucket = this.bucketAt(record.intendedMs);
    startBucket.started += 1;
    const endBucket = this.bucketAt(record.finishedMs);
    if (record.errorClass !== 'client_overload')
      recordMs(this.histograms.queue, record.sentMs - record.intendedMs);
    if (!record.ok) {
      const errorClass = record.errorClass ?? 'client_error';
      this.errorCounts.set(errorClass, (this.errorCounts.get(errorClass) ?? 0) + 1);
      endBucket.errors += 1;
      if (record.retryAfterSeconds !== undefined) {
        this.maxRetryAfter = Math.max(this.maxRetryAfter ?? 0, record.retryAfterSeconds);
      }
      // Keep the first few of each class: enough to see what went wrong, bounded in size.
      if (this.samples.filter((s) => s.errorClass === errorClass).length < 3) {
        this.samples.push({ errorClass, status: record.status, message: record.error ?? errorClass });
      }
      return;
    }
    this.ok += 1;
    this.tokenSources[record.tokenSource] += 1;
    this.inputTokens += record.inputTokens ?? 0;
    this.outputTokens += record.outputTokens ?? 0;
    endBucket.completed += 1;
    endBucket.outputTokens += record.outputTokens ?? 0;
    if (record.ttftMs !== undefined) {
      recordMs(this.histograms.ttft, record.ttftMs);
      recordMs(startBucket.ttft, record.ttftMs);
    }
    if (record.e2eMs !== undefined) {
      recordMs(this.histograms.e2e, record.e2eMs);
      recordMs(startBucket.e2e, record.e2eMs);
    }
    if (record.tpotMs !== undefined) recordMs(this.histograms.tpot, record.tpotMs);
    if (record.ttftMs !== undefined) this.binners.ttft.add(record.ttftMs);
    if (record.tpotMs !== undefined) this.binners.tpot.add(record.tpotMs);
    if (record.e2eMs !== undefined) this.binners.e2e.add(record.e2eMs);
    for (const gap of record.itlMs) recordMs(this.histograms.itl, gap);
    if (meetsLimits(record, this.goodputLimits)) this.good += 1;
  }

  finish(): AggregateResult {
    const durationSeconds = Math.max(1e-3, (this.lastFinishedMs - this.windowStartMs) / 1000);
    const per = (n: number) => round(n / durationSeconds, 3);
    const failed = this.requests - this.ok;
    const latency: AggregateResult['latency'] = {};
    const cdf: AggregateResult['cdf'] = {};
    for (const metric of ['ttft', 'tpot', 'itl', 'e2e', 'queue'] as const) {
      const stats = statsOf(this.histograms[metric]);
      if (stats) latency[metric] = stats;
      if (metric !== 'queue' && stats) cdf[metric] = cdfOf(this.histograms[metric]);
    }
    const byClass: Partial<Record<ErrorClass, number>> = {};
    for (const errorClass of ERROR_CLASSES) {
      const n = this.errorCounts.get(errorClass);
      if (n) byClass[errorClass] = n;
    }
    const ms = (h: hdr.Histogram, p: number) =>
      h.totalCount > 0 ? Math.round(h.getValueAtPercentile(p)) / 1000 : undefined;
    return {
      requests: this.requests,
      ok: this.ok,
      failed,
      errorRatePct: this.requests > 0 ? round((failed / this.requests) * 100, 3) : 0,
      durationSeconds: round(durationSeconds, 3),
      throughput: {
        requestsPerSecond: per(this.ok),
        outputTokensPerSecond: per(this.outputTokens),
        inputTokensPerSecond: per(this.inputTokens),
        totalTokensPerSecond: per(this.inputTokens + this.outputTokens),
      },
      goodput: {
        limits: this.goodputLimits,
        requests: this.good,
        requestsPerSecond: per(this.good),
        pct: this.requests > 0 ? round((this.good / this.requests) * 100, 3) : 0,
      },
      latency,
      tokens: {
        input: this.inputTokens,
        output: this.outputTokens,
        meanInput: this.ok > 0 ? round(this.inputTokens / this.ok, 2) : 0,
        meanOutput: this.ok > 0 ? round(this.outputTokens / this.ok, 2) : 0,
        sources: { ...this.tokenSources },
      },
      errors: { byClass, samples: [...this.samples], maxRetryAfterSeconds: this.maxRetryAfter },
      timeline: this.buckets.map((b, i) => ({
        startSeconds: round(i * this.bucketSeconds, 3),
        started: b.started,
        completed: b.completed,
        errors: b.errors,
        outputTokens: b.outputTokens,
        ttftP50Ms: ms(b.ttft, 50),
        ttftP99Ms: ms(b.ttft, 99),
        e2eP50Ms: ms(b.e2e, 50),
        e2eP99Ms: ms(b.e2e, 99),
      })),
      cdf,
      distributions: Object.fromEntries(
        (['ttft', 'tpot', 'e2e'] as const)
          .map((m) => [m, this.binners[m].toDistribution()] as const)
          .filter((e) => e[1] !== undefined),
      ),
    };
  }
}

function meetsLimits(record: RequestRecord, limits: GoodputLimits): boolean {
  // Without streaming the first token arrives with the whole answer: TTFT is E2E.
  const ttft = record.ttftMs ?? record.e2eMs;
  if (limits.ttftMs !== undefined && (ttft === undefined || ttft > limits.ttftMs)) return false;
  // A one-token answer has no TPOT; vLLM counts it as meeting the TPOT limit.
  if (limits.tpotMs !== undefined && record.tpotMs !== undefined && record.tpotMs > limits.tpotMs)
    return false;
  if (limits.e2eMs !== undefined && (record.e2eMs === undefined || record.e2eMs > limits.e2eMs)) return false;
  return true;
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
