import { describe, expect, it } from 'vitest';
import { judgeCanary, judgePolicy } from '../../../src/analysis/checks.js';
import {
  formatStatistics,
  type LatencyMetricName,
  type LatencySummary,
  latencySummaryOf,
  type RevisionMeasurement,
} from '../../../src/domain/analysis.js';
import {
  distributionFromBuckets,
  type LatencyDistribution,
  LogGridBinner,
} from '../../../src/domain/latency-distribution.js';
import { sloSchema } from '../../../src/domain/promotion-spec.js';

const slo = sloSchema.parse({ p99LatencyMs: 300, maxErrorRatePct: 1, maxLatencyRatioVsStable: 1.5 });

/** Deterministic lognormal latencies (mulberry32 + Box-Muller). */
function lognormal(seed: number, n: number, medianMs: number, sigma: number): number[] {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Array.from({ length: n }, () => {
    const z = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
    return medianMs * Math.exp(sigma * z);
  });
}

function binned(values: number[]): LatencyDistribution {
  const binner = new LogGridBinner();
  for (const v of values) binner.add(v);
  return binner.toDistribution() as LatencyDistribution;
}

function summaryOf(values: number[]): LatencySummary {
  return latencySummaryOf(values) as LatencySummary;
}

interface RevisionOptions {
  requests?: number;
  errors?: number;
  /** Median E2E, ms. */
  e2eMs?: number;
  ttftMs?: number;
  sigma?: number;
  seed?: number;
  /** Replace latencies (e.g. a tail) after generating them. */
  mapE2e?: (values: number[]) => number[];
}

function revision(name: string, options: RevisionOptions = {}): RevisionMeasurement {
  const requests = options.requests ?? 300;
  const errors = options.errors ?? 0;
  const ok = requests - errors;
  const seed = options.seed ?? (name === 'canary' ? 11 : 23);
  const sigma = options.sigma ?? 0.3;
  const e2e = (options.mapE2e ?? ((v) => v))(lognormal(seed, ok, options.e2eMs ?? 120, sigma));
  const ttft = lognormal(seed + 1000, ok, options.ttftMs ?? 30, sigma);
  const tpot = lognormal(seed + 2000, ok, 8, sigma);
  const distributions: Partial<Record<LatencyMetricName, LatencyDistribution>> = {};
  if (ok > 0) {
    distributions.e2e = binned(e2e);
    distributions.ttft = binned(ttft);
    distributions.tpot = binned(tpot);
  }
  return {
    revision: name,
    requests,
    errors,
    errorRatePct: requests > 0 ? (errors / requests) * 100 : 0,
    latency: ok > 0 ? summaryOf(e2e) : undefined,
    ttft: ok > 0 ? summaryOf(ttft) : undefined,
    distributions,
  };
}

const base = { slo, minSamples: 30, source: 'test', latencyNoiseFloorMs: 10 };
const check = (j: ReturnType<typeof judgeCanary>, metric: string) =>
  j.checks.find((c) => c.metric === metric);

describe('judgeCanary: latency', () => {
  it('passes an A/A canary under heavy noise, with the statistics of every comparison', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { sigma: 0.6 }),
      stable: revision('stable', { sigma: 0.6 }),
      slo: sloSchema.parse({ p99LatencyMs: 2000 }),
    });
    expect(j.verdict, j.reasons.join('\n')).toBe('pass');
    expect(j.checks.map((c) => c.metric)).toEqual([
      'canary_samples',
      'stable_samples',
      'error_rate_pct',
      'p99_latency_ms',
      'e2e_vs_stable',
      'ttft_vs_stable',
      'tpot_vs_stable',
      'p99_latency_ratio_vs_stable',
      'p99_ttft_ratio_vs_stable',
    ]);
    expect(j.reasons[0]).toMatch(/canary canary passed 9 checks/);
    const e2e = check(j, 'e2e_vs_stable');
    expect(e2e?.statistics).toMatchObject({ test: 'mann-whitney-u', alpha: 0.01, n1: 300, n2: 300 });
    expect(e2e?.statistics?.p).toBeGreaterThan(0.01);
    expect(e2e?.statistics?.effect?.lower).toBeLessThan(1);
    expect(e2e?.statistics?.effect?.upper).toBeGreaterThan(1);
    expect(formatStatistics(e2e?.statistics)).toMatch(
      /^p=[\d.e-]+ U=[\d.]+ ratio [\d.]+ \[[\d.]+,[\d.]+\] n=300\/300 alpha=0\.01$/,
    );
  });

  it('passes a significant ratio on a few-ms TTFT whose shift is within the noise floor in ms', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { ttftMs: 4 * 1.3, sigma: 0.1 }),
      stable: revision('stable', { ttftMs: 4, sigma: 0.1 }),
      slo: sloSchema.parse({ p99LatencyMs: 2000 }),
    });
    const ttft = check(j, 'ttft_vs_stable');
    expect(ttft?.statistics?.p).toBeLessThan(0.01);
    expect(ttft?.value).toBeGreaterThan(1.2);
    expect(ttft?.verdict).toBe('pass');
    expect(ttft?.message).toMatch(/within the 10 ms noise floor/);
    // The same ratio on a 100 ms TTFT is a regression.
    const slow = judgeCanary({
      ...base,
      canary: revision('canary', { ttftMs: 100 * 1.3, sigma: 0.1 }),
      stable: revision('stable', { ttftMs: 100, sigma: 0.1 }),
      slo: sloSchema.parse({ p99LatencyMs: 2000 }),
    });
    expect(check(slow, 'ttft_vs_stable')?.verdict).toBe('fail');
  });

  it('passes many A/A canaries: the false-rollback rate stays near zero', () => {
    let rolledBack = 0;
    for (let seed = 1; seed <= 60; seed++) {
      const j = judgeCanary({
        ...base,
        canary: revision('canary', { seed: seed * 7, sigma: 0.5 }),
        stable: revision('stable', { seed: seed * 7 + 3, sigma: 0.5 }),
        slo: sloSchema.parse({ p99LatencyMs: 2000 }),
      });
      if (j.verdict === 'fail') rolledBack += 1;
    }
    expect(rolledBack).toBeLessThanOrEqual(1);
  });

  it('fails a canary 1.5x slower, with U, p and the ratio with its interval', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { e2eMs: 180, ttftMs: 45 }),
      stable: revision('stable', { requests: 298 }),
      slo: sloSchema.parse({ p99LatencyMs: 2000 }),
    });
    expect(j.verdict).toBe('fail');
    expect(j.reasons[0]).toMatch(
      /canary E2E latency 1\.\d\dx the stable's \(95 % interval 1\.\d\dx-1\.\d\dx\): significantly slower \(p=.* < 0\.01\) and beyond the 1\.2x minimum effect/,
    );
    const e2e = check(j, 'e2e_vs_stable');
    expect(e2e?.verdict).toBe('fail');
    expect(e2e?.statistics?.n1).toBe(300);
    expect(e2e?.statistics?.n2).toBe(298);
    expect(e2e?.statistics?.p).toBeLessThan(1e-6);
    expect(e2e?.statistics?.u).toBeGreaterThan(300 * 298 * 0.6);
    expect(e2e?.statistics?.effect?.estimate).toBeGreaterThan(1.35);
    expect(e2e?.statistics?.effect?.estimate).toBeLessThan(1.65);
    expect(e2e?.statistics?.effect?.lower).toBeGreaterThan(1.2);
    expect(e2e?.value).toBe(e2e?.statistics?.effect?.estimate);
    expect(check(j, 'ttft_vs_stable')?.verdict).toBe('fail');
  });

  it('fails on TTFT alone when first tokens regress but E2E hides it', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { ttftMs: 60 }),
      stable: revision('stable', { ttftMs: 30 }),
    });
    expect(j.verdict).toBe('fail');
    expect(j.reasons[0]).toMatch(/canary TTFT [12]\.\d\dx the stable's/);
    expect(check(j, 'e2e_vs_stable')?.verdict).toBe('pass');
  });

  it('passes a significant but small slowdown, under the minimum effect', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 3000, e2eMs: 132, sigma: 0.2 }),
      stable: revision('stable', { requests: 3000, sigma: 0.2 }),
    });
    const e2e = check(j, 'e2e_vs_stable');
    expect(e2e?.verdict).toBe('pass');
    expect(e2e?.message).toMatch(/significantly slower \(p=.*\) but under the 1\.2x minimum effect/);
    // A stricter minimum effect catches it.
    const strict = judgeCanary({
      ...base,
      slo: sloSchema.parse({ minLatencyEffectRatio: 1.05 }),
      canary: revision('canary', { requests: 3000, e2eMs: 132, sigma: 0.2 }),
      stable: revision('stable', { requests: 3000, sigma: 0.2 }),
    });
    expect(check(strict, 'e2e_vs_stable')?.verdict).toBe('fail');
  });

  it('fails a tail-only regression on the p99 ratio, judged on the quantile intervals', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', {
        sigma: 0.2,
        mapE2e: (v) => v.map((x, i) => (i % 10 === 0 ? x * 5 : x)),
      }),
      stable: revision('stable', { sigma: 0.2 }),
      slo: sloSchema.parse({ p99LatencyMs: 2000 }),
    });
    expect(j.verdict).toBe('fail');
    expect(check(j, 'e2e_vs_stable')?.verdict).toBe('pass');
    const tail = check(j, 'p99_latency_ratio_vs_stable');
    expect(tail?.verdict).toBe('fail');
    expect(tail?.message).toMatch(/over the 1\.5x limit even at the ends of both intervals/);
    expect(tail?.statistics?.effect?.measure).toBe('p99-ratio');
  });
});

describe('judgeCanary: the absolute p99 SLO', () => {
  it('passes when canary and stable are both over the SLO and the canary is not slower', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { e2eMs: 420, sigma: 0.1 }),
      stable: revision('stable', { e2eMs: 410, sigma: 0.1 }),
    });
    expect(j.verdict, j.reasons.join('\n')).toBe('pass');
    const p99 = check(j, 'p99_latency_ms');
    expect(p99?.verdict).toBe('pass');
    expect(p99?.value).toBeGreaterThan(300);
    expect(p99?.message).toMatch(/over the 300 ms SLO, but not significantly slower than the stable/);
    expect(j.reasons.at(-1)).toMatch(/the stable's p99 E2E .* is over the 300 ms SLO too/);
  });

  it('fails a canary over the SLO and significantly slower than the stable', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { e2eMs: 330, sigma: 0.1 }),
      stable: revision('stable', { e2eMs: 290, sigma: 0.1 }),
    });
    const p99 = check(j, 'p99_latency_ms');
    expect(p99?.verdict).toBe('fail');
    expect(p99?.message).toMatch(/over the 300 ms SLO and significantly slower than the stable/);
    expect(p99?.statistics?.test).toBe('mann-whitney-u');
    // 1.14x is under the minimum effect of the comparison itself: the SLO is what fails.
    expect(check(j, 'e2e_vs_stable')?.verdict).toBe('pass');
    expect(j.verdict).toBe('fail');
  });

  it('without a stable, fails a canary over the SLO by more than the margin', () => {
    const j = judgeCanary({ ...base, canary: revision('canary', { e2eMs: 500, sigma: 0.1 }) });
    expect(j.verdict).toBe('fail');
    expect(j.reasons[0]).toMatch(
      /canary p99 E2E [\d.]+ ms over the 300 ms SLO by more than the 20 % margin .*no stable revision to compare with/,
    );
    expect(j.reasons.at(-1)).toMatch(/no stable revision to compare with: latency was not compared/);
  });

  it('without a stable, is inconclusive when over the SLO by less than the margin', () => {
    const j = judgeCanary({ ...base, canary: revision('canary', { e2eMs: 280, sigma: 0.05 }) });
    expect(j.verdict).toBe('inconclusive');
    expect(j.reasons[0]).toMatch(/over the 300 ms SLO, but not beyond the 20 % margin of measurement noise/);
  });

  it('policy "margin" ignores the stable', () => {
    const j = judgeCanary({
      ...base,
      slo: sloSchema.parse({ absolutePolicy: 'margin', absoluteMarginPct: 10 }),
      canary: revision('canary', { e2eMs: 500, sigma: 0.1 }),
      stable: revision('stable', { e2eMs: 500, sigma: 0.1 }),
    });
    expect(check(j, 'p99_latency_ms')?.verdict).toBe('fail');
    expect(check(j, 'p99_latency_ms')?.message).toMatch(/by more than the 10 % margin .*policy "margin"/);
  });

  it('passes without a stable when within the SLO, skipping the comparisons', () => {
    const j = judgeCanary({ ...base, canary: revision('canary') });
    expect(j.verdict).toBe('pass');
    expect(j.checks.some((c) => c.metric.includes('vs_stable'))).toBe(false);
    expect(j.reasons.at(-1)).toMatch(/no stable revision to compare with/);
  });
});

describe('judgeCanary: errors', () => {
  it('does not pass 1 error in 30 against none on the stable (sparse counts)', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 30, errors: 1 }),
      stable: revision('stable', { requests: 30 }),
    });
    expect(j.verdict).toBe('inconclusive');
    const errors = check(j, 'error_rate_pct');
    expect(errors?.verdict).toBe('inconclusive');
    expect(errors?.message).toMatch(/too few requests to tell .*sparse errors are not a pass/);
    expect(errors?.statistics).toMatchObject({ errors1: 1, errors2: 0, n1: 30, n2: 30, alpha: 0.01 });
    expect(errors?.statistics?.pVsStable).toBeCloseTo(0.5, 12);
    expect(errors?.statistics?.pVsSlo).toBeCloseTo(0.2602996266117196, 12);
  });

  it('fails an error rate significantly over the SLO, or a canary failing every request', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 100, errors: 5 }),
      stable: revision('stable', { requests: 100 }),
    });
    expect(j.verdict).toBe('fail');
    expect(j.reasons[0]).toMatch(
      /canary error rate 5\.00 % \(5 of 100; stable 0 of 100\) over the 1 % limit, significantly \(binomial p=0\.0034 < 0\.01\)/,
    );
    const allFailed = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 100, errors: 100 }),
      stable: revision('stable', { requests: 100 }),
    });
    expect(allFailed.verdict).toBe('fail');
  });

  it('fails errors significantly above the stable even within the SLO', () => {
    const j = judgeCanary({
      ...base,
      slo: sloSchema.parse({ maxErrorRatePct: 5 }),
      canary: revision('canary', { requests: 1000, errors: 20 }),
      stable: revision('stable', { requests: 1000, errors: 1 }),
    });
    expect(check(j, 'error_rate_pct')?.verdict).toBe('fail');
    expect(j.reasons[0]).toMatch(/significantly above the stable's \(Fisher exact p=/);
  });

  it("passes errors shown under the SLO, or no higher than the stable's", () => {
    const shown = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 1000, errors: 3 }),
      stable: revision('stable', { requests: 1000 }),
    });
    expect(check(shown, 'error_rate_pct')?.verdict).toBe('pass');
    expect(check(shown, 'error_rate_pct')?.message).toMatch(/shown under the 1 % limit/);
    const likeStable = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 300, errors: 2 }),
      stable: revision('stable', { requests: 300, errors: 3 }),
    });
    expect(check(likeStable, 'error_rate_pct')?.verdict).toBe('pass');
  });
});

describe('judgeCanary: inconclusive, never pass', () => {
  it('is inconclusive with too few samples, never pass or fail', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 5, errors: 2, e2eMs: 900 }),
      stable: revision('stable'),
    });
    expect(j.verdict).toBe('inconclusive');
    expect(j.reasons[0]).toMatch(/too few samples: canary canary served 5 requests, 30 needed/);
    expect(j.checks.filter((c) => c.verdict === 'fail')).toEqual([]);
    const stableShort = judgeCanary({
      ...base,
      canary: revision('canary'),
      stable: revision('stable', { requests: 3 }),
    });
    expect(stableShort.verdict).toBe('inconclusive');
    expect(stableShort.reasons[0]).toMatch(/too few samples: stable/);
  });

  it('is inconclusive with zero samples', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 0 }),
      stable: revision('stable', { requests: 0 }),
    });
    expect(j.verdict).toBe('inconclusive');
    expect(j.checks.every((c) => c.verdict === 'inconclusive')).toBe(true);
  });

  it('is inconclusive when the samples hold NaN', () => {
    const canary = revision('canary');
    const e2e = canary.distributions?.e2e as LatencyDistribution;
    const bad = {
      ...canary,
      distributions: {
        ...canary.distributions,
        e2e: { ...e2e, values: [...e2e.values.slice(1), Number.NaN] },
      },
    };
    const j = judgeCanary({ ...base, canary: bad, stable: revision('stable') });
    expect(j.verdict).toBe('inconclusive');
    expect(check(j, 'e2e_vs_stable')?.message).toMatch(/canary E2E latency samples are malformed: value NaN/);
    expect(check(j, 'p99_latency_ms')?.verdict).toBe('inconclusive');
  });

  it('is inconclusive without latency samples (a summary alone is not comparable)', () => {
    const canary = { ...revision('canary'), distributions: undefined };
    const j = judgeCanary({ ...base, canary, stable: revision('stable') });
    expect(j.verdict).toBe('inconclusive');
    expect(check(j, 'e2e_vs_stable')?.message).toMatch(
      /E2E latency not comparable: no samples from the canary/,
    );
    // The absolute check still reads the exact summary.
    expect(check(j, 'p99_latency_ms')?.verdict).toBe('pass');
  });

  it('is inconclusive when the provider had a problem, with the problem as the headline', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 0 }),
      stable: revision('stable', { requests: 0 }),
      problems: ['provider error: Prometheus at http://127.0.0.1:1 unreachable'],
    });
    expect(j.verdict).toBe('inconclusive');
    expect(j.reasons[0]).toMatch(/provider error: Prometheus/);
  });

  it('judges nothing when the measurement itself is invalid (a model neither revision serves)', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', { requests: 100, errors: 100 }),
      stable: revision('stable', { requests: 100, errors: 100 }),
      invalidMeasurement: 'model "x" is served by neither revision',
    });
    expect(j.verdict).toBe('inconclusive');
    expect(j.checks).toHaveLength(1);
    expect(j.reasons[0]).toBe('model "x" is served by neither revision');
  });
});

describe('judgeCanary: histogram buckets (Prometheus)', () => {
  // vLLM's E2E buckets, seconds.
  const le = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, Number.POSITIVE_INFINITY];
  /** Cumulative buckets of values (ms). */
  const buckets = (values: number[]) =>
    le.map((bound) => ({ le: bound, count: values.filter((v) => v / 1000 <= bound).length + 0.3 }));
  const fromBuckets = (name: string, values: number[]): RevisionMeasurement => ({
    revision: name,
    requests: values.length,
    errors: 0,
    errorRatePct: 0,
    distributions: { e2e: distributionFromBuckets(buckets(values)) },
  });

  it('builds a bounded distribution from cumulative buckets', () => {
    const d = distributionFromBuckets([
      { le: 0.1, count: 2.4 },
      { le: 0.25, count: 9.6 },
      { le: Number.POSITIVE_INFINITY, count: 11 },
    ]);
    expect(d).toEqual({ binning: 'buckets', values: [100, 250, 500], counts: [2, 8, 1], overflowAtMs: 500 });
    expect(distributionFromBuckets([{ le: Number.POSITIVE_INFINITY, count: 0 }])).toBeUndefined();
  });

  it('passes equal revisions and fails a slower one, on the same code as per-request samples', () => {
    const slo2 = sloSchema.parse({ p99LatencyMs: 5000 });
    const equal = judgeCanary({
      ...base,
      slo: slo2,
      canary: fromBuckets('canary', lognormal(1, 300, 700, 0.4)),
      stable: fromBuckets('stable', lognormal(2, 300, 700, 0.4)),
    });
    expect(equal.verdict, equal.reasons.join('\n')).toBe('pass');
    const slow = judgeCanary({
      ...base,
      slo: slo2,
      canary: fromBuckets('canary', lognormal(1, 300, 1400, 0.4)),
      stable: fromBuckets('stable', lognormal(2, 300, 700, 0.4)),
    });
    expect(slow.verdict).toBe('fail');
    expect(check(slow, 'e2e_vs_stable')?.verdict).toBe('fail');
    expect(check(slow, 'e2e_vs_stable')?.statistics?.n1).toBe(300);
  });

  it('judges the p99 by its bucket: wholly within passes, straddling without a stable is inconclusive', () => {
    const within = judgeCanary({
      ...base,
      slo: sloSchema.parse({ p99LatencyMs: 1000 }),
      canary: fromBuckets('canary', lognormal(1, 300, 400, 0.2)),
    });
    expect(check(within, 'p99_latency_ms')?.verdict).toBe('pass');
    expect(check(within, 'p99_latency_ms')?.message).toMatch(
      /in the histogram bucket \(500\.0 ms, 800\.0 ms\] within the 1000 ms SLO/,
    );
    const straddle = judgeCanary({
      ...base,
      slo: sloSchema.parse({ p99LatencyMs: 700 }),
      canary: fromBuckets('canary', lognormal(1, 300, 400, 0.2)),
    });
    expect(straddle.verdict).toBe('inconclusive');
    expect(straddle.reasons[0]).toMatch(/the histogram buckets cannot tell whether it is over 700 ms/);
    const over = judgeCanary({
      ...base,
      slo: sloSchema.parse({ p99LatencyMs: 300 }),
      canary: fromBuckets('canary', lognormal(1, 300, 1200, 0.1)),
    });
    expect(check(over, 'p99_latency_ms')?.verdict).toBe('fail');
  });
});

describe('judgePolicy', () => {
  it('gives an SLO recorded before the judge settings existed their defaults', () => {
    const old = { p99LatencyMs: 300, maxErrorRatePct: 1, maxLatencyRatioVsStable: 1.5 } as Parameters<
      typeof judgePolicy
    >[0];
    expect(judgePolicy(old)).toEqual({
      p99LatencyMs: 300,
      maxErrorRatePct: 1,
      maxLatencyRatioVsStable: 1.5,
      alpha: 0.01,
      minLatencyEffectRatio: 1.2,
      absolutePolicy: 'worse-than-stable',
      absoluteMarginPct: 20,
    });
    // And an old spec still parses.
    expect(sloSchema.parse(old).alpha).toBe(0.01);
  });
});
