// Canary analysis outcomes. Shared by workflows (pure decisions), activities and the
// analysis providers in src/analysis.

import type { LatencyDistribution } from './latency-distribution.js';
import type { Slo } from './promotion-spec.js';

export type { LatencyDistribution } from './latency-distribution.js';

/**
 * pass / fail are decisions about the canary. inconclusive means the measurement itself
 * could not decide (provider error, no data, too few samples): it is never a breach and
 * never a pass, and it pauses the rollout for a human.
 */
export type Verdict = 'pass' | 'fail' | 'inconclusive';

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** The summary of exact latency samples (nearest-rank percentiles); undefined when empty. */
export function latencySummaryOf(values: readonly number[]): LatencySummary | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  return {
    count: sorted.length,
    meanMs: sorted.reduce((sum, v) => sum + v, 0) / sorted.length,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p95Ms: at(0.95),
    p99Ms: at(0.99),
    maxMs: sorted[sorted.length - 1] as number,
  };
}

/** What one revision did during an analysis window. */
export interface RevisionMeasurement {
  revision: string;
  requests: number;
  errors: number;
  errorRatePct: number;
  /** End-to-end latency of successful requests. */
  latency?: LatencySummary;
  /** Time to first token of successful streaming requests. */
  ttft?: LatencySummary;
  /**
   * The binned latency samples the statistical judge compares (bounded: at most a few hundred
   * bins each), kept with the analysis so it can be judged again (`qwenops analysis rejudge`).
   */
  distributions?: Partial<Record<LatencyMetricName, LatencyDistribution>>;
}

/** Latency metrics the judge compares: end to end, time to first token, time per output token. */
export type LatencyMetricName = 'e2e' | 'ttft' | 'tpot';

/** The statistics behind one check's verdict (shown by the status query, the report and the CLI). */
export interface CheckStatistics {
  /** e.g. "mann-whitney-u", "binomial+fisher-exact", "quantile-interval". */
  test: string;
  /** Significance level the verdict used. */
  alpha: number;
  /** Observations: canary (n1) and stable (n2). */
  n1: number;
  n2?: number;
  /** Mann-Whitney U of the canary (pairs where the canary is slower, ties counting 1/2). */
  u?: number;
  /** One-sided p-value of "the canary is worse". */
  p?: number;
  /** Two-sided p-value of "the canary differs". */
  pTwoSided?: number;
  /** Effect size with its confidence interval (e.g. Hodges-Lehmann latency ratio canary/stable). */
  effect?: { measure: string; estimate: number; lower?: number; upper?: number; level?: number };
  /** Errors: counts, and the exact tests' p-values against the SLO rate and against the stable. */
  errors1?: number;
  errors2?: number;
  pVsSlo?: number;
  pVsStable?: number;
}

export interface AnalysisCheck {
  metric: string;
  /** The observed value, absent when it could not be measured. */
  value?: number;
  threshold: number;
  comparator: '<=' | '>=';
  verdict: Verdict;
  message: string;
  statistics?: CheckStatistics;
}

/** What a judgement was made against, kept with the result so it can be judged again. */
export interface AnalysisCriteria {
  slo: Slo;
  minSamples: number;
  /** Where the figures came from ("probe client", "Prometheus ..."). */
  source: string;
  /** Measurement problems (each made the result inconclusive). */
  problems?: string[];
  /** A problem that made every figure meaningless. */
  invalidMeasurement?: string;
}

export interface AnalysisResult {
  /** Index of the canary step in the plan, 0-based. */
  step: number;
  canaryPercent: number;
  verdict: Verdict;
  /** Human-readable reasons; for fail and inconclusive the first one is the headline. */
  reasons: string[];
  checks: AnalysisCheck[];
  provider: string;
  canary?: RevisionMeasurement;
  /** What the canary was compared with: the stable revision, or the baseline when there was one. */
  stable?: RevisionMeasurement;
  /** Set when `stable` holds the baseline (a fresh copy of stable started with the canary). */
  comparedWith?: 'baseline';
  startedAt: string;
  finishedAt: string;
  /** The SLO and sample minimum judged against (absent in results recorded before it was kept). */
  criteria?: AnalysisCriteria;
}

/** Combines per-check verdicts: any fail fails; otherwise any inconclusive is inconclusive. */
export function combineVerdicts(verdicts: readonly Verdict[]): Verdict {
  if (verdicts.length === 0) return 'inconclusive';
  if (verdicts.includes('fail')) return 'fail';
  if (verdicts.includes('inconclusive')) return 'inconclusive';
  return 'pass';
}

const fmt = (v: number) =>
  v === 0 ? '0' : Math.abs(v) < 1e-3 ? v.toExponential(1) : Number(v.toPrecision(3)).toString();

/**
 * A check's statistics in one short line, e.g. "p=0.003 U=1234 ratio 1.52 [1.31,1.77] n=300/298".
 */
export function formatStatistics(s: CheckStatistics | undefined): string {
  if (!s) return '';
  const parts: string[] = [];
  if (s.p !== undefined) parts.push(`p=${fmt(s.p)}`);
  if (s.u !== undefined) parts.push(`U=${Math.round(s.u * 10) / 10}`);
  if (s.effect) {
    const e = s.effect;
    const interval =
      e.lower !== undefined && e.upper !== undefined ? ` [${fmt(e.lower)},${fmt(e.upper)}]` : '';
    parts.push(`${e.measure === 'hodges-lehmann-ratio' ? 'ratio' : e.measure} ${fmt(e.estimate)}${interval}`);
  }
  if (s.errors1 !== undefined)
    parts.push(`errors ${s.errors1}${s.errors2 !== undefined ? `/${s.errors2}` : ''}`);
  if (s.pVsSlo !== undefined) parts.push(`p(vs SLO)=${fmt(s.pVsSlo)}`);
  if (s.pVsStable !== undefined) parts.push(`p(vs stable)=${fmt(s.pVsStable)}`);
  parts.push(`n=${s.n1}${s.n2 !== undefined ? `/${s.n2}` : ''}`);
  parts.push(`alpha=${s.alpha}`);
  return parts.join(' ');
}
