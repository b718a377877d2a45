// Latency distributions small enough to keep with every canary analysis: observations
// binned as (value, count) pairs. Two sources make them:
// - per-request figures (the probe client): a log grid of 1 % bins from 1 µs, each bin
//   standing at its geometric centre, coarsened by powers of two (2 %, 4 % ...) when a
//   distribution would hold more than a bounded number of bins;
// - histogram buckets (Prometheus, vLLM's `le` bounds): every observation of a bucket tied
//   at its upper bound; all buckets are kept (empty ones too) so each has its lower edge.
// The canary judge ranks and compares these (src/analysis), and `qwenops analysis rejudge`
// re-runs it on the stored ones. Pure: shared with workflows and the CLI.

export interface LatencyDistribution {
  /** 'log-grid': probe client bins; 'buckets': histogram buckets. */
  binning: 'log-grid' | 'buckets';
  /** log-grid only: bins are this many fine (1 %) bins wide; a power of two. */
  binFactor?: number;
  /** Values in ms, ascending: bin centres (log-grid) or bucket upper bounds (buckets). */
  values: number[];
  /** Observations per value. */
  counts: number[];
  /**
   * buckets only: observations above the last finite bound (+Inf bucket) stand at twice
   * that bound, so that they rank above it and stay JSON-safe.
   */
  overflowAtMs?: number;
}

/** The floor of the log grid, ms (1 µs): anything at or below it is one "~0" bin at 0. */
export const LOG_GRID_FLOOR_MS = 0.001;
/** Width of a fine log-grid bin: 1 %. */
export const LOG_GRID_RESOLUTION = 0.01;
/** Bins a stored distribution may hold: 6 distributions of an analysis stay under ~10 KB. */
export const MAX_DISTRIBUTION_BINS = 120;

const STEP = Math.log1p(LOG_GRID_RESOLUTION);

/** Fine grid index of a value (ms); -1 for the "~0" bin. */
export function logGridIndex(ms: number): number {
  return ms <= LOG_GRID_FLOOR_MS ? -1 : Math.floor(Math.log(ms / LOG_GRID_FLOOR_MS) / STEP);
}

/** 4 significant digits: well inside half of the narrowest bin (0.5 %). */
function round4(v: number): number {
  return Number(v.toPrecision(4));
}

/** Representative value (ms) of a coarse bin: the geometric centre of its fine bins. */
function centreOf(coarseIndex: number, factor: number): number {
  if (coarseIndex < 0) return 0;
  return round4(LOG_GRID_FLOOR_MS * Math.exp((coarseIndex * factor + factor / 2) * STEP));
}

function fromIndexCounts(counts: Map<number, number>, factor: number): LatencyDistribution {
  const indexes = [...counts.keys()].sort((a, b) => a - b);
  return {
    binning: 'log-grid',
    binFactor: factor,
    values: indexes.map((k) => centreOf(k, factor)),
    counts: indexes.map((k) => counts.get(k) as number),
  };
}

/** Coarse bin counts of a log-grid distribution at `factor` (a multiple of its own). */
function coarseCounts(dist: LatencyDistribution, factor: number): Map<number, number> {
  const own = dist.binFactor ?? 1;
  const out = new Map<number, number>();
  for (let i = 0; i < dist.values.length; i++) {
    const v = dist.values[i] as number;
    // A centre lies half a bin away from the edges, so its fine index is recovered exactly.
    const fine = logGridIndex(v);
    const k = fine < 0 ? -1 : Math.floor(Math.floor(fine / own) * (own / factor));
    out.set(k, (out.get(k) ?? 0) + (dist.counts[i] as number));
  }
  return out;
}

/** Bins of a log-grid distribution once coarsened to `factor`. */
function binsAt(dist: LatencyDistribution, factor: number): number {
  return coarseCounts(dist, factor).size;
}

/** A log-grid distribution coarsened to `factor` (a power of two at least its own). */
export function coarsen(dist: LatencyDistribution, factor: number): LatencyDistribution {
  if (dist.binning !== 'log-grid' || factor === (dist.binFactor ?? 1)) return dist;
  return fromIndexCounts(coarseCounts(dist, factor), factor);
}

/**
 * Log-grid distributions brought to one common grid, the finest at which each holds at most
 * `maxBins` bins (so canary and stable tie exactly where their values fall together).
 * Bucket distributions are returned as they are.
 */
export function onCommonGrid(
  dists: readonly (LatencyDistribution | undefined)[],
  maxBins = MAX_DISTRIBUTION_BINS,
): (LatencyDistribution | undefined)[] {
  const grid = dists.filter((d): d is LatencyDistribution => d?.binning === 'log-grid');
  if (grid.length === 0) return [...dists];
  let factor = Math.max(...grid.map((d) => d.binFactor ?? 1));
  while (factor < 1 << 20 && grid.some((d) => binsAt(d, factor) > maxBins)) factor *= 2;
  return dists.map((d) => (d?.binning === 'log-grid' ? coarsen(d, factor) : d));
}

/** Collects per-request values (ms) on the fine log grid; memory is bounded by the grid. */
export class LogGridBinner {
  private readonly counts = new Map<number, number>();
  private total = 0;

  add(ms: number): void {
    if (!Number.isFinite(ms)) return;
    const k = logGridIndex(ms);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    this.total += 1;
  }

  get count(): number {
    return this.total;
  }

  /** The distribution, coarsened until it holds at most `maxBins` bins; undefined when empty. */
  toDistribution(maxBins = 400): LatencyDistribution | undefined {
    if (this.total === 0) return undefined;
    const [dist] = onCommonGrid([fromIndexCounts(this.counts, 1)], maxBins);
    return dist;
  }
}

export interface CumulativeBucket {
  /** Upper bound in seconds (Prometheus's unit); Infinity for +Inf. */
  le: number;
  /** Cumulative count. */
  count: number;
}

/**
 * A distribution from cumulative histogram buckets (seconds), in ms. increase() extrapolates
 * each bucket on its own, so cumulative counts are rounded to whole requests and made
 * monotonic first. Undefined when no bucket counted anything.
 */
export function distributionFromBuckets(
  buckets: readonly CumulativeBucket[],
): LatencyDistribution | undefined {
  const sorted = [...buckets].filter((b) => !Number.isNaN(b.le)).sort((a, b) => a.le - b.le);
  const finite = sorted.filter((b) => Number.isFinite(b.le));
  const lastFinite = finite[finite.length - 1]?.le;
  const values: number[] = [];
  const counts: number[] = [];
  let previous = 0;
  let overflowAtMs: number | undefined;
  for (const b of sorted) {
    const cumulative = Math.max(previous, Math.round(Number.isFinite(b.count) ? b.count : 0));
    let value = b.le * 1000;
    if (!Number.isFinite(b.le)) {
      if (lastFinite === undefined) continue;
      overflowAtMs = round4(lastFinite * 2000);
      value = overflowAtMs;
    }
    values.push(round4(value));
    counts.push(cumulative - previous);
    previous = cumulative;
  }
  if (previous <= 0) return undefined;
  return { binning: 'buckets', values, counts, ...(overflowAtMs !== undefined ? { overflowAtMs } : {}) };
}

/** Observations in a distribution. */
export function distributionCount(dist: LatencyDistribution | undefined): number {
  if (!dist) return 0;
  let n = 0;
  for (const c of dist.counts) n += c;
  return n;
}

/**
 * Edges of the bin at `index`: a bucket spans (previous bound, bound]; a log-grid bin is
 * taken at its centre (its width, <= a few %, is the grid's resolution).
 */
export function binEdges(dist: LatencyDistribution, index: number): { lowerMs: number; upperMs: number } {
  const value = dist.values[index] as number;
  if (dist.binning === 'log-grid') return { lowerMs: value, upperMs: value };
  const lower = index > 0 ? (dist.values[index - 1] as number) : 0;
  if (dist.overflowAtMs !== undefined && value === dist.overflowAtMs)
    return { lowerMs: lower, upperMs: Number.POSITIVE_INFINITY };
  return { lowerMs: lower, upperMs: value };
}
