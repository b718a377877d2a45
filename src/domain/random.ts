import { fnv1a32 } from './names.js';

// Seeded, allocation-free randomness (serving simulator jitter, load-test arrivals and
// prompt order, simulated Jobs). Not cryptographic: the point is reproducibility, the same
// seed giving the same stream on every machine.

export type Random = () => number;

/** mulberry32: a tiny 32-bit PRNG, uniform in [0, 1). */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 32-bit seed from text (FNV-1a), so a string key picks a reproducible stream. */
export function seedFromText(text: string): number {
  return Number.parseInt(fnv1a32(text), 16);
}

/** Standard normal sample (Box-Muller, one of the pair). */
export function normal(random: Random): number {
  const u = 1 - random(); // (0, 1]: log(0) never happens
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Lognormal sample whose MEAN is `mean` (not its median): exp(sigma z - sigma^2 / 2) has
 * mean 1, so jitter never shifts the average the timing model promises.
 */
export function lognormalAround(random: Random, mean: number, sigma: number): number {
  if (mean <= 0) return 0;
  if (sigma <= 0) return mean;
  return mean * Math.exp(sigma * normal(random) - (sigma * sigma) / 2);
}
