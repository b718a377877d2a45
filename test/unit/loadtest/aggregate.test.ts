import { describe, expect, it } from 'vitest';
import { goodputLimitsFromSlo, LoadAggregator } from '../../../src/loadtest/aggregate.js';
import type { RequestRecord } from '../../../src/loadtest/request.js';
import { evaluateSlo } from '../../../src/loadtest/slo.js';

function ok(
  intendedMs: number,
  ttftMs: number,
  e2eMs: number,
  outputTokens: number,
  queueMs = 0,
): RequestRecord {
  return {
    intendedMs,
    sentMs: intendedMs + queueMs,
    finishedMs: intendedMs + e2eMs,
    ok: true,
    status: 200,
    ttftMs,
    e2eMs,
    tpotMs: outputTokens > 1 ? (e2eMs - ttftMs) / (outputTokens - 1) : undefined,
    itlMs: Array.from({ length: outputTokens - 1 }, () => (e2eMs - ttftMs) / (outputTokens - 1)),
    chunks: outputTokens,
    inputTokens: 10,
    outputTokens,
    tokenSource: 'usage',
  };
}

function failed(
  intendedMs: number,
  errorClass: RequestRecord['errorClass'],
  retryAfterSeconds?: number,
): RequestRecord {
  return {
    intendedMs,
    sentMs: intendedMs,
    finishedMs: intendedMs + 5,
    ok: false,
    status: errorClass === 'rate_limited' ? 429 : undefined,
    errorClass,
    error: `failed: ${errorClass}`,
    retryAfterSeconds,
    itlMs: [],
    chunks: 0,
    tokenSource: 'none',
  };
}

describe('LoadAggregator', () => {
  it('computes percentiles within HDR resolution, throughput, tokens and goodput', () => {
    const aggregator = new LoadAggregator(0, 1, goodputLimitsFromSlo({ p99E2eMs: 500, p50TtftMs: 40 }));
    // 1000 requests over 10 s: e2e 1..1000 ms, ttft e2e/10, 11 output tokens each.
    for (let i = 1; i <= 1000; i++) aggregator.add(ok(i * 10 - 10, i / 10, i, 11, i % 7));
    aggregator.add(failed(50, 'rate_limited', 3));
    aggregator.add(failed(60, 'connection_reset'));
    aggregator.add(failed(70, 'connection_reset'));
    const result = aggregator.finish();
    expect(result.requests).toBe(1003);
    expect(result.ok).toBe(1000);
    expect(result.failed).toBe(3);
    expect(result.errorRatePct).toBeCloseTo((3 / 1003) * 100, 2);
    expect(result.errors.byClass).toEqual({ rate_limited: 1, connection_reset: 2 });
    expect(result.errors.maxRetryAfterSeconds).toBe(3);
    expect(result.errors.samples.map((s) => s.errorClass)).toEqual([
      'rate_limited',
      'connection_reset',
      'connection_reset',
    ]);
    const e2e = result.latency.e2e!;
    expect(e2e.count).toBe(1000);
    expect(e2e.p50Ms).toBeCloseTo(500, -0.5);
    expect(Math.abs(e2e.p99Ms - 990) / 990).toBeLessThan(0.002);
    expect(e2e.maxMs).toBeCloseTo(1000, 0);
    expect(result.latency.ttft!.p99Ms).toBeCloseTo(99, 0);
    // TPOT = (e2e - ttft) / (11 - 1); ITL = one gap per chunk after the first.
    expect(result.latency.tpot!.p50Ms).toBeCloseTo((500 - 50) / 10, 0);
    expect(result.latency.itl!.count).toBe(10_000);
    expect(result.latency.queue!.maxMs).toBeCloseTo(6, 1);
    expect(result.tokens).toMatchObject({
      input: 10_000,
      output: 11_000,
      meanOutput: 11,
      sources: { usage: 1000, estimate: 0, none: 0 },
    });
    // Goodput: e2e <= 500 and ttft <= 40 (ttft = e2e / 10 -> e2e <= 400): 400 of 1003 requests.
    expect(result.goodput.limits).toEqual({ ttftMs: 40, e2eMs: 500 });
    expect(result.goodput.requests).toBe(400);
    expect(result.goodput.pct).toBeCloseTo((400 / 1003) * 100, 2);
    expect(result.throughput.requestsPerSecond).toBeCloseTo(1000 / result.durationSeconds, 2);
    // CDF: monotone in both coordinates, ending at 1.
    const cdf = result.cdf.e2e!;
    for (let i = 1; i < cdf.length; i++) {
      expect(cdf[i]![0]).toBeGreaterThan(cdf[i - 1]![0]);
      expect(cdf[i]![1]).toBeGreaterThan(cdf[i - 1]![1]);
    }
    expect(cdf.at(-1)![1]).toBe(1);
  });

  it('buckets the timeline by send time (latency) and completion time (throughput)', () => {
    const aggregator = new LoadAggregator(1000, 1, {});
    aggregator.add(ok(1100, 10, 50, 5));
    aggregator.add(ok(1200, 20, 2000, 5)); // sent in second 0, finishes in second 2
    aggregator.add(failed(2500, 'http_5xx'));
    const { timeline } = aggregator.finish();
    expect(timeline.map((b) => [b.started, b.completed, b.errors])).toEqual([
      [2, 1, 0],
      [1, 0, 1],
      [0, 1, 0],
    ]);
    // Timeline buckets keep 2 significant digits (1 %): enough for a chart.
    expect(Math.abs(timeline[0]!.e2eP99Ms! - 2000) / 2000).toBeLessThan(0.01);
    expect(timeline[0]!.outputTokens).toBe(5);
  });

  it('counts requests without a successful answer as not good and leaves latency empty', () => {
    const aggregator = new LoadAggregator(0, 1, goodputLimitsFromSlo({ p99E2eMs: 100 }));
    aggregator.add(failed(0, 'html_error_page'));
    const result = aggregator.finish();
    expect(result.latency).toEqual({ queue: expect.any(Object) });
    expect(result.goodput.requests).toBe(0);
    const slo = evaluateSlo({ p99E2eMs: 100, maxErrorRatePct: 1 }, result);
    expect(slo.passed).toBe(false);
    expect(slo.results[0]).toMatchObject({ key: 'p99E2eMs', met: false });
    expect(slo.results[0]!.message).toMatch(/not measured \(no successful requests\)/);
    expect(slo.results[1]).toMatchObject({ key: 'maxErrorRatePct', observed: 100, met: false });
  });
});

describe('evaluateSlo', () => {
  it('marks each objective met or missed with the observed value', () => {
    const aggregator = new LoadAggregator(0, 1, {});
    for (let i = 1; i <= 100; i++) aggregator.add(ok(i * 10, 20, 100 + i, 10));
    const result = aggregator.finish();
    const slo = evaluateSlo(
      { p99E2eMs: 300, p50TtftMs: 10, maxErrorRatePct: 0, minOutputTokensPerSecond: 1 },
      result,
    );
    expect(slo.passed).toBe(false);
    const byKey = Object.fromEntries(slo.results.map((r) => [r.key, r]));
    expect(byKey.p99E2eMs).toMatchObject({ met: true, comparator: '<=', threshold: 300 });
    expect(byKey.p50TtftMs).toMatchObject({ met: false });
    expect(byKey.p50TtftMs!.message).toMatch(/p50 TTFT 20(\.0+)? ms misses SLO <= 10 ms/);
    expect(byKey.maxErrorRatePct).toMatchObject({ met: true, observed: 0 });
    expect(byKey.minOutputTokensPerSecond).toMatchObject({ met: true, comparator: '>=' });
    expect(evaluateSlo({}, result)).toEqual({ passed: true, results: [] });
  });
});
