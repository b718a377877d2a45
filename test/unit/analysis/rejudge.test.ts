import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { judgeCanary, toAnalysisResult } from '../../../src/analysis/checks.js';
import { rejudgeAnalyses, rejudgeAnalysis, renderRejudge } from '../../../src/analysis/rejudge.js';
import { analysesFromHistory, type HistoryEventLike } from '../../../src/cli/analysis-history.js';
import { overridesFromOptions } from '../../../src/cli/commands/analysis.js';
import { renderCheckStatistics } from '../../../src/cli/render.js';
import type { AnalysisResult, RevisionMeasurement } from '../../../src/domain/analysis.js';
import { LogGridBinner } from '../../../src/domain/latency-distribution.js';
import { sloSchema } from '../../../src/domain/promotion-spec.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { renderMarkdown } from '../../../src/services/promotion-report.js';
import { AesGcmPayloadCodec } from '../../../src/temporal/aes-gcm-codec.js';
import { runCli } from '../cli/run-cli.js';

// Retrospective judging: analyses keep their binned samples and criteria, so the judge can
// run again with other thresholds and say which decisions would flip.

/** Evenly spread quantiles of a lognormal (deterministic, no RNG): n values around medianMs. */
function spread(n: number, medianMs: number, sigma: number, offset = 0): number[] {
  return Array.from({ length: n }, (_, i) => {
    const u = (i + 0.5 + offset) / (n + 1);
    // Logistic approximation of the normal quantile is enough for a test spread.
    const z = Math.log(u / (1 - u)) / 1.702;
    return medianMs * Math.exp(sigma * z);
  });
}

function measured(name: string, e2e: number[], errors = 0): RevisionMeasurement {
  const bins = { e2e: new LogGridBinner(), ttft: new LogGridBinner(), tpot: new LogGridBinner() };
  for (const v of e2e) {
    bins.e2e.add(v);
    bins.ttft.add(v / 4);
    bins.tpot.add(v / 20);
  }
  return {
    revision: name,
    requests: e2e.length + errors,
    errors,
    errorRatePct: (errors / (e2e.length + errors)) * 100,
    distributions: {
      e2e: bins.e2e.toDistribution(),
      ttft: bins.ttft.toDistribution(),
      tpot: bins.tpot.toDistribution(),
    },
  };
}

function analysis(
  step: number,
  canary: RevisionMeasurement,
  stable: RevisionMeasurement,
  slo = {},
): AnalysisResult {
  const request = {
    step,
    canaryPercent: [10, 50, 100][step] ?? 100,
    slo: sloSchema.parse(slo),
    minSamples: 30,
  };
  const judgement = judgeCanary({ canary, stable, slo: request.slo, minSamples: 30, source: 'probe client' });
  return toAnalysisResult(request, judgement, {
    provider: 'probe',
    canary,
    stable,
    startedAt: new Date('2026-12-01T10:00:00Z'),
    source: 'probe client',
  });
}

// A canary 1.1x slower (under the default 1.2x minimum effect) and one like the stable.
const slightlySlower = analysis(
  0,
  measured('canary', spread(400, 132, 0.15)),
  measured('stable', spread(400, 120, 0.15, 0.3)),
);
const equal = analysis(
  1,
  measured('canary', spread(400, 120, 0.15)),
  measured('stable', spread(400, 120, 0.15, 0.3)),
);

describe('rejudge', () => {
  it('stores the criteria with the result, and reproduces every verdict with them', () => {
    expect(slightlySlower.criteria).toMatchObject({ minSamples: 30, source: 'probe client' });
    expect(slightlySlower.criteria?.slo.minLatencyEffectRatio).toBe(1.2);
    expect(slightlySlower.verdict).toBe('pass');
    const report = rejudgeAnalyses([slightlySlower, equal]);
    expect(report.flipped).toBe(0);
    expect(report.rows.map((r) => r.after)).toEqual(['pass', 'pass']);
  });

  it('says which decisions a stricter minimum effect would flip', () => {
    const report = rejudgeAnalyses([slightlySlower, equal], { minLatencyEffectRatio: 1.05 });
    expect(report.rows.map((r) => [r.before, r.after, r.flipped])).toEqual([
      ['pass', 'fail', true],
      ['pass', 'pass', false],
    ]);
    const text = renderRejudge('wf-1', report, { minLatencyEffectRatio: 1.05 });
    expect(text).toMatch(/wf-1: 2 analyses re-judged with minLatencyEffectRatio=1\.05/);
    expect(text).toMatch(/step 1 at 10% \(2026-12-01T10:00:00\.000Z\): pass -> fail {2}WOULD FLIP/);
    expect(text).toMatch(/e2e_vs_stable: fail p=\S+ U=\S+ ratio 1\.1\d? \[\S+\] n=400\/400 alpha=0\.01/);
    expect(text).toMatch(/1 of 2 decisions would flip/);
  });

  it('flips a failed SLO check when the SLO is loosened', () => {
    const slow = analysis(
      0,
      measured('canary', spread(300, 800, 0.1)),
      measured('stable', spread(300, 200, 0.1)),
      {
        p99LatencyMs: 300,
      },
    );
    expect(slow.verdict).toBe('fail');
    const looser = rejudgeAnalysis(slow, {
      p99LatencyMs: 5000,
      maxLatencyRatioVsStable: 10,
      minLatencyEffectRatio: 5,
    });
    expect(looser.after).toBe('pass');
    expect(looser.flipped).toBe(true);
  });

  it('skips analyses recorded without samples, and refuses bad thresholds', () => {
    const { criteria: _criteria, ...old } = equal;
    const row = rejudgeAnalysis(old as AnalysisResult);
    expect(row.skipped).toMatch(/recorded without its samples or criteria/);
    expect(row.flipped).toBe(false);
    expect(renderRejudge('wf', rejudgeAnalyses([old as AnalysisResult]), {})).toMatch(
      /1 could not be re-judged/,
    );
    expect(() => rejudgeAnalysis(equal, { alpha: 0 })).toThrow(InputValidationError);
  });

  it('keeps an analysis small in history: under 20 KB with wide distributions', () => {
    const wide = (seed: number) =>
      Array.from({ length: 20_000 }, (_, i) => Math.exp(((i * 7919 + seed) % 20_000) / 2000)); // 1 ms .. 22 s
    const canary = measured('canary', wide(1));
    expect(canary.distributions?.e2e?.values.length).toBeGreaterThan(120);
    const result = analysis(0, canary, measured('stable', wide(3)));
    for (const m of ['e2e', 'ttft', 'tpot'] as const) {
      expect(result.canary?.distributions?.[m]?.values.length).toBeLessThanOrEqual(120);
      expect(result.stable?.distributions?.[m]?.binFactor).toBe(result.canary?.distributions?.[m]?.binFactor);
    }
    expect(JSON.stringify(result).length).toBeLessThan(20_000);
    // Stored as judged: judging the stored samples again gives the same checks.
    expect(rejudgeAnalysis(result).judgement?.checks).toEqual(result.checks);
  });

  it('renders the statistics in the status and the report', () => {
    const failing = rejudgeAnalysis(slightlySlower, { minLatencyEffectRatio: 1.05 });
    const result = { ...slightlySlower, checks: failing.judgement!.checks };
    expect(renderCheckStatistics(result).join('\n')).toMatch(
      /^ {2}error_rate_pct: pass errors 0\/0 p\(vs SLO\)=1 p\(vs stable\)=1 n=400\/400 alpha=0\.01$/m,
    );
    const markdown = renderMarkdown({
      workflowId: 'wf',
      status: {
        kind: 'canary',
        workflowId: 'wf',
        service: { namespace: 'n', name: 's' },
        stage: 'canary',
        stages: [],
        progress: { percent: 50, message: '' },
        traffic: { canaryPercent: 10 },
        analyses: 1,
        paused: false,
        outcome: 'running',
        compensations: [],
        artifacts: {},
      },
      analyses: [result],
    });
    expect(markdown).toMatch(/### Statistics behind the verdicts/);
    expect(markdown).toMatch(/\| 1 \| e2e_vs_stable \| fail \| p=\S+ U=\S+ ratio/);
  });
});

describe('analyses from workflow history', () => {
  const payload = (value: unknown) => defaultPayloadConverter.toPayload(value);
  const events = (encode: (v: unknown) => unknown): HistoryEventLike[] => [
    { eventId: 5, activityTaskScheduledEventAttributes: { activityType: { name: 'shiftCanaryTraffic' } } },
    {
      eventId: 6,
      activityTaskCompletedEventAttributes: {
        scheduledEventId: 5,
        result: { payloads: [encode({ verdict: 'not an analysis' })] },
      },
    },
    { eventId: 7, activityTaskScheduledEventAttributes: { activityType: { name: 'analyseCanaryStep' } } },
    {
      eventId: 9,
      activityTaskCompletedEventAttributes: {
        scheduledEventId: 7,
        result: { payloads: [encode(slightlySlower)] },
      },
    },
    { eventId: 10, activityTaskScheduledEventAttributes: { activityType: { name: 'analyseCanaryStep' } } },
    {
      eventId: 12,
      activityTaskCompletedEventAttributes: { scheduledEventId: 10, result: { payloads: [encode(equal)] } },
    },
  ];

  it('reads every analyseCanaryStep result, in order', async () => {
    const { analyses, undecodable } = await analysesFromHistory(events(payload));
    expect(undecodable).toBe(0);
    expect(analyses.map((a) => a.step)).toEqual([0, 1]);
    expect(analyses[0]?.canary?.distributions?.e2e?.values).toEqual(
      slightlySlower.canary?.distributions?.e2e?.values,
    );
    expect(rejudgeAnalyses(analyses).flipped).toBe(0);
  });

  it('decodes encrypted payloads with the codec, and counts what it cannot decode', async () => {
    const codec = AesGcmPayloadCodec.fromBase64Key(randomBytes(32).toString('base64'));
    const encrypted = await Promise.all(
      events(payload).map(async (e) => {
        const completed = e.activityTaskCompletedEventAttributes;
        if (!completed) return e;
        const [p] = await codec.encode(completed.result?.payloads as never);
        return { ...e, activityTaskCompletedEventAttributes: { ...completed, result: { payloads: [p] } } };
      }),
    );
    expect((await analysesFromHistory(encrypted, codec)).analyses).toHaveLength(2);
    expect((await analysesFromHistory(encrypted)).undecodable).toBe(2);
  });
});

describe('qwenops analysis rejudge: flags', () => {
  it.each([
    [['analysis', 'rejudge', 'wf', '--alpha', '0'], "--alpha: must be a number > 0 and <= 0.5, got '0'"],
    [['analysis', 'rejudge', 'wf', '--alpha', 'abc'], "--alpha: must be a number > 0 and <= 0.5, got 'abc'"],
    [
      ['analysis', 'rejudge', 'wf', '--min-effect', '0.9'],
      "--min-effect: must be a number >= 1 and <= 100, got '0.9'",
    ],
    [['analysis', 'rejudge', 'wf', '--slo-p99', '-5'], '--slo-p99: must be a number > 0'],
    [
      ['analysis', 'rejudge', 'wf', '--policy', 'lenient'],
      '--policy: must be one of worse-than-stable, margin',
    ],
    [['analysis', 'rejudge', 'wf', '--min-samples', '1.5'], '--min-samples: must be a positive integer'],
    [['analysis', 'rejudge'], "missing required argument 'workflowId'"],
  ])('qwenops %j exits 64: %s', async (args, message) => {
    const { code, stderr } = await runCli(...args);
    expect(code).toBe(64);
    expect(stderr).toContain(message);
  });

  it('lists its thresholds in --help', async () => {
    const { code, stdout } = await runCli('analysis', 'rejudge', '--help');
    expect(code).toBe(0);
    for (const flag of ['--alpha', '--min-effect', '--slo-p99', '--max-error-rate', '--policy', '--margin'])
      expect(stdout).toContain(flag);
  });

  it('maps flags to the judge settings they override', () => {
    expect(
      overridesFromOptions({ alpha: 0.05, minEffect: 1.1, sloP99: 500, policy: 'margin' }),
    ).toMatchObject({
      alpha: 0.05,
      minLatencyEffectRatio: 1.1,
      p99LatencyMs: 500,
      absolutePolicy: 'margin',
    });
  });
});
