import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaryAnalyzer } from '../../../src/analysis/index.js';
import type { CanaryAnalysisRequest } from '../../../src/analysis/port.js';
import { sloSchema } from '../../../src/domain/promotion-spec.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { freePort } from '../../support/ports.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// The probe provider against serving simulators on loopback: the same open-loop probe load
// goes to a canary and a stable revision, and the client's measurements decide.

let stable: TestSimulator;
let equalCanary: TestSimulator;
let slowCanary: TestSimulator;

// Latencies large next to what a busy two-core machine adds to every request, so 2x stays
// 2x (and equal stays equal) whatever else runs.
const timing = { ttftMs: 100, tpotMs: 8, jitterSigma: 0.1 };

beforeAll(async () => {
  stable = await startSimulator({ ...timing, revision: 'stable-00001', seed: 1 });
  equalCanary = await startSimulator({ ...timing, revision: 'canary-equal', seed: 2 });
  // Four times the latency everywhere: first token and every token after it. Far beyond the
  // 2x limit even when host noise inflates the ratio of two equal revisions to ~1.6.
  slowCanary = await startSimulator({
    ttftMs: 400,
    tpotMs: 32,
    jitterSigma: 0.1,
    revision: 'canary-slow',
    seed: 3,
  });
});

afterAll(async () => {
  await Promise.all([stable?.close(), equalCanary?.close(), slowCanary?.close()]);
});

function request(
  canary: TestSimulator,
  overrides: Partial<CanaryAnalysisRequest> = {},
): CanaryAnalysisRequest {
  return {
    step: 0,
    canaryPercent: 10,
    model: 'qwen-7b-chat',
    canary: { revision: canary.options.revision, baseUrl: canary.baseUrl },
    stable: { revision: 'stable-00001', baseUrl: stable.baseUrl },
    windowSeconds: 4,
    minSamples: 100,
    probe: { requestsPerSecond: 50, maxTokens: 8, concurrency: 64 },
    slo: sloSchema.parse({ p99LatencyMs: 3000, maxErrorRatePct: 1, maxLatencyRatioVsStable: 2 }),
    ...overrides,
  };
}

describe('probe canary analysis', () => {
  const analyzer = createCanaryAnalyzer({ provider: 'probe' });

  it('passes a canary that behaves like the stable revision', async () => {
    const progress: string[] = [];
    // Two equal revisions' p99 (the slowest of ~200) differ by whatever the host does to each:
    // up to 2.6x was seen with the CPU saturated. The tolerance here is wider than that noise;
    // the next test shows a 2x limit still catches a 4x slower canary.
    const result = await analyzer.analyse(
      request(equalCanary, {
        slo: sloSchema.parse({ p99LatencyMs: 10_000, maxErrorRatePct: 1, maxLatencyRatioVsStable: 4 }),
      }),
      { onProgress: (m) => progress.push(m) },
    );
    expect(result.verdict, result.reasons.join('\n')).toBe('pass');
    expect(result.provider).toBe('probe');
    expect(result.canary?.requests).toBeGreaterThanOrEqual(100);
    expect(result.stable?.requests).toBe(result.canary?.requests); // same schedule for both
    expect(result.checks.find((c) => c.metric === 'p99_latency_ratio_vs_stable')?.verdict).toBe('pass');
    // The samples judged and the criteria are kept with the result (qwenops analysis rejudge).
    expect(result.checks.find((c) => c.metric === 'e2e_vs_stable')?.statistics?.n1).toBe(
      result.canary?.latency?.count,
    );
    expect(result.canary?.distributions?.e2e?.binning).toBe('log-grid');
    expect(result.criteria).toMatchObject({ minSamples: 100, source: 'probe client' });
    expect(JSON.stringify(result).length).toBeLessThan(20_000);
    expect(progress.some((m) => /canary \d+ sent/.test(m))).toBe(true);
    // The simulators saw the probe traffic.
    expect(equalCanary.stats().requests.completed).toBeGreaterThanOrEqual(100);
  });

  it('fails a canary with four times the latency', async () => {
    const result = await analyzer.analyse(request(slowCanary, { step: 1 }));
    expect(result.verdict, result.reasons.join('\n')).toBe('fail');
    expect(result.reasons[0]).toMatch(
      /canary (E2E latency|TTFT|TPOT) \d+\.\d\dx the stable's \(95 % interval .*\): significantly slower/,
    );
    const e2e = result.checks.find((c) => c.metric === 'e2e_vs_stable');
    expect(e2e?.verdict).toBe('fail');
    expect(e2e?.statistics?.p).toBeLessThan(0.01);
    expect(e2e?.statistics?.n1).toBeGreaterThanOrEqual(100);
    const ratio = result.checks.find((c) => c.metric === 'p99_latency_ratio_vs_stable');
    expect(ratio?.value).toBeGreaterThan(2);
  });

  it('is inconclusive when the window yields too few samples', async () => {
    const result = await analyzer.analyse(
      request(equalCanary, { step: 2, windowSeconds: 1, minSamples: 500 }),
    );
    expect(result.verdict).toBe('inconclusive');
    expect(result.reasons[0]).toMatch(/too few samples: canary canary-equal served \d+ requests, 500 needed/);
  });

  it('fails a canary whose requests error, counting them by class', async () => {
    slowCanary.setFaults({ errorRatePct: 40, errorStatus: 500 });
    try {
      const result = await analyzer.analyse(
        request(slowCanary, {
          step: 3,
          slo: sloSchema.parse({ p99LatencyMs: 5000, maxLatencyRatioVsStable: 10 }),
        }),
      );
      expect(result.verdict).toBe('fail');
      expect(result.reasons[0]).toMatch(/canary error rate \d+\.\d\d % .* over the 1 % limit/);
      expect(result.reasons.join('\n')).toMatch(/canary errors: http_5xx \d+/);
    } finally {
      slowCanary.clearFaults();
    }
  });

  it('is inconclusive, saying why, when the canary cannot be reached', async () => {
    const port = await freePort();
    const result = await analyzer.analyse(
      request(equalCanary, { step: 4, canary: { revision: 'gone', baseUrl: `http://127.0.0.1:${port}/v1` } }),
    );
    expect(result.verdict).toBe('inconclusive');
    expect(result.reasons[0]).toMatch(
      /canary: cannot reach http:\/\/127\.0\.0\.1:\d+: cannot connect: ECONNREFUSED/,
    );
  });

  it('is inconclusive when neither revision serves the model name (a configuration mistake)', async () => {
    const result = await analyzer.analyse(
      request(equalCanary, { step: 5, windowSeconds: 1, minSamples: 5, model: 'qwen-typo' }),
    );
    expect(result.verdict).toBe('inconclusive');
    expect(result.reasons[0]).toMatch(/model "qwen-typo" is served by neither revision \(GET \/v1\/models\)/);
  });

  it('refuses a malformed request instead of measuring', async () => {
    await expect(
      analyzer.analyse(
        request(equalCanary, {
          windowSeconds: 0,
          probe: { requestsPerSecond: -1, maxTokens: 8, concurrency: 1 },
        }),
      ),
    ).rejects.toThrow(InputValidationError);
    await expect(analyzer.analyse(request(equalCanary, { windowSeconds: 0 }))).rejects.toThrow(
      /windowSeconds: must be > 0/,
    );
  });
});
