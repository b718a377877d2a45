import { describe, expect, it } from 'vitest';
import { combineVerdicts } from '../../../src/domain/analysis.js';
import { decideAfterAnalysis } from '../../../src/domain/canary.js';
import type { EvaluationResult } from '../../../src/domain/job-results.js';
import { qualityGatesSchema } from '../../../src/domain/promotion-spec.js';
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
});
