import { Counter, Gauge, Histogram, Registry } from 'prom-client';

// The Prometheus series a vLLM OpenAI server exposes, under vLLM's CURRENT names (the
// removed vllm:time_per_output_token_seconds / vllm:gpu_cache_usage_perc are not used),
// with vLLM's own bucket boundaries, so dashboards and the Prometheus analysis provider
// work against the simulator unchanged. Own registry: several simulators may share a process.

const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
  80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
const REQUEST_LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
  960.0, 1920.0, 7680.0,
];

export const VLLM_METRIC_NAMES = [
  'vllm:time_to_first_token_seconds',
  'vllm:inter_token_latency_seconds',
  'vllm:e2e_request_latency_seconds',
  'vllm:request_queue_time_seconds',
  'vllm:kv_cache_usage_perc',
  'vllm:num_requests_running',
  'vllm:num_requests_waiting',
  'vllm:prompt_tokens_total',
  'vllm:generation_tokens_total',
  'vllm:request_success_total',
] as const;

export interface EngineGauges {
  running(): number;
  waiting(): number;
  /** Fraction of the KV cache in use, 0..1. */
  kvCacheUsage(): number;
}

export interface VllmMetrics {
  registry: Registry;
  timeToFirstToken: { observe(seconds: number): void };
  interTokenLatency: { observe(seconds: number): void };
  e2eRequestLatency: { observe(seconds: number): void };
  requestQueueTime: { observe(seconds: number): void };
  promptTokens: { inc(n: number): void };
  generationTokens: { inc(n: number): void };
  requestSuccess(finishedReason: 'stop' | 'length' | 'abort'): void;
}

export function createVllmMetrics(modelName: string, engine: EngineGauges): VllmMetrics {
  const registry = new Registry();
  const labels = { model_name: modelName };
  const histogram = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name, help, buckets, labelNames: ['model_name'], registers: [registry] }).labels(labels);
  const counter = (name: string, help: string) =>
    new Counter({ name, help, labelNames: ['model_name'], registers: [registry] }).labels(labels);
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['model_name'],
      registers: [registry],
      collect() {
        this.set(labels, read());
      },
    });

  gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', engine.running);
  gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', engine.waiting);
  gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', engine.kvCacheUsage);
  const success = new Counter({
    name: 'vllm:request_success_total',
    help: 'Count of successfully processed requests.',
    labelNames: ['model_name', 'finished_reason'],
    registers: [registry],
  });
  // Zero-valued series exist from the start, so rate() has a baseline before the first request.
  const successBy = {
    stop: success.labels({ ...labels, finished_reason: 'stop' }),
    length: success.labels({ ...labels, finished_reason: 'length' }),
    abort: success.labels({ ...labels, finished_reason: 'abort' }),
  };
  for (const child of Object.values(successBy)) child.inc(0);

  return {
    registry,
    timeToFirstToken: histogram(
      'vllm:time_to_first_token_seconds',
      'Histogram of time to first token in seconds.',
      TTFT_BUCKETS,
    ),
    interTokenLatency: histogram(
      'vllm:inter_token_latency_seconds',
      'Histogram of inter-token latency in seconds.',
      ITL_BUCKETS,
    ),
    e2eRequestLatency: histogram(
      'vllm:e2e_request_latency_seconds',
      'Histogram of e2e request latency in seconds.',
      REQUEST_LATENCY_BUCKETS,
    ),
    requestQueueTime: histogram(
      'vllm:request_queue_time_seconds',
      'Histogram of time spent in WAITING phase for request.',
      REQUEST_LATENCY_BUCKETS,
    ),
    promptTokens: counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.'),
    generationTokens: counter('vllm:generation_tokens_total', 'Number of generation tokens processed.'),
    requestSuccess: (reason) => successBy[reason].inc(),
  };
}
