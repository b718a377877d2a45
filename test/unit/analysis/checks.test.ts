import { describe, expect, it } from 'vitest';
import { judgeCanary } from '../../../src/analysis/checks.js';
import type { LatencySummary, RevisionMeasurement } from '../../../src/domain/analysis.js';
import { sloSchema } from '../../../src/domain/promotion-spec.js';

const slo = sloSchema.parse({ p99LatencyMs: 300, maxErrorRatePct: 1, maxLatencyRatioVsStable: 1.5 });

function latency(p99Ms: number, count = 100): LatencySummary {
  return {
    count,
    meanMs: p99Ms / 2,
    p50Ms: p99Ms / 2,
    p90Ms: p99Ms * 0.8,
    p95Ms: p99Ms * 0.9,
    p99Ms,
    maxMs: p99Ms * 1.1,
  };
}

function revision(
  name: string,
  p99Ms: number,
  options: { requests?: number; errors?: number; ttftP99Ms?: number } = {},
): RevisionMeasurement {
  const requests = options.requests ?? 100;
  const errors = options.errors ?? 0;
  return {
    revision: name,
    requests,
    errors,
    errorRatePct: requests > 0 ? (errors / requests) * 100 : 0,
    latency: requests - errors > 0 ? latency(p99Ms, requests - errors) : undefined,
    ttft: requests - errors > 0 ? latency(options.ttftP99Ms ?? p99Ms / 4, requests - errors) : undefined,
  };
}

const base = { slo, minSamples: 30, source: 'test', latencyNoiseFloorMs: 10 };

describe('judgeCanary', () => {
  it('passes a canary equal to the stable', () => {
    const j = judgeCanary({ ...base, canary: revision('canary', 120), stable: revision('stable', 118) });
    expect(j.verdict).toBe('pass');
    expect(j.checks.every((c) => c.verdict === 'pass')).toBe(true);
    expect(j.checks.map((c) => c.metric)).toEqual([
      'canary_samples',
      'stable_samples',
      'error_rate_pct',
      'p99_latency_ms',
      'p99_latency_ratio_vs_stable',
      'p99_ttft_ratio_vs_stable',
    ]);
    expect(j.reasons[0]).toMatch(/canary canary passed 6 checks/);
  });

  it('fails a canary with twice the stable latency, with the ratio as the headline', () => {
    const j = judgeCanary({ ...base, canary: revision('canary', 240), stable: revision('stable', 120) });
    expect(j.verdict).toBe('fail');
    expect(j.reasons[0]).toMatch(/canary p99 E2E 240\.0 ms is 2\.00x the stable's 120\.0 ms \(limit 1\.5x\)/);
    expect(j.checks.find((c) => c.metric === 'p99_latency_ratio_vs_stable')).toMatchObject({
      value: 2,
      verdict: 'fail',
    });
  });

  it('fails on TTFT alone when first tokens regress but short answers hide it in E2E', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', 130, { ttftP99Ms: 80 }),
      stable: revision('stable', 110, { ttftP99Ms: 30 }),
    });
    expect(j.verdict).toBe('fail');
    expect(j.reasons[0]).toMatch(/p99 TTFT/);
  });

  it('ignores ratios within the noise floor', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', 12, { ttftP99Ms: 4 }),
      stable: revision('stable', 6, { ttftP99Ms: 2 }),
    });
    expect(j.verdict).toBe('pass');
    expect(j.reasons.join(' ')).toMatch(/within the 10 ms noise floor/);
  });

  it('fails on the absolute SLO and on the error rate', () => {
    expect(
      judgeCanary({ ...base, canary: revision('canary', 350), stable: revision('stable', 340) }).reasons[0],
    ).toMatch(/p99 E2E 350\.0 ms over the 300 ms SLO/);
    const errors = judgeCanary({
      ...base,
      canary: revision('canary', 100, { errors: 5 }),
      stable: revision('stable', 100),
    });
    expect(errors.verdict).toBe('fail');
    expect(errors.reasons[0]).toMatch(/canary error rate 5\.00 % \(5 of 100\) over the 1 % limit/);
    // A canary failing everything fails (not inconclusive): there are samples, all errors.
    const allFailed = judgeCanary({
      ...base,
      canary: revision('canary', 100, { errors: 100 }),
      stable: revision('stable', 100),
    });
    expect(allFailed.verdict).toBe('fail');
  });

  it('is inconclusive with too few samples, never pass or fail', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', 900, { requests: 5, errors: 2 }),
      stable: revision('stable', 100),
    });
    expect(j.verdict).toBe('inconclusive');
    expect(j.reasons[0]).toMatch(/too few samples: canary canary served 5 requests, 30 needed/);
    expect(j.checks.filter((c) => c.verdict === 'fail')).toEqual([]);
    const stableShort = judgeCanary({
      ...base,
      canary: revision('canary', 100),
      stable: revision('stable', 100, { requests: 3 }),
    });
    expect(stableShort.verdict).toBe('inconclusive');
    expect(stableShort.reasons[0]).toMatch(/too few samples: stable/);
  });

  it('is inconclusive when the provider had a problem, with the problem as the headline', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', 0, { requests: 0 }),
      stable: revision('stable', 0, { requests: 0 }),
      problems: ['provider error: Prometheus at http://127.0.0.1:1 unreachable'],
    });
    expect(j.verdict).toBe('inconclusive');
    expect(j.reasons[0]).toMatch(/provider error: Prometheus/);
  });

  it('judges nothing when the measurement itself is invalid (a model neither revision serves)', () => {
    const j = judgeCanary({
      ...base,
      canary: revision('canary', 100, { errors: 100 }),
      stable: revision('stable', 100, { errors: 100 }),
      invalidMeasurement: 'model "x" is served by neither revision',
    });
    expect(j.verdict).toBe('inconclusive');
    expect(j.checks).toHaveLength(1);
    expect(j.reasons[0]).toBe('model "x" is served by neither revision');
  });

  it('skips the ratio, saying so, when there is no stable revision', () => {
    const j = judgeCanary({ ...base, canary: revision('canary', 100) });
    expect(j.verdict).toBe('pass');
    expect(j.checks.some((c) => c.metric.includes('ratio'))).toBe(false);
    expect(j.reasons.at(-1)).toMatch(/no stable revision to compare with/);
  });

  it('judges histogram p99s by their bucket: straddling the SLO is inconclusive', () => {
    const canary = revision('canary', 297);
    const within = judgeCanary({ ...base, canary, canaryE2eBounds: { lowerMs: 0, upperMs: 300 } });
    expect(within.checks.find((c) => c.metric === 'p99_latency_ms')?.verdict).toBe('pass');
    const over = judgeCanary({
      ...base,
      canary: revision('canary', 420),
      canaryE2eBounds: { lowerMs: 300, upperMs: 500 },
    });
    expect(over.checks.find((c) => c.metric === 'p99_latency_ms')?.verdict).toBe('fail');
    const straddle = judgeCanary({
      ...base,
      canary: revision('canary', 290),
      canaryE2eBounds: { lowerMs: 250, upperMs: 500 },
    });
    expect(straddle.verdict).toBe('inconclusive');
    expect(straddle.reasons[0]).toMatch(/between 250\.0 ms and 500\.0 ms: the histogram buckets cannot tell/);
  });
});
