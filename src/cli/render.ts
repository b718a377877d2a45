import { type AnalysisResult, formatStatistics } from '../domain/analysis.js';
import {
  formatEta,
  formatRate,
  formatThroughput,
  type ReindexReport,
  type ReindexStatus,
} from '../domain/knowledge.js';
import type { PipelineStatus, StageRecord } from '../domain/status.js';

// Human-readable renderings of a pipeline's status for the terminal.

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes}m${Math.round((ms % 60_000) / 1000)
    .toString()
    .padStart(2, '0')}s`;
}

function stageDuration(stage: StageRecord): string {
  if (!stage.startedAt) return '';
  const end = stage.finishedAt ? Date.parse(stage.finishedAt) : Date.now();
  return formatDuration(end - Date.parse(stage.startedAt));
}

const MARK: Record<string, string> = {
  pending: ' ',
  running: '>',
  waiting: '?',
  succeeded: '+',
  failed: 'x',
  skipped: '-',
  compensated: '~',
};

/** A stage timeline: one line per stage with state, start offset, duration and detail. */
export function renderTimeline(status: PipelineStatus): string {
  const first = status.stages.find((s) => s.startedAt)?.startedAt;
  const origin = first ? Date.parse(first) : Date.now();
  const width = Math.max(...status.stages.map((s) => s.name.length));
  return status.stages
    .map((s) => {
      const offset = s.startedAt ? `+${formatDuration(Date.parse(s.startedAt) - origin)}` : '';
      return `  [${MARK[s.state] ?? '?'}] ${s.name.padEnd(width)}  ${s.state.padEnd(11)} ${offset.padStart(9)} ${stageDuration(s).padStart(9)}  ${(s.detail ?? '').split('\n')[0]}`;
    })
    .join('\n');
}

/** One line per check that carries statistics: "e2e_vs_stable: pass p=0.41 U=44012 ratio 1.01 [0.97,1.05] n=300/298". */
export function renderCheckStatistics(analysis: AnalysisResult, indent = '  '): string[] {
  return (analysis.checks ?? [])
    .filter((c) => c.statistics)
    .map((c) => `${indent}${c.metric}: ${c.verdict} ${formatStatistics(c.statistics)}`);
}

export function renderStatus(status: PipelineStatus, pendingActivities: string[] = []): string {
  const lines: string[] = [];
  const what = status.kind === 'promotion' ? `promotion of ${status.model}` : 'canary release';
  lines.push(`${status.workflowId}: ${what} -> ${status.service.namespace}/${status.service.name}`);
  lines.push(`outcome: ${status.outcome}${status.reason ? ` (${status.reason})` : ''}`);
  lines.push(`stage: ${status.stage}  progress: ${status.progress.percent}%  ${status.progress.message}`);
  const t = status.traffic;
  lines.push(
    `traffic: stable ${t.stableRevision ?? '-'} ${100 - t.canaryPercent - (t.baselinePercent ?? 0)}% | canary ${t.canaryRevision ?? '-'} ${t.canaryPercent}%${t.baselineRevision ? ` | baseline ${t.baselineRevision} ${t.baselinePercent ?? 0}%` : ''}${status.paused ? '  [PAUSED]' : ''}`,
  );
  if (status.lastAnalysis) {
    const a = status.lastAnalysis;
    lines.push(
      `last analysis: step ${a.step + 1} at ${a.canaryPercent}%: ${a.verdict}${a.reasons.length ? ` (${a.reasons.join('; ')})` : ''}`,
    );
    lines.push(...renderCheckStatistics(a, '    '));
  }
  if (status.pendingDecision) {
    const d = status.pendingDecision;
    lines.push(`WAITING FOR A DECISION (${d.gate}, until ${d.deadline}): ${d.question}`);
    lines.push(
      `  qwenops approve ${status.workflowId}   |   qwenops reject ${status.workflowId} --comment "..."`,
    );
  }
  for (const activity of pendingActivities) lines.push(`running: ${activity}`);
  lines.push('stages:', renderTimeline(status));
  if (status.compensations.length > 0) {
    lines.push(
      'compensations:',
      ...status.compensations.map((c) => `  ${c.name}: ${c.state}${c.detail ? ` (${c.detail})` : ''}`),
    );
  }
  if (status.reportUri) lines.push(`report: ${status.reportUri}`);
  return lines.join('\n');
}

/** `qwenops kb status`: phase, progress, counters and, while indexing, rates and ETA. */
export function renderReindexStatus(status: ReindexStatus): string {
  const c = status.counters;
  const lines = [
    `${status.table}: ${status.outcome}, phase ${status.phase} (${status.progress.percent}%): ${status.progress.message}`,
    `  sources ${status.sourcesDone}/${status.sourcesListed ?? '?'}${status.batchesInFlight !== undefined ? ` (${status.batchesInFlight} batches in flight)` : ''}; documents ${c.documents}; chunks +${c.chunksAdded} =${c.chunksKept} -${c.chunksRemoved}; embedding calls ${c.embeddingCalls}, inputs ${c.embeddedInputs}`,
  ];
  const t = status.throughput;
  if (t) {
    const perBatch =
      t.embeddedInputsPerEmbedSecond !== undefined
        ? ` (${formatRate(t.embeddedInputsPerEmbedSecond)} per batch while embedding)`
        : '';
    lines.push(
      `  rate (average over ${formatDuration(t.elapsedMs)} indexing): ${formatRate(t.sourcesPerSecond)} sources, ${formatRate(t.documentsPerSecond)} documents, ${formatRate(t.chunksPerSecond)} chunks, ${formatRate(t.embeddedInputsPerSecond)} embedding inputs${perBatch}`,
    );
    if (t.recent)
      lines.push(
        `  rate (last ${formatDuration(t.recent.windowMs)}): ${formatRate(t.recent.sourcesPerSecond)} sources, ${formatRate(t.recent.documentsPerSecond)} documents, ${formatRate(t.recent.chunksPerSecond)} chunks, ${formatRate(t.recent.embeddedInputsPerSecond)} embedding inputs`,
      );
    if (status.outcome === 'running' && status.phase === 'index') {
      lines.push(
        t.eta
          ? `  ETA of the index phase: ${formatEta(t.eta.remainingMs)} (${t.eta.remainingSources} sources left at the ${t.eta.basis} rate, about ${t.eta.at}; as of ${t.asOf})`
          : '  ETA of the index phase: unknown (the listing grew past its count, or no rate yet)',
      );
    }
  }
  if (status.reason) lines.push(`  reason: ${status.reason}`);
  return lines.join('\n');
}

/** One progress line while `qwenops kb reindex --wait` waits. */
export function renderReindexProgressLine(status: ReindexStatus): string {
  const sources = `${status.sourcesDone}/${status.sourcesListed ?? '?'} sources`;
  const rates =
    status.throughput && status.phase === 'index' ? ` | ${formatThroughput(status.throughput)}` : '';
  return `${status.phase} ${status.progress.percent}% ${sources}${rates}`;
}

/** The throughput line of a re-index report (absent for reports without it). */
export function renderReportThroughput(report: Pick<ReindexReport, 'throughput'>): string | undefined {
  return report.throughput
    ? `  throughput: ${formatThroughput(report.throughput, 'average')} over ${formatDuration(report.throughput.elapsedMs)} of indexing`
    : undefined;
}
