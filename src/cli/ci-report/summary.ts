import type { AnalysisResult, CheckStatistics } from '../../domain/analysis.js';
import { formatDuration } from '../render.js';
import { analysesOf, type CiReport, releaseSeconds } from './report.js';

// A Markdown summary of a release for a CI job page (GitHub's $GITHUB_STEP_SUMMARY, GitLab
// job artifacts): the outcome, the stage timeline, the traffic steps with their verdicts, the
// statistics behind each verdict, and links to the report and the Temporal UI.

const ICON: Record<string, string> = {
  promoted: '✅',
  rolled_back: '↩️',
  rejected: '⛔',
  aborted: '🛑',
  failed: '❌',
  running: '⏳',
  pass: '✅',
  fail: '❌',
  inconclusive: '❔',
  succeeded: '✅',
  skipped: '⏭️',
  pending: '·',
  waiting: '⏸️',
  compensated: '↩️',
};

/** One table cell: no line breaks, pipes and HTML escaped (the summary is rendered as GFM). */
export function cell(text: string | number | undefined): string {
  if (text === undefined || text === '') return '';
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\|/g, '\\|')
    .replace(/\r?\n/g, '<br>');
}

const num = (v: number | undefined) =>
  v === undefined || !Number.isFinite(v)
    ? ''
    : v === 0
      ? '0'
      : Math.abs(v) < 1e-3
        ? v.toExponential(2)
        : Number(v.toPrecision(4)).toString();

function effectText(s: CheckStatistics): string {
  if (!s.effect) return '';
  const e = s.effect;
  const level = e.level !== undefined ? ` (${Math.round(e.level * 100)}% CI)` : '';
  const interval =
    e.lower !== undefined && e.upper !== undefined ? ` [${num(e.lower)}, ${num(e.upper)}]${level}` : '';
  return `${e.measure} ${num(e.estimate)}${interval}`;
}

function statisticsRows(a: AnalysisResult): string[] {
  return a.checks.map((c) => {
    const s = c.statistics;
    const value = c.value === undefined ? 'not measured' : num(c.value);
    const samples = s ? `${s.n1}${s.n2 !== undefined ? ` / ${s.n2}` : ''}` : '';
    const p = s?.p ?? s?.pVsSlo ?? s?.pVsStable;
    const errors =
      s?.errors1 !== undefined ? ` errors ${s.errors1}${s.errors2 !== undefined ? `/${s.errors2}` : ''}` : '';
    return `| ${a.step + 1} (${a.canaryPercent}%) | ${cell(c.metric)} | ${ICON[c.verdict] ?? ''} ${c.verdict} | ${cell(value)} ${c.comparator} ${num(c.threshold)} | ${cell(s?.test)} | ${s?.u === undefined ? '' : Math.round(s.u * 10) / 10} | ${num(p)} | ${cell(s ? effectText(s) : '')} | ${samples}${cell(errors)} | ${cell(c.message)} |`;
  });
}

export function renderSummary(report: CiReport): string {
  const status = report.status;
  const lines: string[] = [];
  const service = status ? ` of \`${status.service.namespace}/${status.service.name}\`` : '';
  lines.push(
    `### ${ICON[report.outcome] ?? ''} Canary release${service}: ${report.outcome.replace('_', ' ')}`,
    '',
  );
  lines.push(
    `- Workflow: \`${report.workflowId}\`${report.uiUrl ? ` ([Temporal UI](${report.uiUrl}))` : ''}`,
  );
  if (report.reason) lines.push(`- Reason: ${cell(report.reason)}`);
  if (report.cancelled) {
    lines.push(
      report.cancelled === 'aborted'
        ? '- The CI job was cancelled: the release was told to abort (it rolls back)'
        : `- The CI job was cancelled: the CLI detached, the release goes on (\`qwenops status ${report.workflowId} --follow\`)`,
    );
  }
  if (status?.traffic) {
    const t = status.traffic;
    lines.push(
      `- Traffic: stable \`${t.stableRevision ?? '-'}\` ${100 - t.canaryPercent}% · canary \`${t.canaryRevision ?? '-'}\` ${t.canaryPercent}%`,
    );
  }
  if (status?.reportUri)
    lines.push(
      `- Report: ${status.reportUri.startsWith('http') ? `[${status.reportUri}](${status.reportUri})` : `\`${status.reportUri}\``}`,
    );
  lines.push(
    `- Exit code: ${report.exitCode} · duration ${formatDuration(Math.round(releaseSeconds(report) * 1000))}`,
    '',
  );

  if (status && status.stages.length > 0) {
    const first = status.stages.find((s) => s.startedAt)?.startedAt;
    const origin = first ? Date.parse(first) : 0;
    lines.push(
      '#### Stages',
      '',
      '| Stage | State | Start | Duration | Detail |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const s of status.stages) {
      const start = s.startedAt && origin ? `+${formatDuration(Date.parse(s.startedAt) - origin)}` : '';
      const end = s.finishedAt ? Date.parse(s.finishedAt) : undefined;
      const duration = s.startedAt && end !== undefined ? formatDuration(end - Date.parse(s.startedAt)) : '';
      lines.push(
        `| ${cell(s.name)} | ${ICON[s.state] ?? ''} ${s.state} | ${start} | ${duration} | ${cell(s.detail)} |`,
      );
    }
    lines.push('');
  }

  const analyses = analysesOf(report);
  if (analyses.length > 0) {
    lines.push(
      '#### Traffic steps',
      '',
      '| Step | Canary traffic | Verdict | Window | Reasons | Source |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const a of analyses) {
      const window =
        a.startedAt && a.finishedAt ? formatDuration(Date.parse(a.finishedAt) - Date.parse(a.startedAt)) : '';
      lines.push(
        `| ${a.step + 1} | ${a.canaryPercent}% | ${ICON[a.verdict] ?? ''} ${a.verdict} | ${window} | ${cell(a.reasons.join('; '))} | ${cell(a.criteria?.source ?? a.provider)} |`,
      );
    }
    lines.push(
      '',
      '#### Verdicts and statistics',
      '',
      '| Step | Check | Verdict | Value vs threshold | Test | U | p | Effect (interval) | n canary / stable | Detail |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...analyses.flatMap(statisticsRows),
      '',
    );
  }
  if (status && status.compensations.length > 0) {
    lines.push('#### Compensations', '');
    for (const c of status.compensations)
      lines.push(`- ${c.name}: ${c.state}${c.detail ? ` (${cell(c.detail)})` : ''}`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
