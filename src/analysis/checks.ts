import {
  type AnalysisCheck,
  type AnalysisResult,
  type CheckStatistics,
  combineVerdicts,
  type LatencyMetricName,
  type LatencySummary,
  type RevisionMeasurement,
  type Verdict,
} from '../domain/analysis.js';
import {
  binEdges,
  distributionCount,
  type LatencyDistribution,
  onCommonGrid,
} from '../domain/latency-distribution.js';
import { type Slo, sloSchema } from '../domain/promotion-spec.js';
import type { Logger } from '../observability/logger.js';
import {
  binomialTest,
  fisherExactGreater,
  hodgesLehmannRatio,
  type MannWhitneyResult,
  mannWhitneyU,
  quantileRanks,
  type RatioEstimate,
  sampleProblem,
} from './statistics.js';

// The canary judgement, pure: given what the canary and the stable revision did under the
// same load over the same window, each check is pass, fail or inconclusive, and the result
// combines them (any fail fails; otherwise any inconclusive is inconclusive). As in Argo
// Rollouts and Flagger, a measurement that could not be made (too few samples, no data, NaN,
// a provider error) is inconclusive, never a pass and never a breach.
//
// The policy (defaults in sloSchema; see docs there):
// - Latency vs stable, for each of E2E, TTFT and TPOT that was measured: fail only when the
//   canary is significantly slower (one-sided Mann-Whitney U, p < alpha) AND the effect is
//   large: the Hodges-Lehmann ratio canary/stable is >= minLatencyEffectRatio and its 95 %
//   interval lies above 1. Significant but small, or large but not significant, passes.
// - p99 tail vs stable: fail only when the canary's p99 is over maxLatencyRatioVsStable
//   times the stable's even at the favourable ends of both p99s' 95 % intervals (and by more
//   than the noise floor in ms).
// - Absolute p99 SLO, a hard limit judged robustly (absolutePolicy): within it passes;
//   over it, "worse-than-stable" fails only when the canary is also significantly slower than
//   the stable, and passes when the stable is over the SLO too and the canary is not slower
//   (the host or the load, not the canary); otherwise (no usable stable, a stable within the
//   SLO, or policy "margin") it fails only when the low end of the p99's 95 % interval is
//   over the SLO by more than absoluteMarginPct, and is inconclusive when over by less.
// - Errors, exact tests for rare events: fail when the canary's error count is significantly
//   over the SLO rate (binomial test, p < alpha) or significantly over the stable's (Fisher's
//   exact test, p < alpha). Pass when the canary had no error, or its rate is within the SLO
//   and no worse than the stable's, or the binomial test shows it under the SLO rate (95 %).
//   Anything else, such as 1 error in 30 requests against none on the stable, is
//   inconclusive: sparse counts are not a pass by default (spinnaker/kayenta#426).

/** See JudgeInput.latencyNoiseFloorMs. */
export const DEFAULT_LATENCY_NOISE_FLOOR_MS = 10;
/** Confidence of the effect-size and quantile intervals. */
const LEVEL = 0.95;
/** Confidence with which an error rate must be shown under the SLO to pass despite errors. */
const ERROR_PASS_CONFIDENCE = 0.95;

export interface JudgeInput {
  canary: RevisionMeasurement;
  stable?: RevisionMeasurement;
  /** Fields missing at run time (a result recorded by an older version) take their defaults. */
  slo: Slo;
  minSamples: number;
  /** Where the figures come from, for messages ("probe client", "Prometheus"). */
  source: string;
  /**
   * The p99 tail check fails only when the canary's p99 is also this many ms above the
   * stable's: a 1.5x ratio on a 10 ms figure is no regression.
   */
  latencyNoiseFloorMs?: number;
  /** Measurement problems (provider errors, missing series): each makes the result inconclusive. */
  problems?: string[];
  /**
   * A problem that makes every figure meaningless (the probe asked for a model neither
   * revision serves): no check is judged, the result is inconclusive.
   */
  invalidMeasurement?: string;
  /** Extra figures worth showing (KV cache usage, aborted requests...). */
  notes?: string[];
}

export interface Judgement {
  verdict: Verdict;
  reasons: string[];
  checks: AnalysisCheck[];
}

const SLO_DEFAULTS = sloSchema.parse({});

/** The SLO with every judge setting present (defaults for what an older record lacks). */
export function judgePolicy(slo: Partial<Slo> | undefined): Slo {
  const defined = Object.fromEntries(Object.entries(slo ?? {}).filter(([, v]) => v !== undefined));
  return { ...SLO_DEFAULTS, ...defined } as Slo;
}

const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : '+Inf');
const x2 = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'inf');
const pct = (v: number) => `${v.toFixed(2)} %`;
const pv = (p: number) => (p < 1e-4 ? p.toExponential(1) : Number(p.toPrecision(2)).toString());
/** JSON-safe number: NaN and infinities become undefined. */
const finite = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v : undefined);
const round = (v: number, digits = 4) => Number(v.toPrecision(digits));

const LABELS: Record<LatencyMetricName, string> = { e2e: 'E2E latency', ttft: 'TTFT', tpot: 'TPOT' };
const METRICS: LatencyMetricName[] = ['e2e', 'ttft', 'tpot'];

interface Samples {
  dist?: LatencyDistribution;
  n: number;
  problem?: string;
}

function samplesOf(m: RevisionMeasurement | undefined, metric: LatencyMetricName): Samples {
  const dist = m?.distributions?.[metric];
  if (!dist) return { n: 0 };
  const problem = sampleProblem(dist);
  if (problem) return { n: 0, problem: `${m?.revision} ${LABELS[metric]} samples are malformed: ${problem}` };
  return { dist, n: distributionCount(dist) };
}

interface Comparison {
  mwu: MannWhitneyResult;
  hl: RatioEstimate;
  /** Significantly slower: one-sided p < alpha and the ratio's interval above 1. */
  slower: boolean;
  statistics: CheckStatistics;
}

function compare(c: LatencyDistribution, s: LatencyDistribution, alpha: number): Comparison {
  const mwu = mannWhitneyU(c, s);
  const hl = hodgesLehmannRatio(c, s);
  return {
    mwu,
    hl,
    slower: mwu.pGreater < alpha && hl.lower > 1,
    statistics: {
      test: 'mann-whitney-u',
      alpha,
      n1: mwu.n1,
      n2: mwu.n2,
      u: mwu.u1,
      p: finite(mwu.pGreater),
      pTwoSided: finite(mwu.pTwoSided),
      effect: {
        measure: 'hodges-lehmann-ratio',
        estimate: round(hl.estimate),
        lower: finite(round(hl.lower)),
        upper: finite(round(hl.upper)),
        level: hl.level,
      },
    },
  };
}

interface P99 {
  /** Point estimate, ms. */
  estimate: number;
  /** Edges of the bin holding the estimate (histogram bucket; the estimate itself for exact figures). */
  binLowerMs: number;
  binUpperMs: number;
  /** 95 % distribution-free interval (bucket edges for histograms). */
  lowMs: number;
  highMs: number;
  exact: boolean;
}

/** p99 with its interval, from the samples, or from a summary (exact, no interval) without them. */
function p99Of(dist: LatencyDistribution | undefined, summary: LatencySummary | undefined): P99 | undefined {
  if (dist) {
    const q = quantileRanks(dist, 0.99);
    if (!q) return undefined;
    const bin = binEdges(dist, q.estimateIndex);
    // Exact per-request figures: the summary's p99 (HDR, 0.1 ms) beats the bin's centre.
    let estimate =
      summary && summary.count > 0 && Number.isFinite(summary.p99Ms) ? summary.p99Ms : q.estimate;
    if (dist.binning === 'buckets') {
      // histogram_quantile(): linear inside the bucket; the +Inf bucket answers its lower bound.
      let below = 0;
      for (let i = 0; i < q.estimateIndex; i++) below += dist.counts[i] as number;
      const inBucket = dist.counts[q.estimateIndex] as number;
      const rank = 0.99 * distributionCount(dist);
      estimate = Number.isFinite(bin.upperMs)
        ? bin.lowerMs + (bin.upperMs - bin.lowerMs) * Math.min(1, Math.max(0, (rank - below) / inBucket))
        : bin.lowerMs;
    }
    const exact = dist.binning === 'log-grid';
    return {
      estimate,
      binLowerMs: exact ? estimate : bin.lowerMs,
      binUpperMs: exact ? estimate : bin.upperMs,
      lowMs: binEdges(dist, q.lowerIndex).lowerMs,
      highMs: binEdges(dist, q.upperIndex).upperMs,
      exact,
    };
  }
  if (!summary || summary.count <= 0 || !Number.isFinite(summary.p99Ms)) return undefined;
  const v = summary.p99Ms;
  return { estimate: v, binLowerMs: v, binUpperMs: v, lowMs: v, highMs: v, exact: true };
}

/**
 * Canary and stable latency samples on one log grid, each at most MAX_DISTRIBUTION_BINS
 * bins: equal latencies tie in the rank tests, and the result stays small in history.
 */
export function alignDistributions(
  canary: RevisionMeasurement,
  stable: RevisionMeasurement | undefined,
): [RevisionMeasurement, RevisionMeasurement | undefined] {
  const c = { ...canary, distributions: { ...canary.distributions } };
  const s = stable ? { ...stable, distributions: { ...stable.distributions } } : undefined;
  for (const metric of ['e2e', 'ttft', 'tpot'] as LatencyMetricName[]) {
    const [cd, sd] = onCommonGrid([c.distributions[metric], s?.distributions[metric]]);
    if (cd) c.distributions[metric] = cd;
    if (sd && s) s.distributions[metric] = sd;
  }
  return [c, s];
}

export function judgeCanary(input: JudgeInput): Judgement {
  const { minSamples, source } = input;
  // Bounded bins on one grid: the pairwise effect size costs bins^2, whatever the caller passed.
  const [canary, stable] = alignDistributions(input.canary, input.stable);
  const slo = judgePolicy(input.slo);
  if (input.invalidMeasurement) {
    const check: AnalysisCheck = {
      metric: 'measurement',
      threshold: 0,
      comparator: '<=',
      verdict: 'inconclusive',
      message: input.invalidMeasurement,
    };
    return {
      verdict: 'inconclusive',
      reasons: [input.invalidMeasurement, ...(input.notes ?? [])],
      checks: [check],
    };
  }
  const checks: AnalysisCheck[] = [];
  const notes: string[] = [...(input.notes ?? [])];

  for (const problem of input.problems ?? []) {
    checks.push({
      metric: 'measurement',
      threshold: 0,
      comparator: '<=',
      verdict: 'inconclusive',
      message: problem,
    });
  }

  const canaryEnough = canary.requests >= minSamples;
  checks.push({
    metric: 'canary_samples',
    value: canary.requests,
    threshold: minSamples,
    comparator: '>=',
    verdict: canaryEnough ? 'pass' : 'inconclusive',
    message: canaryEnough
      ? `canary: ${canary.requests} requests measured (minimum ${minSamples})`
      : `too few samples: canary ${canary.revision} served ${canary.requests} requests, ${minSamples} needed (${source})`,
  });
  const stableEnough = stable === undefined || stable.requests >= minSamples;
  if (stable) {
    checks.push({
      metric: 'stable_samples',
      value: stable.requests,
      threshold: minSamples,
      comparator: '>=',
      verdict: stableEnough ? 'pass' : 'inconclusive',
      message: stableEnough
        ? `stable: ${stable.requests} requests measured (minimum ${minSamples})`
        : `too few samples: stable ${stable.revision} served ${stable.requests} requests, ${minSamples} needed (${source})`,
    });
  }

  checks.push(errorCheck(canary, stable && stableEnough ? stable : undefined, slo, canaryEnough));

  // Canary vs stable, per latency metric; the E2E comparison also informs the SLO check.
  const comparisons = new Map<LatencyMetricName, Comparison>();
  const comparisonChecks: AnalysisCheck[] = [];
  if (!stable) {
    notes.push('no stable revision to compare with: latency was not compared');
  } else {
    for (const metric of METRICS) {
      const check = latencyCheck(
        metric,
        canary,
        stable,
        slo,
        minSamples,
        canaryEnough && stableEnough,
        input.latencyNoiseFloorMs ?? DEFAULT_LATENCY_NOISE_FLOOR_MS,
      );
      if (!check) continue;
      comparisonChecks.push(check.check);
      if (check.comparison) comparisons.set(metric, check.comparison);
    }
    for (const metric of ['e2e', 'ttft'] as const) {
      const check = tailCheck(
        metric,
        canary,
        stable,
        slo,
        minSamples,
        canaryEnough && stableEnough,
        input.latencyNoiseFloorMs ?? DEFAULT_LATENCY_NOISE_FLOOR_MS,
      );
      if (check) comparisonChecks.push(check);
    }
  }

  const absolute = absoluteCheck(
    canary,
    stable,
    stableEnough,
    slo,
    minSamples,
    canaryEnough,
    comparisons.get('e2e'),
  );
  checks.push(absolute.check);
  if (absolute.note) notes.push(absolute.note);
  checks.push(...comparisonChecks);

  const verdict = combineVerdicts(checks.map((c) => c.verdict));
  const headline = checks.filter((c) => c.verdict === verdict && verdict !== 'pass').map((c) => c.message);
  const reasons =
    verdict === 'pass'
      ? [
          `canary ${canary.revision} passed ${checks.length} checks (${source})`,
          ...checks.map((c) => c.message),
        ]
      : [...headline, ...checks.filter((c) => c.verdict !== verdict).map((c) => c.message)];
  return { verdict, reasons: [...reasons, ...notes], checks };
}

function errorCheck(
  canary: RevisionMeasurement,
  stable: RevisionMeasurement | undefined,
  slo: Slo,
  canaryEnough: boolean,
): AnalysisCheck {
  const alpha = slo.alpha;
  const rate = slo.maxErrorRatePct / 100;
  const k1 = canary.errors;
  const n1 = canary.requests;
  const base = {
    metric: 'error_rate_pct',
    value: canary.errorRatePct,
    threshold: slo.maxErrorRatePct,
    comparator: '<=' as const,
  };
  const counts = `${k1} of ${n1}${stable ? `; stable ${stable.errors} of ${stable.requests}` : ''}`;
  const wellFormed = (v: number) => Number.isInteger(v) && v >= 0;
  if (!canaryEnough || !wellFormed(k1) || !wellFormed(n1) || k1 > n1) {
    return {
      ...base,
      verdict: 'inconclusive',
      message: `canary error rate not judged: ${canaryEnough ? `malformed counts (${k1} of ${n1})` : 'too few requests'}`,
    };
  }
  const binomial = binomialTest(k1, n1, rate);
  const stableUsable =
    stable !== undefined &&
    wellFormed(stable.errors) &&
    wellFormed(stable.requests) &&
    stable.errors <= stable.requests;
  const pVsStable = stableUsable
    ? fisherExactGreater(k1, n1 - k1, stable.errors, stable.requests - stable.errors)
    : undefined;
  const statistics: CheckStatistics = {
    test: stableUsable ? 'binomial+fisher-exact' : 'binomial',
    alpha,
    n1,
    n2: stableUsable ? stable.requests : undefined,
    errors1: k1,
    errors2: stableUsable ? stable.errors : undefined,
    pVsSlo: finite(binomial.pGreater),
    pVsStable: finite(pVsStable),
  };
  const observed = `canary error rate ${pct(canary.errorRatePct)} (${counts})`;
  const canaryRate = n1 > 0 ? k1 / n1 : 0;
  if (binomial.pGreater < alpha) {
    return {
      ...base,
      verdict: 'fail',
      statistics,
      message: `${observed} over the ${slo.maxErrorRatePct} % limit, significantly (binomial p=${pv(binomial.pGreater)} < ${alpha})`,
    };
  }
  if (pVsStable !== undefined && pVsStable < alpha) {
    return {
      ...base,
      verdict: 'fail',
      statistics,
      message: `${observed} significantly above the stable's (Fisher exact p=${pv(pVsStable)} < ${alpha})`,
    };
  }
  const stableRate = stableUsable && stable.requests > 0 ? stable.errors / stable.requests : undefined;
  if (k1 === 0) {
    return { ...base, verdict: 'pass', statistics, message: `${observed}: no errors` };
  }
  if (canaryRate <= rate && stableRate !== undefined && canaryRate <= stableRate) {
    return {
      ...base,
      verdict: 'pass',
      statistics,
      message: `${observed} within the ${slo.maxErrorRatePct} % limit and no higher than the stable's`,
    };
  }
  if (binomial.pLess < 1 - ERROR_PASS_CONFIDENCE) {
    return {
      ...base,
      verdict: 'pass',
      statistics,
      message: `${observed} shown under the ${slo.maxErrorRatePct} % limit (binomial p=${pv(binomial.pLess)})`,
    };
  }
  return {
    ...base,
    verdict: 'inconclusive',
    statistics,
    message: `${observed}: too few requests to tell whether errors stay under the ${slo.maxErrorRatePct} % limit${
      stableRate !== undefined && canaryRate > stableRate ? ' or match the stable' : ''
    } (not significant: binomial p=${pv(binomial.pGreater)}${pVsStable !== undefined ? `, Fisher p=${pv(pVsStable)}` : ''}; sparse errors are not a pass)`,
  };
}

function latencyCheck(
  metric: LatencyMetricName,
  canary: RevisionMeasurement,
  stable: RevisionMeasurement,
  slo: Slo,
  minSamples: number,
  enoughRequests: boolean,
  noiseFloorMs: number,
): { check: AnalysisCheck; comparison?: Comparison } | undefined {
  const label = LABELS[metric];
  const c = samplesOf(canary, metric);
  const s = samplesOf(stable, metric);
  const base = {
    metric: `${metric}_vs_stable`,
    threshold: slo.minLatencyEffectRatio,
    comparator: '<=' as const,
  };
  // A metric neither side measured (TTFT without streaming, TPOT of one-token answers) is not
  // part of the judgement; E2E always is.
  if (!c.dist && !s.dist && !c.problem && !s.problem && metric !== 'e2e') return undefined;
  const problem = c.problem ?? s.problem;
  if (problem || !c.dist || !s.dist) {
    return {
      check: {
        ...base,
        verdict: 'inconclusive',
        message:
          problem ??
          `${label} not comparable: no samples from the ${!c.dist ? 'canary' : 'stable'}${!c.dist && !s.dist ? ' nor the stable' : ''}`,
      },
    };
  }
  if (!enoughRequests || c.n < minSamples || s.n < minSamples) {
    return {
      check: {
        ...base,
        verdict: 'inconclusive',
        message: `${label} not compared: too few samples (canary ${c.n}, stable ${s.n}; ${minSamples} needed)`,
      },
    };
  }
  const comparison = compare(c.dist, s.dist, slo.alpha);
  const { mwu, hl } = comparison;
  const effect = `${label} ${x2(hl.estimate)} the stable's (95 % interval ${x2(hl.lower)}-${x2(hl.upper)})`;
  const big = hl.estimate >= slo.minLatencyEffectRatio;
  // A ratio on a few-ms per-request figure (the TTFT of a tiny probe) is host noise however
  // significant: the shift it means at the stable's median must also clear the noise floor.
  // TPOT is per token, already averaged over the answer: a 4 ms rise there is real.
  const stableMedianMs = quantileRanks(s.dist, 0.5)?.estimate ?? 0;
  const shiftMs = (hl.estimate - 1) * stableMedianMs;
  const beyondNoise = metric === 'tpot' || shiftMs > noiseFloorMs;
  const verdict: Verdict = comparison.slower && big && beyondNoise ? 'fail' : 'pass';
  const message =
    verdict === 'fail'
      ? `canary ${effect}: significantly slower (p=${pv(mwu.pGreater)} < ${slo.alpha}) and beyond the ${slo.minLatencyEffectRatio}x minimum effect`
      : comparison.slower && big
        ? `canary ${effect}: significantly slower (p=${pv(mwu.pGreater)}) but by ${ms(shiftMs)} at the stable's median, within the ${noiseFloorMs} ms noise floor`
        : comparison.slower
          ? `canary ${effect}: significantly slower (p=${pv(mwu.pGreater)}) but under the ${slo.minLatencyEffectRatio}x minimum effect`
          : `canary ${effect}: not significantly slower (p=${pv(mwu.pGreater)}, alpha ${slo.alpha})`;
  return {
    check: {
      ...base,
      value: finite(round(hl.estimate)),
      verdict,
      message,
      statistics: comparison.statistics,
    },
    comparison,
  };
}

function tailCheck(
  metric: 'e2e' | 'ttft',
  canary: RevisionMeasurement,
  stable: RevisionMeasurement,
  slo: Slo,
  minSamples: number,
  enoughRequests: boolean,
  noiseFloorMs: number,
): AnalysisCheck | undefined {
  const label = metric === 'e2e' ? 'p99 E2E' : 'p99 TTFT';
  const c = samplesOf(canary, metric);
  const s = samplesOf(stable, metric);
  const base = {
    metric: metric === 'e2e' ? 'p99_latency_ratio_vs_stable' : 'p99_ttft_ratio_vs_stable',
    threshold: slo.maxLatencyRatioVsStable,
    comparator: '<=' as const,
  };
  if (!c.dist && !s.dist && metric === 'ttft') return undefined;
  const summary = (m: RevisionMeasurement) => (metric === 'e2e' ? m.latency : m.ttft);
  const cp = c.dist && !c.problem ? p99Of(c.dist, summary(canary)) : undefined;
  const sp = s.dist && !s.problem ? p99Of(s.dist, summary(stable)) : undefined;
  if (!cp || !sp || !enoughRequests || c.n < minSamples || s.n < minSamples) {
    return {
      ...base,
      verdict: 'inconclusive',
      message: `${label} ratio not measurable (canary ${cp ? ms(cp.estimate) : 'n/a'} from ${c.n} samples, stable ${sp ? ms(sp.estimate) : 'n/a'} from ${s.n}; ${minSamples} needed)`,
    };
  }
  const ratio = sp.estimate > 0 ? cp.estimate / sp.estimate : cp.estimate > 0 ? Number.POSITIVE_INFINITY : 1;
  // The favourable reading: the canary's p99 as low, the stable's as high as their intervals allow.
  const over = cp.lowMs > slo.maxLatencyRatioVsStable * sp.highMs;
  const beyondNoise = cp.lowMs - sp.highMs > noiseFloorMs;
  const verdict: Verdict = over && beyondNoise ? 'fail' : 'pass';
  const statistics: CheckStatistics = {
    test: 'quantile-interval',
    alpha: 1 - LEVEL,
    n1: c.n,
    n2: s.n,
    effect: {
      measure: 'p99-ratio',
      estimate: round(ratio),
      lower: finite(sp.highMs > 0 ? round(cp.lowMs / sp.highMs) : undefined),
      upper: finite(sp.lowMs > 0 ? round(cp.highMs / sp.lowMs) : undefined),
      level: LEVEL,
    },
  };
  const figures = `canary ${label} ${ms(cp.estimate)} (95 % interval ${ms(cp.lowMs)}-${ms(cp.highMs)}) vs stable ${ms(sp.estimate)} (${ms(sp.lowMs)}-${ms(sp.highMs)}): ${x2(ratio)}`;
  return {
    ...base,
    value: finite(round(ratio)),
    verdict,
    statistics,
    message:
      verdict === 'fail'
        ? `${figures}, over the ${slo.maxLatencyRatioVsStable}x limit even at the ends of both intervals`
        : over
          ? `${figures}, within the ${noiseFloorMs} ms noise floor`
          : `${figures} (limit ${slo.maxLatencyRatioVsStable}x, judged on the intervals)`,
  };
}

function absoluteCheck(
  canary: RevisionMeasurement,
  stable: RevisionMeasurement | undefined,
  stableEnough: boolean,
  slo: Slo,
  minSamples: number,
  canaryEnough: boolean,
  e2e: Comparison | undefined,
): { check: AnalysisCheck; note?: string } {
  const limit = slo.p99LatencyMs;
  const c = samplesOf(canary, 'e2e');
  const cp = c.problem ? undefined : p99Of(c.dist, canary.latency);
  const latencySamples = c.dist ? c.n : (canary.latency?.count ?? 0);
  const base = {
    metric: 'p99_latency_ms',
    value: cp ? round(cp.estimate, 6) : undefined,
    threshold: limit,
    comparator: '<=' as const,
  };
  if (!cp || latencySamples < Math.min(minSamples, canary.requests) || !canaryEnough) {
    return {
      check: {
        ...base,
        verdict: 'inconclusive',
        message: c.problem
          ? c.problem
          : !cp
            ? 'no successful canary request to measure p99 latency from'
            : `p99 latency ${ms(cp.estimate)} rests on ${latencySamples} samples, too few to judge`,
      },
    };
  }
  const described = cp.exact
    ? `canary p99 E2E ${ms(cp.estimate)}`
    : `canary p99 E2E in the histogram bucket (${ms(cp.binLowerMs)}, ${ms(cp.binUpperMs)}]`;
  const statistics: CheckStatistics = {
    test: 'quantile-interval',
    alpha: 1 - LEVEL,
    n1: latencySamples,
    effect: {
      measure: 'p99-ms',
      estimate: round(cp.estimate),
      lower: finite(cp.lowMs),
      upper: finite(cp.highMs),
      level: LEVEL,
    },
  };
  const within = cp.exact ? cp.estimate <= limit : cp.binUpperMs <= limit;
  if (within) {
    return {
      check: { ...base, verdict: 'pass', statistics, message: `${described} within the ${limit} ms SLO` },
    };
  }
  // Over the SLO (or, with histograms, possibly over it: the bucket straddles the limit).
  if (slo.absolutePolicy === 'worse-than-stable' && stable && stableEnough && e2e) {
    const sp = p99Of(samplesOf(stable, 'e2e').dist, stable.latency);
    if (e2e.slower) {
      return {
        check: {
          ...base,
          verdict: 'fail',
          statistics: e2e.statistics,
          message: `${described} over the ${limit} ms SLO and significantly slower than the stable (p=${pv(e2e.mwu.pGreater)} < ${slo.alpha}, ratio ${x2(e2e.hl.estimate)})`,
        },
      };
    }
    const stableOver = sp !== undefined && (sp.exact ? sp.estimate > limit : sp.binUpperMs > limit);
    if (stableOver && sp) {
      const note = `the stable's p99 E2E (${ms(sp.estimate)}) is over the ${limit} ms SLO too: the host or the load is slow, not the canary`;
      return {
        check: {
          ...base,
          verdict: 'pass',
          statistics: e2e.statistics,
          message: `${described} over the ${limit} ms SLO, but not significantly slower than the stable (p=${pv(e2e.mwu.pGreater)}), whose p99 ${ms(sp.estimate)} is over it too`,
        },
        note,
      };
    }
  }
  // The margin rule: a breach beyond measurement noise, even at the low end of the interval.
  const breachAt = limit * (1 + slo.absoluteMarginPct / 100);
  const why =
    slo.absolutePolicy === 'margin'
      ? 'policy "margin"'
      : !stable
        ? 'no stable revision to compare with'
        : !stableEnough || !e2e
          ? 'the stable could not be compared'
          : 'the stable is within it';
  if (cp.lowMs > breachAt) {
    return {
      check: {
        ...base,
        verdict: 'fail',
        statistics,
        message: `${described} over the ${limit} ms SLO by more than the ${slo.absoluteMarginPct} % margin (95 % interval from ${ms(cp.lowMs)}; ${why})`,
      },
    };
  }
  return {
    check: {
      ...base,
      verdict: 'inconclusive',
      statistics,
      message: cp.exact
        ? `${described} over the ${limit} ms SLO, but not beyond the ${slo.absoluteMarginPct} % margin of measurement noise (95 % interval from ${ms(cp.lowMs)}; ${why})`
        : `${described}: the histogram buckets cannot tell whether it is over ${limit} ms by more than the ${slo.absoluteMarginPct} % margin (${why})`,
    },
  };
}

/** The AnalysisResult every provider returns for a judgement, logged once the same way. */
/** What a provider measured for one step, ready to judge. */
export interface StepMeasurement {
  canary: RevisionMeasurement;
  stable?: RevisionMeasurement;
  source: string;
  problems: string[];
  notes: string[];
  invalidMeasurement?: string;
}

/**
 * The tail every provider shares: judge what it measured and turn the judgement into the
 * step's AnalysisResult (with what `qwenops analysis rejudge` needs to judge it again).
 */
export function judgeStep(
  request: {
    step: number;
    canaryPercent: number;
    slo: Slo;
    minSamples: number;
    comparison?: 'stable' | 'baseline';
  },
  measured: StepMeasurement,
  context: { provider: string; startedAt: Date; logger?: Logger; latencyNoiseFloorMs?: number },
): AnalysisResult {
  const notes =
    request.comparison === 'baseline' && measured.stable
      ? [
          `compared with the baseline ${measured.stable.revision}: a fresh copy of the stable revision started with the canary`,
          ...measured.notes,
        ]
      : measured.notes;
  const judgement = judgeCanary({
    canary: measured.canary,
    stable: measured.stable,
    slo: request.slo,
    minSamples: request.minSamples,
    source: measured.source,
    latencyNoiseFloorMs: context.latencyNoiseFloorMs ?? DEFAULT_LATENCY_NOISE_FLOOR_MS,
    problems: measured.problems,
    invalidMeasurement: measured.invalidMeasurement,
    notes,
  });
  return toAnalysisResult(request, judgement, {
    provider: context.provider,
    canary: measured.canary,
    stable: measured.stable,
    startedAt: context.startedAt,
    logger: context.logger,
    source: measured.source,
    problems: measured.problems,
    invalidMeasurement: measured.invalidMeasurement,
  });
}

export function toAnalysisResult(
  request: {
    step: number;
    canaryPercent: number;
    slo?: Slo;
    minSamples?: number;
    comparison?: 'stable' | 'baseline';
  },
  judgement: Judgement,
  context: {
    provider: string;
    canary: RevisionMeasurement;
    stable?: RevisionMeasurement;
    startedAt: Date;
    logger?: Logger;
    /** What was judged, kept for `qwenops analysis rejudge`. */
    source?: string;
    problems?: string[];
    invalidMeasurement?: string;
  },
): AnalysisResult {
  context.logger?.info(
    {
      step: request.step,
      verdict: judgement.verdict,
      canary: context.canary.revision,
      reason: judgement.reasons[0],
    },
    `canary analysis (${context.provider})`,
  );
  // Stored as judged: on one grid, at most MAX_DISTRIBUTION_BINS bins each (a few KB).
  const [canary, stable] = alignDistributions(context.canary, context.stable);
  return {
    step: request.step,
    canaryPercent: request.canaryPercent,
    verdict: judgement.verdict,
    reasons: judgement.reasons,
    checks: judgement.checks,
    provider: context.provider,
    canary,
    stable,
    ...(request.comparison === 'baseline' && stable ? { comparedWith: 'baseline' as const } : {}),
    startedAt: context.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    ...(request.slo && request.minSamples !== undefined
      ? {
          criteria: {
            slo: judgePolicy(request.slo),
            minSamples: request.minSamples,
            source: context.source ?? context.provider,
            ...(context.problems?.length ? { problems: context.problems } : {}),
            ...(context.invalidMeasurement ? { invalidMeasurement: context.invalidMeasurement } : {}),
          },
        }
      : {}),
  };
}
