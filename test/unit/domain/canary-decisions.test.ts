import { describe, expect, it } from 'vitest';
import { combineVerdicts } from '../../../src/domain/analysis.js';
import { decideAfterAnalysis } from '../../../src/domain/canary.js';
import type { EvaluationResult } from '../../../src/domain/job-results.js';
import { qualityGatesSchema, requiredEvalSamples } from '../../../src/domain/promotion-spec.js';
import { evaluateQualityGates } from '../../../src/domain/quality-gates.js';

const base = { failuresSoFar: 0, failureLimit: 0, canaryPercent: 25, reasons: ['p99 612 ms > 300 ms'] };

describe('canary decisions', () => {
  it('advances on pass, rolls back on the first failure with limit 0', () => {
    expect(decideAfterAnalysis({ ...base, verdict: 'pass' })).toEqual({ action: 'advance' });
    const d = decideAfterAnalysis({ ...base, verdict: 'fail' });
    expect(d).toEqual({
      action: 'rollback',
      reason: 'canary analysis failed at 25% traffic (1 failure, limit 0): p99 612 ms > 300 ms',
    });
  });

  it('re-analyses while failures stay within the limit', () => {
    expect(decideAfterAnalysis({ ...base, verdict: 'fail', failureLimit: 2 })).toEqual({
      action: 'reanalyse',
      failures: 1,
    });
    expect(decideAfterAnalysis({ ...base, verdict: 'fail', failureLimit: 2, failuresSoFar: 2 }).action).toBe(
      'rollback',
    );
  });

  it('never treats inconclusive as a breach or a pass: a human decides', () => {
    const d = decideAfterAnalysis({ ...base, verdict: 'inconclusive', reasons: ['prometheus unreachable'] });
    expect(d.action).toBe('ask-human');
  });

  it('combines checks: any fail fails, else any inconclusive, else pass; no checks is inconclusive', () => {
    expect(combineVerdicts(['pass', 'inconclusive', 'fail'])).toBe('fail');
    expect(combineVerdicts(['pass', 'inconclusive'])).toBe('inconclusive');
    expect(combineVerdicts(['pass'])).toBe('pass');
    expect(combineVerdicts([])).toBe('inconclusive');
  });
});

describe('quality gates', () => {
  const result = (candidateScore: number, memoryGb: number, tps: number): EvaluationResult => ({
    kind: 'evaluate',
    simulated: false,
    evalSet: 'ceval',
    samples: 200,
    gpuType: 'A10',
    baseline: {
      modelUri: 's3://b/base',
      qualityScore: 0.8,
      memoryGb: 14.2,
      tokensPerSecond: 420,
      taskScores: {},
    },
    candidate: {
      modelUri: 's3://b/awq',
      qualityScore: candidateScore,
      memoryGb,
      tokensPerSecond: tps,
      taskScores: {},
    },
    durationSeconds: 10,
  });
  const gates = qualityGatesSchema.parse({});

  it('passes the seed numbers (14.2 -> 9.6 GB, 420 -> 850 tok/s, < 1 % loss)', () => {
    const report = evaluateQualityGates(result(0.795, 9.6, 850), gates);
    expect(report.passed).toBe(true);
    expect(report.checks.map((c) => c.observed)).toEqual([0.625, 9.6, 2.02]);
  });

  it('fails each gate with a message that names it', () => {
    const report = evaluateQualityGates(result(0.78, 10.5, 500), gates);
    expect(report.passed).toBe(false);
    expect(report.failures).toHaveLength(3);
    expect(report.failures[0]).toMatch(/^quality drop 2.5% .* vs limit 1%$/);
    expect(report.failures[1]).toMatch(/candidate GPU memory 10.5 GB/);
    expect(report.failures[2]).toMatch(/x1.19\) vs required x1.5$/);
  });

  const withDelta = (
    estimatePct: number,
    lowPct: number,
    highPct: number,
    perplexity?: [number, number, number],
  ) => ({
    ...result(0.8, 9.6, 850),
    qualityDelta: {
      metric: 'accuracy' as const,
      estimatePct,
      lowPct,
      highPct,
      confidence: 0.95,
      items: 400,
      method: 'paired t-interval over items',
    },
    ...(perplexity
      ? {
          perplexityDelta: {
            metric: 'perplexity' as const,
            estimatePct: perplexity[0],
            lowPct: perplexity[1],
            highPct: perplexity[2],
            confidence: 0.95,
            items: 400,
            method: 'paired t-interval over items',
          },
        }
      : {}),
  });

  it('judges a measured drop on its whole interval: inside passes, beyond fails, across is inconclusive', () => {
    expect(evaluateQualityGates(withDelta(0.2, -0.3, 0.7), gates).verdict).toBe('pass');
    const beyond = evaluateQualityGates(withDelta(3, 2.1, 3.9), gates);
    expect(beyond.verdict).toBe('fail');
    expect(beyond.failures[0]).toMatch(/quality drop 3% \(95% interval 2.1% .. 3.9% over 400 paired items/);
    const across = evaluateQualityGates(withDelta(0.6, -0.4, 1.6), gates);
    expect(across.verdict).toBe('inconclusive');
    expect(across.passed).toBe(false);
    expect(across.failures).toEqual([]);
    expect(across.inconclusive[0]).toMatch(/the interval spans the limit/);
    expect(across.checks[0]?.interval).toMatchObject({ low: -0.4, high: 1.6, items: 400 });
  });

  it('gates the perplexity increase too, and a failure outranks an inconclusive check', () => {
    const report = evaluateQualityGates(withDelta(0.6, -0.4, 1.6, [480, 400, 560]), gates);
    expect(report.verdict).toBe('fail');
    expect(report.failures[0]).toMatch(/^perplexity increase 480% .* vs limit 5%$/);
    expect(report.inconclusive).toHaveLength(1);
  });

  it('calls an evaluation on fewer items than the gate needs inconclusive, whatever it measured', () => {
    const report = evaluateQualityGates({ ...withDelta(0.1, 0, 0.2), samples: 50 }, gates);
    expect(report.verdict).toBe('inconclusive');
    expect(report.inconclusive[0]).toBe('evaluated on 50 items; a 1% quality gate needs at least 200');
  });
});

describe('evaluation size a quality gate needs', () => {
  it('is 200 items for the 1 % default, fewer for a wider gate', () => {
    expect(requiredEvalSamples(1)).toBe(200);
    expect(requiredEvalSamples(10)).toBe(20);
    expect(requiredEvalSamples(0.5)).toBe(400);
  });

  it('is enforced on the spec, naming the field and the rule', () => {
    const parsed = qualityGatesSchema.safeParse({ maxQualityDropPct: 1, evalSamples: 24 });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['evalSamples']);
    expect(parsed.error?.issues[0]?.message).toMatch(/must be >= 200 to judge a 1% quality gate/);
  });
});
