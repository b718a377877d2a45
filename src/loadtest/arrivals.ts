// Open-loop arrival times. Gaps between requests are gamma distributed with
// shape = burstiness and scale = 1 / (rate * burstiness), as vLLM's serving benchmark
// draws them: the mean gap is 1 / rate whatever the burstiness; burstiness 1 is a Poisson
// process, smaller values cluster arrivals, larger ones make them more regular.
// Seeded, so two runs with the same seed send the same sequence.

import { normal, type Random, seededRandom } from '../domain/random.js';

export { type Random, seededRandom };

/**
 * Gamma(shape, scale) sample, Marsaglia & Tsang (2000). For shape < 1 it samples
 * Gamma(shape + 1) and multiplies by U^(1/shape), the standard boost.
 */
export function sampleGamma(random: Random, shape: number, scale: number): number {
  if (!(shape > 0) || !(scale > 0)) throw new RangeError('gamma shape and scale must be > 0');
  if (shape < 1) {
    const u = 1 - random();
    return sampleGamma(random, shape + 1, scale) * u ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - random();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) {
      return d * v * scale;
    }
  }
}

/**
 * Intended send offsets in ms from the start of the test: 0-based absolute deadlines, so a
 * late timer never shifts later arrivals (each is due at its own offset, not "gap after
 * the previous send").
 */
export class ArrivalSchedule {
  private readonly random: Random;
  private readonly shape: number;
  private readonly scaleMs: number;
  private nextOffsetMs = 0;

  constructor(requestsPerSecond: number, burstiness: number, seed: number) {
    if (!(requestsPerSecond > 0)) throw new RangeError('requestsPerSecond must be > 0');
    if (!(burstiness > 0)) throw new RangeError('burstiness must be > 0');
    this.random = seededRandom(seed);
    this.shape = burstiness;
    this.scaleMs = 1000 / (requestsPerSecond * burstiness);
    // The first arrival is one gap in, as in vLLM's benchmark (no burst at t = 0).
    this.nextOffsetMs = this.gap();
  }

  private gap(): number {
    return sampleGamma(this.random, this.shape, this.scaleMs);
  }

  /** The offset of the next arrival (not consumed). */
  peek(): number {
    return this.nextOffsetMs;
  }

  /** Consumes and returns the next arrival offset. */
  next(): number {
    const offset = this.nextOffsetMs;
    this.nextOffsetMs += this.gap();
    return offset;
  }
}
