import type { EvaluationResult, PairedDelta } from './job-results.js';
import { type QualityGates, requiredEvalSamples } from './promotion-spec.js';

// The quality gate between quantization and canary: the candidate must keep quality
// (relative score drop, and perplexity where measured), fit the GPU (memory) and be worth it
// (throughput gain). A measured change comes with a paired confidence interval; a limit is
// judged on the whole interval, like a canary analysis: entirely within -> pass, entirely
// beyond -> fail, across the limit -> inconclusive (the measurement cannot tell, a person
// decides). A result without an interval (the simulated Jobs) is judged on its estimate.

export type GateVerdict = 'pass' | 'fail' | 'inconclusive';

export interface GateCheck {
  name: 'eval-samples' | 'quality-drop' | 'perplexity-increase' | 'candidate-memory' | 'throughput-gain';
  observed: number;
  /** The paired interval the verdict was judged on, when the Job measured one. */
  interval?: { low: number; high: number; confidence: number; items: number; method: string };
  limit: number;
  verdict: GateVerdict;
  /** verdict === 'pass' (kept for readers of older reports). */
  passed: boolean;
  message: string;
}

export interface GateReport {
  verdict: GateVerdict;
  passed: boolean;
  checks: GateCheck[];
  /** The failed checks' messages, for the failure and the report. */
  failures: string[];
  /** The checks the measurement could not decide. */
  inconclusive: string[];
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const pct = (n: number) => `${round(n, 3)}%`;

/** Higher is worse, `limit` is the most allowed: judged on [low, high] when there is one. */
export function judgeUpperLimit(
  estimate: number,
  limit: number,
  interval?: { low: number; high: number },
): GateVerdict {
  if (!interval) return estimate <= limit ? 'pass' : 'fail';
  if (interval.high <= limit) return 'pass';
  if (interval.low > limit) return 'fail';
  return 'inconclusive';
}

function deltaCheck(
  name: 'quality-drop' | 'perplexity-increase',
  what: string,
  delta: PairedDelta,
  limit: number,
  detail: string,
): GateCheck {
  const interval = { low: delta.lowPct, high: delta.highPct };
  const verdict = judgeUpperLimit(delta.estimatePct, limit, interval);
  const range = `${Math.round(delta.confidence * 100)}% interval ${pct(delta.lowPct)} .. ${pct(delta.highPct)} over ${delta.items} paired items`;
  const why = verdict === 'inconclusive' ? `: the interval spans the limit, the measurement cannot tell` : '';
  return {
    name,
    observed: round(delta.estimatePct, 3),
    interval: { ...interval, confidence: delta.confidence, items: delta.items, method: delta.method },
    limit,
    verdict,
    passed: verdict === 'pass',
    message: `${what} ${pct(delta.estimatePct)} (${range}; ${detail}) vs limit ${limit}%${why}`,
  };
}

export function evaluateQualityGates(result: EvaluationResult, gates: QualityGates): GateReport {
  const { baseline, candidate } = result;
  const checks: GateCheck[] = [];
  const needed = requiredEvalSamples(gates.maxQualityDropPct);
  if (result.samples < needed) {
    checks.push({
      name: 'eval-samples',
      observed: result.samples,
      limit: needed,
      verdict: 'inconclusive',
      passed: false,
      message: `evaluated on ${result.samples} items; a ${gates.maxQualityDropPct}% quality gate needs at least ${needed}`,
    });
  }
  const scores = `score ${round(baseline.qualityScore, 4)} -> ${round(candidate.qualityScore, 4)}`;
  if (result.qualityDelta) {
    checks.push(
      deltaCheck('quality-drop', 'quality drop', result.qualityDelta, gates.maxQualityDropPct, scores),
    );
  } else {
    const dropPct =
      baseline.qualityScore > 0
        ? ((baseline.qualityScore - candidate.qualityScore) / baseline.qualityScore) * 100
        : 0;
    const verdict = judgeUpperLimit(dropPct, gates.maxQualityDropPct);
    checks.push({
      name: 'quality-drop',
      observed: round(dropPct, 3),
      limit: gates.maxQualityDropPct,
      verdict,
      passed: verdict === 'pass',
      message: `quality drop ${pct(dropPct)} (${scores}, no interval measured) vs limit ${gates.maxQualityDropPct}%`,
    });
  }
  if (result.perplexityDelta) {
    const ppl =
      baseline.perplexity && candidate.perplexity
        ? `perplexity ${round(baseline.perplexity.value, 3)} -> ${round(candidate.perplexity.value, 3)}`
        : 'perplexity';
    checks.push(
      deltaCheck(
        'perplexity-increase',
        'perplexity increase',
        result.perplexityDelta,
        gates.maxPerplexityIncreasePct,
        ppl,
      ),
    );
  }
  const memoryVerdict: GateVerdict = candidate.memoryGb <= gates.maxCandidateMemoryGb ? 'pass' : 'fail';
  const memoryWhat = candidate.memoryKind === 'process-rss' ? 'peak process memory' : 'GPU memory';
  checks.push({
    name: 'candidate-memory',
    observed: round(candidate.memoryGb),
    limit: gates.maxCandidateMemoryGb,
    verdict: memoryVerdict,
    passed: memoryVerdict === 'pass',
    message: `candidate ${memoryWhat} ${round(candidate.memoryGb)} GB (baseline ${round(baseline.memoryGb)} GB) vs limit ${gates.maxCandidateMemoryGb} GB`,
  });
  const gain = candidate.tokensPerSecond / baseline.tokensPerSecond;
  const gainVerdict: GateVerdict = gain >= gates.minThroughputGain ? 'pass' : 'fail';
  checks.push({
    name: 'throughput-gain',
    observed: round(gain),
    limit: gates.minThroughputGain,
    verdict: gainVerdict,
    passed: gainVerdict === 'pass',
    message: `throughput ${round(baseline.tokensPerSecond, 1)} -> ${round(candidate.tokensPerSecond, 1)} tok/s (x${round(gain)}) vs required x${gates.minThroughputGain}`,
  });
  const failures = checks.filter((c) => c.verdict === 'fail').map((c) => c.message);
  const inconclusive = checks.filter((c) => c.verdict === 'inconclusive').map((c) => c.message);
  const verdict: GateVerdict =
    failures.length > 0 ? 'fail' : inconclusive.length > 0 ? 'inconclusive' : 'pass';
  return { verdict, passed: verdict === 'pass', checks, failures, inconclusive };
}
