// Ground-truth latencies measured inside the simulator, for comparing a client's numbers
// with what the server saw. Exact percentiles (nearest rank) over every sample kept.

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  max: number;
}

export class LatencySamples {
  private values = new Float64Array(1024);
  private length = 0;

  add(value: number): void {
    if (this.length === this.values.length) {
      const grown = new Float64Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[this.length++] = value;
  }

  reset(): void {
    this.length = 0;
  }

  get count(): number {
    return this.length;
  }

  summary(): LatencySummary {
    if (this.length === 0) return { count: 0, p50: 0, p90: 0, p99: 0, mean: 0, max: 0 };
    const sorted = this.values.slice(0, this.length).sort();
    let sum = 0;
    for (const v of sorted) sum += v;
    const rank = (q: number) =>
      sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
    return {
      count: sorted.length,
      p50: rank(0.5),
      p90: rank(0.9),
      p99: rank(0.99),
      mean: sum / sorted.length,
      max: sorted[sorted.length - 1] as number,
    };
  }
}
