// Canary analysis outcomes. Shared by workflows (pure decisions), activities and the
// analysis providers in src/analysis.

/**
 * pass / fail are decisions about the canary. inconclusive means the measurement itself
 * could not decide (provider error, no data, too few samples): it is never a breach and
 * never a pass, and it pauses the rollout for a human.
 */
export type Verdict = 'pass' | 'fail' | 'inconclusive';

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** What one revision did during an analysis window. */
export interface RevisionMeasurement {
  revision: string;
  requests: number;
  errors: number;
  errorRatePct: number;
  /** End-to-end latency of successful requests. */
  latency?: LatencySummary;
  /** Time to first token of successful streaming requests. */
  ttft?: LatencySummary;
}

export interface AnalysisCheck {
  metric: string;
  /** The observed value, absent when it could not be measured. */
  value?: number;
  threshold: number;
  comparator: '<=' | '>=';
  verdict: Verdict;
  message: string;
}

export interface AnalysisResult {
  /** Index of the canary step in the plan, 0-based. */
  step: number;
  canaryPercent: number;
  verdict: Verdict;
  /** Human-readable reasons; for fail and inconclusive the first one is the headline. */
  reasons: string[];
  checks: AnalysisCheck[];
  provider: string;
  canary?: RevisionMeasurement;
  stable?: RevisionMeasurement;
  startedAt: string;
  finishedAt: string;
}

/** Combines per-check verdicts: any fail fails; otherwise any inconclusive is inconclusive. */
export function combineVerdicts(verdicts: readonly Verdict[]): Verdict {
  if (verdicts.length === 0) return 'inconclusive';
  if (verdicts.includes('fail')) return 'fail';
  if (verdicts.includes('inconclusive')) return 'inconclusive';
  return 'pass';
}
