// Smooth weighted round-robin (the nginx algorithm): every pick adds each weight to its
// entry's running score, takes the highest and subtracts the total from it. Over any
// window of sum(weights) picks each entry is chosen exactly `weight` times, evenly spread:
// 100 requests at a 10 % canary send exactly 10 to the canary, not "about 10".

export interface WeightedEntry<T> {
  item: T;
  weight: number;
}

export class SmoothWeightedRoundRobin<T> {
  private entries: Array<{ item: T; weight: number; current: number }> = [];
  private total = 0;

  constructor(entries: WeightedEntry<T>[] = []) {
    this.setWeights(entries);
  }

  /** Replaces the weights and restarts the cycle; zero weights are left out. */
  setWeights(entries: WeightedEntry<T>[]): void {
    for (const e of entries) {
      if (!Number.isInteger(e.weight) || e.weight < 0)
        throw new Error(`weight must be a whole number >= 0, got ${e.weight}`);
    }
    this.entries = entries
      .filter((e) => e.weight > 0)
      .map((e) => ({ item: e.item, weight: e.weight, current: 0 }));
    this.total = this.entries.reduce((sum, e) => sum + e.weight, 0);
  }

  /** The next target, or undefined when nothing has weight. */
  next(): T | undefined {
    let best: { item: T; weight: number; current: number } | undefined;
    for (const entry of this.entries) {
      entry.current += entry.weight;
      if (!best || entry.current > best.current) best = entry;
    }
    if (!best) return undefined;
    best.current -= this.total;
    return best.item;
  }
}
