import { type Dispatcher, request } from 'undici';

// A small client for Prometheus's HTTP query API (GET /api/v1/query), plus the histogram
// arithmetic Prometheus's histogram_quantile() does, done client-side so the caller also
// learns which bucket a quantile fell in (its resolution).

export interface VectorSample {
  metric: Record<string, string>;
  value: number;
}

/** Prometheus could not answer: unreachable, an error status, or an answer that is not its API. */
export class PrometheusQueryError extends Error {
  override readonly name = 'PrometheusQueryError';
}

export class PrometheusClient {
  private readonly base: URL;

  constructor(
    baseUrl: string,
    private readonly options: {
      timeoutMs?: number;
      dispatcher?: Dispatcher;
      headers?: Record<string, string>;
    } = {},
  ) {
    this.base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  }

  /** An instant query; `time` defaults to now. Throws PrometheusQueryError. */
  async query(promql: string, time?: Date): Promise<VectorSample[]> {
    const url = new URL('api/v1/query', this.base);
    url.searchParams.set('query', promql);
    if (time) url.searchParams.set('time', (time.getTime() / 1000).toFixed(3));
    let status: number;
    let text: string;
    try {
      const response = await request(url, {
        dispatcher: this.options.dispatcher,
        headers: { accept: 'application/json', ...this.options.headers },
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
      });
      status = response.statusCode;
      text = await response.body.text();
    } catch (error) {
      const err = error as { code?: string; message?: string; name?: string };
      throw new PrometheusQueryError(
        `Prometheus at ${this.base.origin} unreachable: ${err.code ?? err.name ?? 'error'} ${err.message ?? ''}`.trim(),
      );
    }
    let body: {
      status?: string;
      error?: string;
      errorType?: string;
      data?: { resultType?: string; result?: unknown };
    };
    try {
      body = JSON.parse(text);
    } catch {
      throw new PrometheusQueryError(
        `Prometheus answered HTTP ${status} with something that is not its JSON API: ${text.slice(0, 120).replace(/\s+/g, ' ')}`,
      );
    }
    if (status !== 200 || body.status !== 'success') {
      throw new PrometheusQueryError(
        `Prometheus query failed (HTTP ${status}, ${body.errorType ?? 'error'}): ${body.error ?? 'no message'} — query: ${promql}`,
      );
    }
    const data = body.data;
    if (data?.resultType === 'scalar') {
      const [, value] = data.result as [number, string];
      return [{ metric: {}, value: Number(value) }];
    }
    if (data?.resultType !== 'vector' || !Array.isArray(data.result)) {
      throw new PrometheusQueryError(`unexpected result type ${data?.resultType} for query: ${promql}`);
    }
    return (data.result as { metric: Record<string, string>; value: [number, string] }[]).map((s) => ({
      metric: s.metric,
      value: Number(s.value[1]),
    }));
  }
}

export interface BucketCount {
  /** Upper bound in the metric's unit; Infinity for the +Inf bucket. */
  le: number;
  /** Cumulative count, as Prometheus stores it. */
  count: number;
}

export interface HistogramQuantile {
  /** Linear interpolation inside the bucket, as histogram_quantile() does. */
  value: number;
  /** The bucket the quantile fell in: (lower, upper]. */
  lower: number;
  upper: number;
}

/** Buckets from a `sum by (le) (...)` result, sorted, cumulative counts made monotonic. */
export function bucketsFromVector(samples: VectorSample[]): BucketCount[] {
  const buckets = samples
    .map((s) => ({
      le: s.metric.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.metric.le),
      count: s.value,
    }))
    .filter((b) => !Number.isNaN(b.le))
    .sort((a, b) => a.le - b.le);
  // increase() extrapolates each bucket separately, so cumulative counts can dip slightly.
  for (let i = 1; i < buckets.length; i++) {
    const prev = buckets[i - 1] as BucketCount;
    const cur = buckets[i] as BucketCount;
    if (cur.count < prev.count) cur.count = prev.count;
  }
  return buckets;
}

/**
 * The q-quantile (0..1) of cumulative buckets, with Prometheus's rules: the first bucket's
 * lower bound is 0 (for a positive first bound), a quantile in the +Inf bucket returns the
 * highest finite bound. Undefined when there is no observation or no +Inf bucket.
 */
export function histogramQuantile(q: number, buckets: BucketCount[]): HistogramQuantile | undefined {
  const last = buckets[buckets.length - 1];
  if (!last || last.le !== Number.POSITIVE_INFINITY || last.count <= 0) return undefined;
  const total = last.count;
  const rank = q * total;
  let index = buckets.findIndex((b) => b.count >= rank);
  if (index < 0) index = buckets.length - 1;
  const bucket = buckets[index] as BucketCount;
  if (bucket.le === Number.POSITIVE_INFINITY) {
    const highest = buckets[buckets.length - 2];
    const bound = highest ? highest.le : 0;
    return { value: bound, lower: bound, upper: Number.POSITIVE_INFINITY };
  }
  const previous = index > 0 ? (buckets[index - 1] as BucketCount) : undefined;
  const lower = previous ? previous.le : Math.min(0, bucket.le);
  const below = previous ? previous.count : 0;
  const inBucket = bucket.count - below;
  const value = inBucket > 0 ? lower + (bucket.le - lower) * ((rank - below) / inBucket) : bucket.le;
  return { value, lower, upper: bucket.le };
}
