// The statistics of the canary judge, pure and dependency-free: a Mann-Whitney U rank test
// and a Hodges-Lehmann effect size over weighted (binned) samples, quantile confidence
// intervals, and exact tests for rare events (Fisher's exact test, the binomial test).
//
// Samples are (value, count) pairs, so per-request latencies binned on a fine log grid and
// Prometheus histogram buckets (every observation of a bucket tied at its bound) feed the
// same code, and the cost depends on the number of distinct values, not of requests.
// test/unit/analysis/statistics.test.ts checks these functions against scipy's values
// (test/fixtures/scipy-reference.json, written by scripts/scipy-reference.py).

/** A weighted sample: values[i] was observed counts[i] times. Counts need not be integers. */
export interface WeightedSample {
  readonly values: readonly number[];
  readonly counts: readonly number[];
}

/** z of a two-sided 95 % normal interval (scipy.stats.norm.ppf(0.975)). */
export const Z_95 = 1.959963984540054;

// ---------------------------------------------------------------------------------------
// The normal distribution: erfc by W. J. Cody's rational Chebyshev approximations (SPECFUN
// CALERF, 1969/1990), accurate to double precision over the whole range, including the tail
// where 1 - erf(x) would lose every digit.

const ERF_A = [
  3.1611237438705655, 113.86415415105016, 377.485237685302, 3209.3775891384694, 0.18577770618460315,
];
const ERF_B = [23.601290952344122, 244.02463793444417, 1282.6165260773723, 2844.236833439171];
const ERF_C = [
  0.5641884969886701, 8.883149794388377, 66.11919063714163, 298.6351381974001, 881.952221241769,
  1712.0476126340707, 2051.0783778260716, 1230.3393547979972, 2.1531153547440383e-8,
];
const ERF_D = [
  15.744926110709835, 117.6939508913125, 537.1811018620099, 1621.3895745666903, 3290.7992357334597,
  4362.619090143247, 3439.3676741437216, 1230.3393548037495,
];
const ERF_P = [
  0.30532663496123236, 0.36034489994980445, 0.12578172611122926, 0.016083785148742275, 0.0006587491615298378,
  0.016315387137302097,
];
const ERF_Q = [
  2.568520192289822, 1.8729528499234604, 0.5279051029514285, 0.06051834131244132, 0.0023352049762686918,
];
const SQRT_PI_INV = 0.5641895835477563;

/** exp(-y^2) computed in two parts, as CALERF does, so large y keeps its precision. */
function expMinusSquare(y: number): number {
  const ysq = Math.trunc(y * 16) / 16;
  const del = (y - ysq) * (y + ysq);
  return Math.exp(-ysq * ysq) * Math.exp(-del);
}

/** The complementary error function. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  const y = Math.abs(x);
  let result: number;
  if (y <= 0.46875) {
    const ysq = y > 1.11e-16 ? y * y : 0;
    let num = (ERF_A[4] as number) * ysq;
    let den = ysq;
    for (let i = 0; i < 3; i++) {
      num = (num + (ERF_A[i] as number)) * ysq;
      den = (den + (ERF_B[i] as number)) * ysq;
    }
    return 1 - (x * (num + (ERF_A[3] as number))) / (den + (ERF_B[3] as number));
  }
  if (y <= 4) {
    let num = (ERF_C[8] as number) * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + (ERF_C[i] as number)) * y;
      den = (den + (ERF_D[i] as number)) * y;
    }
    result = ((num + (ERF_C[7] as number)) / (den + (ERF_D[7] as number))) * expMinusSquare(y);
  } else if (y >= 26.543) {
    result = 0;
  } else {
    const ysq = 1 / (y * y);
    let num = (ERF_P[5] as number) * ysq;
    let den = ysq;
    for (let i = 0; i < 4; i++) {
      num = (num + (ERF_P[i] as number)) * ysq;
      den = (den + (ERF_Q[i] as number)) * ysq;
    }
    const r = (ysq * (num + (ERF_P[4] as number))) / (den + (ERF_Q[4] as number));
    result = ((SQRT_PI_INV - r) / y) * expMinusSquare(y);
  }
  return x < 0 ? 2 - result : result;
}

/** P(Z > z) for a standard normal Z (scipy.stats.norm.sf, special.ndtr(-z)). */
export function normalSf(z: number): number {
  if (z === Number.POSITIVE_INFINITY) return 0;
  if (z === Number.NEGATIVE_INFINITY) return 1;
  return 0.5 * erfc(z / Math.SQRT2);
}

// ---------------------------------------------------------------------------------------
// Weighted samples

/** Sum of the counts. */
export function sampleSize(sample: WeightedSample): number {
  let n = 0;
  for (const c of sample.counts) n += c;
  return n;
}

/**
 * Why a sample cannot be judged (lengths differ, a value or count that is NaN, infinite or
 * negative), or undefined when it is well formed.
 */
export function sampleProblem(sample: WeightedSample): string | undefined {
  if (sample.values.length !== sample.counts.length)
    return `${sample.values.length} values but ${sample.counts.length} counts`;
  for (let i = 0; i < sample.values.length; i++) {
    const v = sample.values[i] as number;
    const c = sample.counts[i] as number;
    if (!Number.isFinite(v)) return `value ${v} is not a finite number`;
    if (!Number.isFinite(c) || c < 0) return `count ${c} of value ${v} is not a non-negative number`;
  }
  return undefined;
}

interface Merged {
  /** Distinct values, ascending. */
  values: number[];
  /** Weight of each value in the first and the second sample. */
  a: number[];
  b: number[];
}

/** Both samples on one sorted axis of distinct values; zero counts are dropped. */
function merge(x: WeightedSample, y: WeightedSample): Merged {
  const map = new Map<number, [number, number]>();
  const add = (s: WeightedSample, side: 0 | 1) => {
    for (let i = 0; i < s.values.length; i++) {
      const c = s.counts[i] as number;
      if (!(c > 0)) continue;
      const v = s.values[i] as number;
      const entry = map.get(v) ?? [0, 0];
      entry[side] += c;
      map.set(v, entry);
    }
  };
  add(x, 0);
  add(y, 1);
  const values = [...map.keys()].sort((p, q) => p - q);
  return {
    values,
    a: values.map((v) => (map.get(v) as [number, number])[0]),
    b: values.map((v) => (map.get(v) as [number, number])[1]),
  };
}

export interface MannWhitneyResult {
  /** Sizes of x (the canary) and y (the stable). */
  n1: number;
  n2: number;
  /** U of x: pairs where x > y, ties counting one half (scipy's returned statistic). */
  u1: number;
  /** U of y: n1 * n2 - u1. */
  u2: number;
  /** Standardised U1 with tie and continuity corrections, for "x greater". */
  z: number;
  /** One-sided p-value, alternative "x is stochastically greater than y". */
  pGreater: number;
  /** Two-sided p-value. */
  pTwoSided: number;
  /** Sum of t^3 - t over groups of tied values (the tie correction). */
  tieTerm: number;
  /** Standard deviation of U under the null, tie-corrected. */
  sigma: number;
}

/**
 * Mann-Whitney U test of x against y with the normal approximation, tie correction and
 * continuity correction: what scipy.stats.mannwhitneyu(x, y, method='asymptotic',
 * use_continuity=True) returns for the expanded samples. O(b log b) in the number b of
 * distinct values.
 */
export function mannWhitneyU(x: WeightedSample, y: WeightedSample): MannWhitneyResult {
  const m = merge(x, y);
  let n1 = 0;
  let n2 = 0;
  let u1 = 0;
  let tieTerm = 0;
  for (let i = 0; i < m.values.length; i++) {
    const a = m.a[i] as number;
    const b = m.b[i] as number;
    // Every x at this value beats every y seen so far, and ties with the y's here.
    u1 += a * n2 + 0.5 * a * b;
    n1 += a;
    n2 += b;
    const t = a + b;
    tieTerm += t * t * t - t;
  }
  const u2 = n1 * n2 - u1;
  const n = n1 + n2;
  const mu = (n1 * n2) / 2;
  const variance = n > 1 ? ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))) : 0;
  const sigma = variance > 0 ? Math.sqrt(variance) : 0;
  // scipy: z = (U - mu - 0.5) / sigma, p = sf(z); all values tied (sigma 0) gives p = 1.
  const pFor = (u: number): { z: number; p: number } => {
    if (sigma === 0 || n1 === 0 || n2 === 0) return { z: Number.NaN, p: 1 };
    const z = (u - mu - 0.5) / sigma;
    return { z, p: Math.min(1, Math.max(0, normalSf(z))) };
  };
  const greater = pFor(u1);
  const twoSided = pFor(Math.max(u1, u2));
  return {
    n1,
    n2,
    u1,
    u2,
    z: greater.z,
    pGreater: greater.p,
    pTwoSided: Math.min(1, 2 * twoSided.p),
    tieTerm,
    sigma,
  };
}

export interface RatioEstimate {
  /** Point estimate of the ratio x / y. */
  estimate: number;
  /** Confidence interval of the ratio. */
  lower: number;
  upper: number;
  /** Confidence level of the interval, e.g. 0.95. */
  level: number;
}

/** Values at or below this are treated as this in log space (a zero latency is ~1 µs). */
const LOG_FLOOR = 1e-3;

/**
 * Hodges-Lehmann shift of log(x) against log(y), as a ratio x / y: the median of all
 * pairwise ratios, with the distribution-free (Moses) confidence interval from order
 * statistics of the pairwise differences, the rank taken from the normal approximation of
 * U (tie-corrected). Pairs are formed between distinct values with weight count_x * count_y,
 * so the cost is O(b_x * b_y * log) in the numbers of distinct values: keep them bounded.
 */
export function hodgesLehmannRatio(
  x: WeightedSample,
  y: WeightedSample,
  z = Z_95,
  level = 0.95,
): RatioEstimate {
  const xs = compact(x);
  const ys = compact(y);
  const n1 = xs.total;
  const n2 = ys.total;
  if (n1 <= 0 || n2 <= 0) return { estimate: Number.NaN, lower: Number.NaN, upper: Number.NaN, level };
  const pairs: { d: number; w: number }[] = [];
  for (let i = 0; i < xs.logs.length; i++) {
    for (let j = 0; j < ys.logs.length; j++) {
      pairs.push({
        d: (xs.logs[i] as number) - (ys.logs[j] as number),
        w: (xs.w[i] as number) * (ys.w[j] as number),
      });
    }
  }
  pairs.sort((p, q) => p.d - q.d);
  const total = n1 * n2;
  // The k-th smallest pairwise difference (1-based rank, weights as multiplicities).
  const orderStat = (k: number): number => {
    const rank = Math.min(total, Math.max(1, k));
    let cumulative = 0;
    for (const p of pairs) {
      cumulative += p.w;
      if (cumulative >= rank - 1e-9 * total) return p.d;
    }
    return (pairs[pairs.length - 1] as { d: number }).d;
  };
  const median = (orderStat(Math.floor((total + 1) / 2)) + orderStat(Math.ceil((total + 1) / 2))) / 2;
  const { sigma } = mannWhitneyU(x, y);
  const c = Math.max(1, Math.floor(total / 2 - z * sigma));
  return {
    estimate: Math.exp(median),
    lower: Math.exp(orderStat(c)),
    upper: Math.exp(orderStat(total - c + 1)),
    level,
  };
}

function compact(s: WeightedSample): { logs: number[]; w: number[]; total: number } {
  const byValue = new Map<number, number>();
  for (let i = 0; i < s.values.length; i++) {
    const c = s.counts[i] as number;
    if (!(c > 0)) continue;
    const v = Math.log(Math.max(LOG_FLOOR, s.values[i] as number));
    byValue.set(v, (byValue.get(v) ?? 0) + c);
  }
  const logs = [...byValue.keys()];
  const w = logs.map((v) => byValue.get(v) as number);
  return { logs, w, total: w.reduce((a, b) => a + b, 0) };
}

export interface QuantileInterval {
  /** The sample quantile: the value holding rank ceil(q * n). */
  estimate: number;
  /** Distribution-free confidence interval: values at order-statistic ranks from Binomial(n, q). */
  lowerRank: number;
  upperRank: number;
  lowerIndex: number;
  upperIndex: number;
  estimateIndex: number;
}

/**
 * The q-quantile of a weighted sample with a distribution-free confidence interval (normal
 * approximation of the Binomial(n, q) count below the quantile). Returns indexes into the
 * sample's sorted distinct values, so the caller can read bucket edges.
 */
export function quantileRanks(sample: WeightedSample, q: number, z = Z_95): QuantileInterval | undefined {
  const order = sample.values
    .map((v, i) => ({ v, c: sample.counts[i] as number, i }))
    .filter((e) => e.c > 0)
    .sort((a, b) => a.v - b.v);
  const n = order.reduce((s, e) => s + e.c, 0);
  if (n <= 0) return undefined;
  const spread = z * Math.sqrt(n * q * (1 - q));
  const lowerRank = Math.max(1, Math.floor(n * q - spread));
  const upperRank = Math.min(n, Math.ceil(n * q + spread) + 1);
  const estimateRank = Math.max(1, Math.ceil(n * q));
  const at = (rank: number): number => {
    let cumulative = 0;
    for (const e of order) {
      cumulative += e.c;
      if (cumulative >= rank - 1e-9) return e.i;
    }
    return (order[order.length - 1] as { i: number }).i;
  };
  const estimateIndex = at(estimateRank);
  return {
    estimate: sample.values[estimateIndex] as number,
    lowerRank,
    upperRank,
    lowerIndex: at(lowerRank),
    upperIndex: at(upperRank),
    estimateIndex,
  };
}

// ---------------------------------------------------------------------------------------
// Rare events

/**
 * Sum of a discrete distribution's terms over [from, to] divided by the sum over its whole
 * support [lo, hi], with the terms built by ratio recurrence from the mode (no factorials,
 * no loss of precision for large counts). `ratio(k)` is pmf(k + 1) / pmf(k).
 */
function tailFraction(
  lo: number,
  hi: number,
  mode: number,
  ratio: (k: number) => number,
  from: number,
  to: number,
): number {
  if (from > to || to < lo || from > hi) return 0;
  let total = 1;
  let part = mode >= from && mode <= to ? 1 : 0;
  let term = 1;
  for (let k = mode; k < hi; k++) {
    term *= ratio(k);
    if (term === 0) break;
    total += term;
    if (k + 1 >= from && k + 1 <= to) part += term;
    if (term < 1e-300) break;
  }
  term = 1;
  for (let k = mode - 1; k >= lo; k--) {
    term /= ratio(k);
    if (term === 0 || !Number.isFinite(term)) break;
    total += term;
    if (k >= from && k <= to) part += term;
    if (term < 1e-300) break;
  }
  return Math.min(1, part / total);
}

export interface BinomialTestResult {
  /** P(X >= k): scipy.stats.binomtest(k, n, p, alternative='greater').pvalue */
  pGreater: number;
  /** P(X <= k): scipy.stats.binomtest(k, n, p, alternative='less').pvalue */
  pLess: number;
}

/** Exact binomial test of k successes in n trials against probability p. O(n) at worst. */
export function binomialTest(k: number, n: number, p: number): BinomialTestResult {
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 0 || n < 0 || k > n || !(p >= 0 && p <= 1)) {
    return { pGreater: Number.NaN, pLess: Number.NaN };
  }
  if (p === 0) return { pGreater: k === 0 ? 1 : 0, pLess: 1 };
  if (p === 1) return { pGreater: 1, pLess: k === n ? 1 : 0 };
  const mode = Math.min(n, Math.floor((n + 1) * p));
  const odds = p / (1 - p);
  const ratio = (j: number) => ((n - j) / (j + 1)) * odds;
  return {
    pGreater: k === 0 ? 1 : tailFraction(0, n, mode, ratio, k, n),
    pLess: k === n ? 1 : tailFraction(0, n, mode, ratio, 0, k),
  };
}

/**
 * Fisher's exact test, one-sided: is the first row's rate of the first column greater than
 * the second row's? Table [[a, b], [c, d]] = [[canary errors, canary successes], [stable
 * errors, stable successes]]. What scipy.stats.fisher_exact(table, alternative='greater')
 * returns as its p-value: P(X >= a) for the hypergeometric X of the first cell given the
 * margins. O(min(a + c, a + b)).
 */
export function fisherExactGreater(a: number, b: number, c: number, d: number): number {
  for (const v of [a, b, c, d]) if (!Number.isInteger(v) || v < 0) return Number.NaN;
  const total = a + b + c + d;
  const firstRow = a + b;
  const firstColumn = a + c;
  if (firstRow === 0 || firstColumn === 0 || firstRow === total || firstColumn === total) return 1;
  const lo = Math.max(0, firstRow - (total - firstColumn));
  const hi = Math.min(firstRow, firstColumn);
  const mode = Math.min(hi, Math.max(lo, Math.floor(((firstRow + 1) * (firstColumn + 1)) / (total + 2))));
  const ratio = (k: number) =>
    ((firstColumn - k) * (firstRow - k)) / ((k + 1) * (total - firstColumn - firstRow + k + 1));
  return tailFraction(lo, hi, mode, ratio, a, hi);
}
