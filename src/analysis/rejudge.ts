import { type AnalysisResult, formatStatistics, type Verdict } from '../domain/analysis.js';
import { sloSchema } from '../domain/promotion-spec.js';
import { parseInput } from '../domain/validation.js';
import { type Judgement, judgeCanary, judgePolicy } from './checks.js';

// Retrospective judging: every analysis keeps its binned samples and what it was judged
// against (AnalysisResult.canary/stable.distributions and .criteria, in workflow history),
// so the judge can be re-run with other thresholds to see which past decisions would flip
// (`qwenops analysis rejudge`). Pure.

/** Thresholds to judge with instead of the recorded ones; absent fields keep the recorded value. */
export interface RejudgeOverrides {
  alpha?: number;
  minLatencyEffectRatio?: number;
  p99LatencyMs?: number;
  maxErrorRatePct?: number;
  maxLatencyRatioVsStable?: number;
  absolutePolicy?: 'worse-than-stable' | 'margin';
  absoluteMarginPct?: number;
  minSamples?: number;
}

export interface RejudgeRow {
  step: number;
  canaryPercent: number;
  startedAt: string;
  /** The recorded verdict. */
  before: Verdict;
  /** The verdict with the new thresholds; absent when the analysis cannot be judged again. */
  after?: Verdict;
  flipped: boolean;
  /** Why it cannot be judged again (recorded before samples were kept). */
  skipped?: string;
  /** The first reason of the new judgement. */
  headline?: string;
  judgement?: Judgement;
}

export interface RejudgeReport {
  rows: RejudgeRow[];
  flipped: number;
  skipped: number;
}

/** Re-runs the judge on one stored analysis. Throws InputValidationError for bad thresholds. */
export function rejudgeAnalysis(result: AnalysisResult, overrides: RejudgeOverrides = {}): RejudgeRow {
  const row = {
    step: result.step,
    canaryPercent: result.canaryPercent,
    startedAt: result.startedAt,
    before: result.verdict,
  };
  const criteria = result.criteria;
  const hasSamples = Boolean(
    result.canary?.distributions && Object.keys(result.canary.distributions).length > 0,
  );
  if (
    !criteria ||
    !result.canary ||
    (!hasSamples && !criteria.invalidMeasurement && !criteria.problems?.length)
  ) {
    return {
      ...row,
      flipped: false,
      skipped: !result.canary
        ? 'no measurement was recorded (nothing to measure)'
        : 'recorded without its samples or criteria (before retrospective judging existed)',
    };
  }
  const { minSamples, ...sloOverrides } = overrides;
  const slo = parseInput('rejudge thresholds', sloSchema, {
    ...judgePolicy(criteria.slo),
    ...defined(sloOverrides),
  });
  const judgement = judgeCanary({
    canary: result.canary,
    stable: result.stable,
    slo,
    minSamples: minSamples ?? criteria.minSamples,
    source: criteria.source,
    problems: criteria.problems,
    invalidMeasurement: criteria.invalidMeasurement,
  });
  return {
    ...row,
    after: judgement.verdict,
    flipped: judgement.verdict !== result.verdict,
    headline: judgement.reasons[0],
    judgement,
  };
}

/** Re-runs the judge on every stored analysis of a run, in order. */
export function rejudgeAnalyses(
  results: readonly AnalysisResult[],
  overrides: RejudgeOverrides = {},
): RejudgeReport {
  const rows = results.map((r) => rejudgeAnalysis(r, overrides));
  return {
    rows,
    flipped: rows.filter((r) => r.flipped).length,
    skipped: rows.filter((r) => r.skipped).length,
  };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The report for a terminal: one line per analysis, the flips marked, their deciding checks. */
export function renderRejudge(
  workflowId: string,
  report: RejudgeReport,
  overrides: RejudgeOverrides,
): string {
  const lines: string[] = [];
  const changed = Object.entries(defined(overrides))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  lines.push(
    `${workflowId}: ${report.rows.length} analyses re-judged${changed ? ` with ${changed}` : ' with their recorded thresholds'}`,
  );
  for (const row of report.rows) {
    const head = `  step ${row.step + 1} at ${row.canaryPercent}% (${row.startedAt}): `;
    if (row.skipped) {
      lines.push(`${head}${row.before}, not re-judged: ${row.skipped}`);
      continue;
    }
    lines.push(`${head}${row.before} -> ${row.after}${row.flipped ? '  WOULD FLIP' : ''}`);
    if (row.flipped && row.headline) lines.push(`      ${row.headline}`);
    if (row.flipped) {
      for (const check of row.judgement?.checks ?? []) {
        if (check.statistics && check.verdict !== 'pass')
          lines.push(`      ${check.metric}: ${check.verdict} ${formatStatistics(check.statistics)}`);
      }
    }
  }
  lines.push(
    report.flipped === 0
      ? 'no decision would flip'
      : `${report.flipped} of ${report.rows.length - report.skipped} decisions would flip`,
  );
  if (report.skipped > 0) lines.push(`${report.skipped} could not be re-judged`);
  return lines.join('\n');
}
