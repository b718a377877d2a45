import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  binomialTest,
  erfc,
  fisherExactGreater,
  hodgesLehmannRatio,
  mannWhitneyU,
  normalSf,
  quantileRanks,
  sampleProblem,
  type WeightedSample,
} from '../../../src/analysis/statistics.js';

// The judge's statistics against scipy's own values for the same inputs
// (test/fixtures/scipy-reference.json, written by scripts/scipy-reference.py and checked
// against real scipy by jobs/tests/test_scipy_reference.py).

interface Reference {
  scipy: string;
  mannWhitneyU: {
    name: string;
    x: WeightedSample;
    y: WeightedSample;
    n1: number;
    n2: number;
    u1: number;
    pGreater: number;
    pTwoSided: number;
  }[];
  fisherExactGreater: { table: [[number, number], [number, number]]; pGreater: number }[];
  binomialTest: { k: number; n: number; p: number; pGreater: number; pLess: number }[];
}

const reference = JSON.parse(
  readFileSync(new URL('../../fixtures/scipy-reference.json', import.meta.url), 'utf8'),
) as Reference;

/** Relative closeness, as numpy.isclose(actual, expected, rtol, atol=tiny). */
function expectClose(actual: number, expected: number, rel = 1e-9): void {
  const tolerance = Math.max(rel * Math.abs(expected), 1e-300);
  expect(
    Math.abs(actual - expected),
    `${actual} vs ${expected} (rel ${Math.abs(actual - expected) / Math.abs(expected)})`,
  ).toBeLessThanOrEqual(tolerance);
}

describe(`statistics match scipy ${reference.scipy}`, () => {
  it.each(reference.mannWhitneyU.map((c) => [c.name, c] as const))('Mann-Whitney U: %s', (_name, c) => {
    const r = mannWhitneyU(c.x, c.y);
    expect(r.n1).toBe(c.n1);
    expect(r.n2).toBe(c.n2);
    expect(r.u1).toBe(c.u1);
    expectClose(r.pGreater, c.pGreater);
    expectClose(r.pTwoSided, c.pTwoSided);
  });

  it.each(reference.fisherExactGreater.map((c) => [JSON.stringify(c.table), c] as const))(
    "Fisher's exact test (greater): %s",
    (_name, c) => {
      const [[a, b], [cc, d]] = c.table;
      expectClose(fisherExactGreater(a, b, cc, d), c.pGreater);
    },
  );

  it.each(reference.binomialTest.map((c) => [`${c.k}/${c.n} vs ${c.p}`, c] as const))(
    'binomial test: %s',
    (_name, c) => {
      const r = binomialTest(c.k, c.n, c.p);
      expectClose(r.pGreater, c.pGreater);
      expectClose(r.pLess, c.pLess);
    },
  );
});

describe('normal tail', () => {
  it('is accurate far into the tail (scipy.stats.norm.sf)', () => {
    expectClose(normalSf(0), 0.5, 1e-15);
    expectClose(normalSf(1.959963984540054), 0.025, 1e-12);
    expectClose(normalSf(5), 2.866515718791933e-7, 1e-12);
    expectClose(normalSf(10), 7.61985302416047e-24, 1e-12);
    expectClose(normalSf(-3), 0.9986501019683699, 1e-14);
    expect(normalSf(Number.POSITIVE_INFINITY)).toBe(0);
    expect(normalSf(Number.NEGATIVE_INFINITY)).toBe(1);
    expectClose(erfc(0.3), 0.6713732405408726, 1e-14);
  });
});

describe('Mann-Whitney U edge cases', () => {
  it('gives p = 1 when every value is tied, and no p at all without samples', () => {
    const tied = mannWhitneyU({ values: [5], counts: [30] }, { values: [5], counts: [30] });
    expect(tied.pGreater).toBe(1);
    expect(tied.pTwoSided).toBe(1);
    const empty = mannWhitneyU({ values: [], counts: [] }, { values: [5], counts: [3] });
    expect(empty.pGreater).toBe(1);
  });

  it('costs the number of distinct values, not of observations', () => {
    const huge = mannWhitneyU(
      { values: [10, 20], counts: [5e6, 5e6] },
      { values: [10, 20], counts: [6e6, 4e6] },
    );
    expect(huge.n1).toBe(1e7);
    expect(huge.pGreater).toBeLessThan(1e-100);
  });

  it('names malformed samples', () => {
    expect(sampleProblem({ values: [1, Number.NaN], counts: [1, 1] })).toMatch(/NaN is not a finite number/);
    expect(sampleProblem({ values: [1], counts: [-1] })).toMatch(/count -1/);
    expect(sampleProblem({ values: [1], counts: [] })).toMatch(/1 values but 0 counts/);
    expect(sampleProblem({ values: [1, 2], counts: [3, 0] })).toBeUndefined();
  });
});

describe('Hodges-Lehmann ratio', () => {
  it('recovers a scale factor with an interval around it', () => {
    const base = Array.from({ length: 200 }, (_, i) => 100 * Math.exp(((i % 40) - 20) / 40));
    const x: WeightedSample = { values: base.map((v) => v * 1.5), counts: base.map(() => 1) };
    const y: WeightedSample = { values: base, counts: base.map(() => 1) };
    const r = hodgesLehmannRatio(x, y);
    expect(r.estimate).toBeCloseTo(1.5, 6);
    expect(r.lower).toBeGreaterThan(1.3);
    expect(r.lower).toBeLessThan(1.5);
    expect(r.upper).toBeGreaterThan(1.5);
    expect(r.upper).toBeLessThan(1.7);
    expect(r.level).toBe(0.95);
  });

  it('is 1 for equal samples, its interval covering 1', () => {
    const s: WeightedSample = { values: [80, 100, 120, 150], counts: [10, 40, 30, 5] };
    const r = hodgesLehmannRatio(s, s);
    expect(r.estimate).toBe(1);
    expect(r.lower).toBeLessThanOrEqual(1);
    expect(r.upper).toBeGreaterThanOrEqual(1);
  });

  it('is NaN without samples', () => {
    expect(hodgesLehmannRatio({ values: [], counts: [] }, { values: [1], counts: [1] }).estimate).toBeNaN();
  });
});

describe('quantile intervals', () => {
  it('brackets the p99 with order statistics', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    const q = quantileRanks({ values, counts: values.map(() => 1) }, 0.99);
    expect(q?.estimate).toBe(99);
    expect(values[q?.lowerIndex ?? -1]).toBe(97);
    expect(values[q?.upperIndex ?? -1]).toBe(100);
  });

  it('reads weighted buckets', () => {
    const q = quantileRanks({ values: [10, 20, 40], counts: [50, 45, 5] }, 0.5);
    expect(q?.estimate).toBe(10);
    expect(quantileRanks({ values: [1], counts: [0] }, 0.5)).toBeUndefined();
  });
});
