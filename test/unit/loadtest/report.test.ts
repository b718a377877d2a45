import { describe, expect, it } from 'vitest';
import type { EvaluationResult } from '../../../src/domain/job-results.js';
import { parseLoadTestRequest } from '../../../src/domain/load-test.js';
import { LoadAggregator } from '../../../src/loadtest/aggregate.js';
import {
  buildPromotionComparison,
  renderPromotionComparisonHtml,
  SEED_CLAIMS,
} from '../../../src/loadtest/promotion-comparison.js';
import { describeLoadTest, type LoadTestReport, summariseLoadTest } from '../../../src/loadtest/report.js';
import { renderLoadTestHtml } from '../../../src/loadtest/report-html.js';
import { evaluateSlo } from '../../../src/loadtest/slo.js';

function report(options: {
  ttftMs: number;
  e2eMs: number;
  model?: string;
  stream?: boolean;
}): LoadTestReport {
  const aggregator = new LoadAggregator(0, 1, {});
  for (let i = 0; i < 200; i++) {
    const jitter = (i % 10) / 10;
    aggregator.add({
      intendedMs: i * 50,
      sentMs: i * 50,
      finishedMs: i * 50 + options.e2eMs,
      ok: true,
      ttftMs: options.stream === false ? undefined : options.ttftMs * (1 + jitter),
      e2eMs: options.e2eMs * (1 + jitter),
      tpotMs: options.stream === false ? undefined : 10.5,
      itlMs: [10, 11],
      chunks: 3,
      outputTokens: 3,
      inputTokens: 20,
      tokenSource: 'usage',
    });
  }
  const results = aggregator.finish();
  const request = parseLoadTestRequest({ url: 'http://127.0.0.1:1/v1', slo: { p99TtftMs: 300 } });
  return {
    kind: 'qwenops.loadtest',
    version: 1,
    id: 'test-report',
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:00:10.000Z',
    target: {
      url: request.url,
      chatUrl: `${request.url}/chat/completions`,
      model: options.model ?? 'qwen-7b-chat-awq',
    },
    request,
    pacing: {
      mode: 'open',
      targetRps: 20,
      achievedRps: 19.9,
      concurrency: 1000,
      scheduled: 200,
      sent: 200,
      droppedStarts: 0,
      warmupRequests: 0,
    },
    results,
    slo: evaluateSlo(request.slo, results),
    warnings: ['a <b>warning</b>'],
  };
}

describe('load test HTML report', () => {
  it('is self-contained: Chart.js and the data are inline, nothing is fetched', () => {
    const html = renderLoadTestHtml(report({ ttftMs: 100, e2eMs: 400, model: '<script>alert(1)</script>' }));
    expect(html).toMatch(/^<!doctype html>/);
    expect(html.length).toBeGreaterThan(150_000); // the Chart.js bundle is in the page
    expect(html).toContain("new Chart(document.getElementById('cdf')");
    expect(html).toMatch(/Chart\.js v4\.\d+\.\d+/);
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link[^>]+href=/i);
    // User-controlled text is escaped.
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('a &lt;b&gt;warning&lt;/b&gt;');
    // The embedded data parses back.
    const data = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(html)?.[1];
    expect(JSON.parse(data as string).cdf.ttft.length).toBeGreaterThan(10);
    expect(html).toContain('SLOs MET');
  });

  it('draws three charts from the embedded data (CDFs, latency and throughput over time)', () => {
    const html = renderLoadTestHtml(report({ ttftMs: 100, e2eMs: 400 }));
    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1] as string);
    const page = scripts.at(-1) as string; // the last inline script draws; the first is Chart.js
    const data = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(
      html,
    )?.[1] as string;
    const charts: {
      canvas: string;
      config: { type: string; data: { datasets: { label: string; data: unknown[] }[] } };
    }[] = [];
    const document = {
      getElementById: (id: string) => (id === 'report-data' ? { textContent: data } : { id }),
    };
    class Chart {
      constructor(canvas: { id: string }, config: (typeof charts)[number]['config']) {
        charts.push({ canvas: canvas.id, config });
      }
    }
    new Function('document', 'Chart', page)(document, Chart);
    expect(charts.map((c) => c.canvas)).toEqual(['cdf', 'latency-time', 'throughput-time']);
    expect(charts[0]!.config.data.datasets.map((d) => d.label)).toEqual(['TTFT', 'TPOT', 'ITL', 'E2E']);
    expect(charts[0]!.config.data.datasets[0]!.data.length).toBeGreaterThan(10);
    expect(charts[1]!.config.data.datasets.map((d) => d.label)).toEqual(['TTFT p50', 'TTFT p99', 'E2E p99']);
    expect(charts[2]!.config.data.datasets.map((d) => d.label)).toEqual([
      'completed req/s',
      'errors/s',
      'output tok/s',
    ]);
  });

  it('summarises headline figures flat and in one line', () => {
    const r = report({ ttftMs: 100, e2eMs: 400 });
    const summary = summariseLoadTest(r);
    expect(summary).toMatchObject({ requests: 200, ok: 200, errorRatePct: 0, targetRps: 20 });
    expect(summary.p99TtftMs).toBeGreaterThan(180);
    expect(Object.values(summary).every((v) => typeof v === 'number')).toBe(true);
    expect(describeLoadTest(r)).toMatch(
      /200 requests .*\(open loop, achieved 19\.90 req\/s of 20.*p99 TTFT \d+\.\d ms/,
    );
  });
});

const evaluation = (candidate: Partial<EvaluationResult['candidate']>): EvaluationResult => ({
  kind: 'evaluate',
  simulated: true,
  evalSet: 'dialogue-zh',
  samples: 200,
  gpuType: 'A10',
  baseline: {
    modelUri: 's3://m/base',
    qualityScore: 0.8,
    memoryGb: 14.2,
    tokensPerSecond: 420,
    taskScores: { ceval: 0.6 },
  },
  candidate: {
    modelUri: 's3://m/awq',
    qualityScore: 0.796,
    memoryGb: 9.6,
    tokensPerSecond: 850,
    taskScores: { ceval: 0.59 },
    ...candidate,
  },
  durationSeconds: 10,
});

describe('promotion comparison', () => {
  it('marks each seed claim met when the candidate matches the plan', () => {
    const comparison = buildPromotionComparison(evaluation({}), report({ ttftMs: 100, e2eMs: 400 }));
    const byMetric = Object.fromEntries(comparison.rows.map((r) => [r.metric, r]));
    expect(byMetric['GPU memory']).toMatchObject({ baseline: 14.2, candidate: 9.6, met: true });
    expect(byMetric['Throughput (evaluation)']).toMatchObject({ baseline: 420, candidate: 850, met: true });
    expect(byMetric.Quality).toMatchObject({ met: true });
    expect(byMetric.Quality!.observed).toMatch(/loss 0\.5 %/);
    expect(byMetric['P99 latency (TTFT)']).toMatchObject({ met: true });
    expect(byMetric['Quality: ceval']).toMatchObject({ baseline: 0.6, candidate: 0.59 });
    expect(byMetric['Quality: ceval']!.met).toBeUndefined();
    expect(comparison.claims).toEqual({ met: 4, missed: 0, notMeasured: 0 });
    expect(byMetric['TTFT p99']).toBeDefined();
    expect(SEED_CLAIMS.p99LatencyMs).toBe(300);
  });

  it('marks claims missed or not measured, and uses E2E without streaming', () => {
    const missed = buildPromotionComparison(
      evaluation({ memoryGb: 12, tokensPerSecond: 600, qualityScore: 0.78 }),
      report({ ttftMs: 400, e2eMs: 900, stream: false }),
    );
    const byMetric = Object.fromEntries(missed.rows.map((r) => [r.metric, r]));
    expect(byMetric['GPU memory']!.met).toBe(false);
    expect(byMetric['Throughput (evaluation)']!.met).toBe(false);
    expect(byMetric.Quality!.met).toBe(false);
    expect(byMetric['P99 latency (E2E)']).toMatchObject({ met: false });
    expect(missed.claims).toEqual({ met: 0, missed: 4, notMeasured: 0 });

    const noLoad = buildPromotionComparison(evaluation({}));
    expect(noLoad.claims).toEqual({ met: 3, missed: 0, notMeasured: 1 });
    const html = renderPromotionComparisonHtml(noLoad);
    expect(html).toContain('not measured (no load test)');
    expect(html).toContain('simulated hardware');
    expect(html).toContain('14.2 GB → 9.6 GB');
  });

  it('shows CPU measurements of the tiny model next to the A10 claims without judging them', () => {
    const cpu: EvaluationResult = {
      ...evaluation({
        memoryGb: 1.4,
        memoryKind: 'process-rss',
        qualityScore: 0.925,
        tokensPerSecond: 1200,
        perplexity: { value: 2.478, tokens: 7000, items: 200 },
        accuracy: { value: 0.925, low: 0.88, high: 0.954, items: 200 },
      }),
      simulated: false,
      device: 'cpu',
      baseline: {
        ...evaluation({}).baseline,
        qualityScore: 0.93,
        memoryGb: 1.45,
        memoryKind: 'process-rss',
        tokensPerSecond: 1250,
        perplexity: { value: 2.468, tokens: 7000, items: 200 },
        accuracy: { value: 0.93, low: 0.886, high: 0.958, items: 200 },
      },
      qualityDelta: {
        metric: 'accuracy',
        estimatePct: 0.54,
        lowPct: -0.52,
        highPct: 1.6,
        confidence: 0.95,
        items: 200,
        method: 'paired t-interval over items',
      },
    };
    const comparison = buildPromotionComparison(cpu, undefined, undefined, {
      kind: 'quantize',
      simulated: false,
      method: 'awq',
      bits: 4,
      groupSize: 128,
      zeroPoint: true,
      kernel: 'GEMM',
      outputUri: 's3://m/awq',
      files: [],
      sizeBytes: 9_700_000,
      originalSizeBytes: 13_200_000,
      durationSeconds: 12,
      tool: { name: 'llmcompressor', version: '0.14.0.1' },
      device: 'cpu',
    });
    expect(comparison.comparable).toBe(false);
    expect(comparison.caveat).toMatch(/not comparable to the plan’s claims for Qwen-7B-Chat on an A10/);
    expect(comparison.claims).toEqual({ met: 0, missed: 0, notMeasured: 4 });
    const byMetric = Object.fromEntries(comparison.rows.map((r) => [r.metric, r]));
    expect(byMetric['Model size (files)']!.observed).toBe('13.2 MB → 9.7 MB (×0.735)');
    expect(byMetric['Peak process memory (CPU)']).toMatchObject({ baseline: 1.45, candidate: 1.4 });
    expect(byMetric['Quality (accuracy)']!.observed).toMatch(
      /loss 0\.54 %; 95 % interval -0\.52 \.\. 1\.6 %, 200 paired items/,
    );
    expect(byMetric['Perplexity (held-out)']!.observed).toMatch(/^2\.468 → 2\.478/);
    const html = renderPromotionComparisonHtml(comparison);
    expect(html).toContain('not comparable');
    expect(html).not.toContain('simulated hardware');
  });
});
