import { describe, expect, it } from 'vitest';
import { ArrivalSchedule, sampleGamma, seededRandom } from '../../../src/loadtest/arrivals.js';

function gapStats(rate: number, burstiness: number, n = 40_000) {
  const schedule = new ArrivalSchedule(rate, burstiness, 7);
  const offsets = Array.from({ length: n + 1 }, () => schedule.next());
  const gaps = offsets.slice(1).map((o, i) => o - (offsets[i] as number));
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  const variance = gaps.reduce((a, b) => a + (b - mean) ** 2, 0) / gaps.length;
  return { mean, cv: Math.sqrt(variance) / mean, gaps };
}

describe('arrival schedule', () => {
  it('has mean gap 1/rate whatever the burstiness, and CV 1/sqrt(burstiness) (gamma)', () => {
    for (const burstiness of [0.25, 1, 4]) {
      const { mean, cv } = gapStats(50, burstiness);
      expect(mean).toBeGreaterThan(20 * 0.96);
      expect(mean).toBeLessThan(20 * 1.04);
      expect(cv).toBeGreaterThan((1 / Math.sqrt(burstiness)) * 0.93);
      expect(cv).toBeLessThan((1 / Math.sqrt(burstiness)) * 1.07);
    }
  });

  it('gives absolute, increasing deadlines and the same sequence for the same seed', () => {
    const a = new ArrivalSchedule(1000, 1, 42);
    const b = new ArrivalSchedule(1000, 1, 42);
    const c = new ArrivalSchedule(1000, 1, 43);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(Array.from({ length: 1000 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c.next())).not.toEqual(xs);
    for (let i = 1; i < xs.length; i++) expect(xs[i]).toBeGreaterThanOrEqual(xs[i - 1] as number);
    // peek() does not consume.
    const next = a.peek();
    expect(a.next()).toBe(next);
  });

  it('refuses a zero or negative rate and burstiness', () => {
    expect(() => new ArrivalSchedule(0, 1, 1)).toThrow(/requestsPerSecond must be > 0/);
    expect(() => new ArrivalSchedule(-5, 1, 1)).toThrow(/requestsPerSecond must be > 0/);
    expect(() => new ArrivalSchedule(5, 0, 1)).toThrow(/burstiness must be > 0/);
    expect(() => sampleGamma(seededRandom(1), -1, 1)).toThrow(/> 0/);
  });
});
