import { describe, expect, it } from 'vitest';
import { bucketsFromVector, histogramQuantile } from '../../../src/analysis/prometheus-client.js';

const vector = (pairs: [string, number][]) => pairs.map(([le, value]) => ({ metric: { le }, value }));

describe('histogramQuantile (Prometheus semantics)', () => {
  it('interpolates linearly inside the bucket and reports the bucket', () => {
    // 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.5], 10 in (0.5, 1].
    const buckets = bucketsFromVector(
      vector([
        ['+Inf', 100],
        ['0.5', 90],
        ['0.1', 50],
        ['1', 100],
      ]),
    );
    expect(buckets.map((b) => b.le)).toEqual([0.1, 0.5, 1, Number.POSITIVE_INFINITY]);
    expect(histogramQuantile(0.5, buckets)).toEqual({ value: 0.1, lower: 0, upper: 0.1 });
    expect(histogramQuantile(0.7, buckets)?.value).toBeCloseTo(0.1 + 0.4 * (20 / 40), 9);
    expect(histogramQuantile(0.99, buckets)).toMatchObject({ lower: 0.5, upper: 1 });
    expect(histogramQuantile(0.99, buckets)?.value).toBeCloseTo(0.5 + 0.5 * (9 / 10), 9);
  });

  it('returns the highest finite bound for a quantile in the +Inf bucket', () => {
    const buckets = bucketsFromVector(
      vector([
        ['0.3', 10],
        ['+Inf', 100],
      ]),
    );
    expect(histogramQuantile(0.99, buckets)).toEqual({
      value: 0.3,
      lower: 0.3,
      upper: Number.POSITIVE_INFINITY,
    });
  });

  it('has no answer without observations or without a +Inf bucket', () => {
    expect(
      histogramQuantile(
        0.99,
        bucketsFromVector(
          vector([
            ['0.1', 0],
            ['+Inf', 0],
          ]),
        ),
      ),
    ).toBeUndefined();
    expect(histogramQuantile(0.99, bucketsFromVector(vector([['0.1', 5]])))).toBeUndefined();
  });

  it('smooths cumulative counts that dip after increase() extrapolation', () => {
    const buckets = bucketsFromVector(
      vector([
        ['0.1', 10.4],
        ['0.2', 10.1],
        ['+Inf', 12],
      ]),
    );
    expect(buckets.map((b) => b.count)).toEqual([10.4, 10.4, 12]);
  });
});
