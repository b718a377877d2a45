import type { EvaluationResult } from './job-results.js';
import type { QualityGates } from './promotion-spec.js';

// The quality gate between quantization and canary: the AWQ candidate must keep quality
// (relative score drop), fit the GPU (memory) and be worth it (throughput gain).

export interface GateCheck {
  name: 'quality-drop' | 'candidate-memory' | 'throughput-gain';
  observed: number;
  limit: number;
  passed: boolean;
  message: string;
}

export interface GateReport {
  passed: boolean;
  checks: GateCheck[];
  /** The failed checks' messages, for the failure and the report. */
  failures: string[];
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

export function evaluateQualityGates(result: EvaluationResult, gates: QualityGates): GateReport {
  const { baseline, candidate } = result;
  const dropPct =
    baseline.qualityScore > 0
      ? ((baseline.qualityScore - candidate.qualityScore) / baseline.qualityScore) * 100
      : 0;
  const gain = candidate.tokensPerSecond / baseline.tokensPerSecond;
  const checks: GateCheck[] = [
    {
      name: 'quality-drop',
      observed: round(dropPct, 3),
      limit: gates.maxQualityDropPct,
      passed: dropPct <= gates.maxQualityDropPct,
      message: `quality drop ${round(dropPct, 3)}% (score ${round(baseline.qualityScore, 4)} -> ${round(candidate.qualityScore, 4)}) vs limit ${gates.maxQualityDropPct}%`,
    },
    {
      name: 'candidate-memory',
      observed: round(candidate.memoryGb),
      limit: gates.maxCandidateMemoryGb,
      passed: candidate.memoryGb <= gates.maxCandidateMemoryGb,
      message: `candidate GPU memory ${round(candidate.memoryGb)} GB (baseline ${round(baseline.memoryGb)} GB) vs limit ${gates.maxCandidateMemoryGb} GB`,
    },
    {
      name: 'throughput-gain',
      observed: round(gain),
      limit: gates.minThroughputGain,
      passed: gain >= gates.minThroughputGain,
      message: `throughput ${round(baseline.tokensPerSecond, 1)} -> ${round(candidate.tokensPerSecond, 1)} tok/s (x${round(gain)}) vs required x${gates.minThroughputGain}`,
    },
  ];
  const failures = checks.filter((c) => !c.passed).map((c) => c.message);
  return { passed: failures.length === 0, checks, failures };
}
