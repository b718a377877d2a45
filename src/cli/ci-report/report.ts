import type { AnalysisResult } from '../../domain/analysis.js';
import type { Outcome, PipelineStatus } from '../../domain/status.js';

// What the CI renderers (JUnit, Markdown summary) are given: how a release ended (or where it
// stood when the CLI stopped waiting), its final status, and every analysis of its run.

export interface CiReport {
  workflowId: string;
  /** `running` when the CLI stopped waiting before the end (the CI job was cancelled). */
  outcome: Outcome;
  reason?: string;
  failureType?: string;
  /** The exit code the CLI exits with. */
  exitCode: number;
  /** What the CLI did on cancellation, when it was cancelled. */
  cancelled?: 'detached' | 'aborted';
  status?: PipelineStatus;
  /** Every canary analysis, oldest first (from the run's history; the status keeps the last). */
  analyses: AnalysisResult[];
  uiUrl?: string;
}

/** The analyses to show: those given, or else the status's last one. */
export function analysesOf(report: CiReport): AnalysisResult[] {
  if (report.analyses.length > 0) return report.analyses;
  return report.status?.lastAnalysis ? [report.status.lastAnalysis] : [];
}

/** Stages that decide something (the gates of a release); the canary stage is its analyses. */
export function gateStages(status: PipelineStatus | undefined): PipelineStatus['stages'] {
  return (status?.stages ?? []).filter((s) => s.name !== 'canary' && s.name !== 'report');
}

export function analysisName(a: AnalysisResult): string {
  return `analysis step ${a.step + 1} at ${a.canaryPercent}% canary traffic`;
}

export function durationSeconds(from?: string, to?: string): number {
  if (!from || !to) return 0;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) && ms > 0 ? ms / 1000 : 0;
}

/** From the first stage's start to the last stage's end (or now, while it runs). */
export function releaseSeconds(report: CiReport, now = new Date()): number {
  const stages = report.status?.stages ?? [];
  const first = stages.find((s) => s.startedAt)?.startedAt;
  const ends = stages
    .map((s) => s.finishedAt)
    .filter((t): t is string => Boolean(t))
    .sort();
  const last = report.outcome === 'running' ? now.toISOString() : ends[ends.length - 1];
  return durationSeconds(first, last);
}
