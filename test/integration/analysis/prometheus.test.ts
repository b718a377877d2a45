import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaryAnalyzer, PrometheusCanaryAnalyzer } from '../../../src/analysis/index.js';
import type { CanaryAnalysisRequest } from '../../../src/analysis/port.js';
import { sloSchema } from '../../../src/domain/promotion-spec.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { freePort } from '../../support/ports.js';
import { startPrometheus, type TestPrometheus } from '../../support/prometheus.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// The Prometheus provider against a real Prometheus scraping serving simulators' /metrics
// (vLLM metric names), each target labelled with the revision it plays. One revision is
// an "older vLLM": a proxy that renames the series the way earlier vLLM releases named them.

let prometheus: TestPrometheus;
let stable: TestSimulator;
let equalCanary: TestSimulator;
let slowCanary: TestSimulator;
let olderBackend: TestSimulator;
let olderProxy: http.Server;
let olderUrl: string;

// TTFTs of 100 vs 200 ms fall in different vLLM TTFT buckets ((0.1, 0.25] and (0.25, 0.5])
// even when a busy machine adds tens of ms to every request; at 30 vs 60 ms that noise alone
// could blur the 2x apart (both p99s in (0.04, 0.08]).
const timing = { ttftMs: 100, tpotMs: 8, jitterSigma: 0.1 };

/** Forwards everything to the simulator; /metrics comes back under the pre-rename vLLM names. */
async function startOlderVllmProxy(target: TestSimulator): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const upstream = http.request(
      `${target.url}${req.url}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        if (req.url === '/metrics') {
          let text = '';
          answer.setEncoding('utf8');
          answer.on('data', (c) => {
            text += c;
          });
          answer.on('end', () => {
            res.writeHead(answer.statusCode ?? 500, {
              'content-type': answer.headers['content-type'] ?? 'text/plain',
            });
            res.end(
              text
                .replaceAll('vllm:inter_token_latency_seconds', 'vllm:time_per_output_token_seconds')
                .replaceAll('vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'),
            );
          });
          return;
        }
        res.writeHead(answer.statusCode ?? 500, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

const hostPort = (url: string) => new URL(url).host;

beforeAll(async () => {
  stable = await startSimulator({ ...timing, revision: 'stable-00001', seed: 1 });
  equalCanary = await startSimulator({ ...timing, revision: 'canary-equal', seed: 2 });
  slowCanary = await startSimulator({
    ttftMs: 200,
    tpotMs: 16,
    jitterSigma: 0.1,
    revision: 'canary-slow',
    seed: 3,
  });
  olderBackend = await startSimulator({ ...timing, revision: 'canary-older-vllm', seed: 4 });
  olderProxy = await startOlderVllmProxy(olderBackend);
  olderUrl = `http://127.0.0.1:${(olderProxy.address() as AddressInfo).port}`;
  prometheus = await startPrometheus([
    { address: hostPort(stable.url), labels: { revision: 'stable-00001' } },
    { address: hostPort(equalCanary.url), labels: { revision: 'canary-equal' } },
    { address: hostPort(slowCanary.url), labels: { revision: 'canary-slow' } },
    { address: hostPort(olderUrl), labels: { revision: 'canary-older-vllm' } },
  ]);
  await prometheus.waitForTargetsUp();
});

afterAll(async () => {
  await prometheus?.stop();
  await new Promise((r) => olderProxy?.close(r));
  await Promise.all([stable?.close(), equalCanary?.close(), slowCanary?.close(), olderBackend?.close()]);
});

function request(
  canary: { revision: string; baseUrl: string },
  overrides: Partial<CanaryAnalysisRequest> = {},
): CanaryAnalysisRequest {
  return {
    step: 0,
    canaryPercent: 25,
    model: 'qwen-7b-chat',
    canary,
    stable: { revision: 'stable-00001', baseUrl: stable.baseUrl },
    windowSeconds: 4,
    minSamples: 100,
    probe: { requestsPerSecond: 50, maxTokens: 8, concurrency: 64 },
    slo: sloSchema.parse({ p99LatencyMs: 1000, maxErrorRatePct: 1, maxLatencyRatioVsStable: 1.5 }),
    ...overrides,
  };
}

const canaryOf = (sim: TestSimulator) => ({ revision: sim.options.revision, baseUrl: sim.baseUrl });

describe('Prometheus canary analysis', () => {
  let analyzer: PrometheusCanaryAnalyzer;
  beforeAll(() => {
    analyzer = createCanaryAnalyzer({
      provider: 'prometheus',
      prometheusUrl: prometheus.url,
      prometheusScrapeIntervalSeconds: 1,
    }) as PrometheusCanaryAnalyzer;
  });

  it('passes a canary equal to the stable, on vLLM histograms', async () => {
    const result = await analyzer.analyse(request(canaryOf(equalCanary)));
    expect(result.verdict, result.reasons.join('\n')).toBe('pass');
    expect(result.provider).toBe('prometheus');
    // Server-side counts from vllm:e2e_request_latency_seconds (increase() may extrapolate a little).
    expect(result.canary?.latency?.count).toBeGreaterThanOrEqual(100);
    expect(result.canary?.ttft?.p99Ms).toBeGreaterThan(0);
    const reasons = result.reasons.join('\n');
    expect(reasons).toMatch(/canary: p99 E2E in histogram bucket \(0, 300\] ms/);
    expect(reasons).toMatch(/canary: peak KV cache usage \d+\.\d %/);
    expect(reasons).toMatch(/selector \{revision="canary-equal"\}/);
  });

  it('fails a canary with twice the latency', async () => {
    const result = await analyzer.analyse(request(canaryOf(slowCanary), { step: 1 }));
    expect(result.verdict, result.reasons.join('\n')).toBe('fail');
    expect(result.reasons[0]).toMatch(
      /canary (E2E latency|TTFT|TPOT) \d+\.\d\dx the stable's \(95 % interval .*\): significantly slower/,
    );
    const e2e = result.checks.find((c) => c.metric === 'e2e_vs_stable');
    expect(e2e?.verdict).toBe('fail');
    expect(e2e?.statistics?.p).toBeLessThan(0.01);
    expect(e2e?.statistics?.n1).toBeGreaterThanOrEqual(100);
  });

  it('reads an older vLLM whose series carry the pre-rename names', async () => {
    const result = await analyzer.analyse(
      request({ revision: 'canary-older-vllm', baseUrl: `${olderUrl}/v1` }, { step: 2 }),
    );
    expect(result.verdict, result.reasons.join('\n')).toBe('pass');
    const reasons = result.reasons.join('\n');
    expect(reasons).toMatch(
      /p99 inter-token latency [\d.]+ ms \(older vLLM name vllm:time_per_output_token_seconds\)/,
    );
    expect(reasons).toMatch(/peak KV cache usage [\d.]+ % \(older vLLM name vllm:gpu_cache_usage_perc\)/);
  });

  it('is inconclusive with too few samples', async () => {
    const result = await analyzer.analyse(
      request(canaryOf(equalCanary), { step: 3, windowSeconds: 1, minSamples: 500 }),
    );
    expect(result.verdict).toBe('inconclusive');
    expect(result.reasons[0]).toMatch(/too few samples/);
  });

  it('is inconclusive, never a pass, when Prometheus has no data for the revision', async () => {
    const wrongLabel = new PrometheusCanaryAnalyzer({
      url: prometheus.url,
      revisionLabel: 'pod',
      scrapeIntervalSeconds: 1,
    });
    const result = await wrongLabel.analyse(
      request(canaryOf(equalCanary), { step: 4, windowSeconds: 2, minSamples: 10 }),
    );
    expect(result.verdict).toBe('inconclusive');
    expect(result.reasons[0]).toMatch(
      /no data: Prometheus has no vllm:e2e_request_latency_seconds series matching \{pod="canary-equal"\}/,
    );
  });

  it('is inconclusive, never a pass, when Prometheus cannot be reached', async () => {
    const port = await freePort();
    const down = new PrometheusCanaryAnalyzer({
      url: `http://127.0.0.1:${port}`,
      scrapeIntervalSeconds: 0,
      consecutiveErrorLimit: 2,
      retryDelayMs: 50,
    });
    const progress: string[] = [];
    const result = await down.analyse(
      request(canaryOf(equalCanary), { step: 5, windowSeconds: 1, minSamples: 5 }),
      {
        onProgress: (m) => progress.push(m),
      },
    );
    expect(result.verdict).toBe('inconclusive');
    expect(result.reasons[0]).toMatch(
      /provider error: Prometheus at http:\/\/127\.0\.0\.1:\d+ unreachable: ECONNREFUSED.*\(after 2 tries\)/,
    );
    expect(progress.some((m) => /Prometheus query failed \(1\/2\)/.test(m))).toBe(true);
  });

  it('refuses a prometheus provider without a URL, naming the setting', () => {
    expect(() => createCanaryAnalyzer({ provider: 'prometheus' })).toThrow(InputValidationError);
    expect(() => createCanaryAnalyzer({ provider: 'prometheus' })).toThrow(
      /analysis\.prometheusUrl \(QWENOPS_PROMETHEUS_URL\): is required/,
    );
  });
});
