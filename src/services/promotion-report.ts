import type { AnalysisResult } from '../domain/analysis.js';
import type { EvaluationResult, QuantizeResult } from '../domain/job-results.js';
import { artifactKeys } from '../domain/promotion-spec.js';
import type { PipelineStatus, StageRecord } from '../domain/status.js';
import type { ArtifactStore } from '../storage/port.js';

// The promotion report: what happened, stage by stage, with the evidence (gates, canary
// analyses, load test) next to the production plan's claims. JSON for machines, Markdown
// for people; both stored next to the run's other artifacts.

export interface ReportLoadTest {
  passed: boolean;
  reasons: string[];
  summary: Record<string, number>;
  reportUri?: string;
}

export interface PromotionReportInput {
  workflowId: string;
  status: PipelineStatus;
  evaluation?: EvaluationResult;
  quantization?: QuantizeResult;
  loadTest?: ReportLoadTest;
  analyses: AnalysisResult[];
}

export interface ClaimRow {
  claim: string;
  planned: string;
  observed: string;
  met: boolean | null;
}

/** The seed's numbers for Qwen-7B-Chat on an A10, set against what this run measured. */
export function compareWithPlan(evaluation?: EvaluationResult, loadTest?: ReportLoadTest): ClaimRow[] {
  const rows: ClaimRow[] = [];
  if (evaluation) {
    const { baseline, candidate } = evaluation;
    const drop = ((baseline.qualityScore - candidate.qualityScore) / baseline.qualityScore) * 100;
    rows.push(
      {
        claim: 'GPU memory',
        planned: '14.2 GB -> 9.6 GB',
        observed: `${baseline.memoryGb.toFixed(1)} GB -> ${candidate.memoryGb.toFixed(1)} GB`,
        met: candidate.memoryGb <= 9.6 * 1.05,
      },
      {
        claim: 'throughput',
        planned: '420 -> 850 tok/s',
        observed: `${baseline.tokensPerSecond.toFixed(0)} -> ${candidate.tokensPerSecond.toFixed(0)} tok/s`,
        met: candidate.tokensPerSecond >= 850 * 0.95,
      },
      { claim: 'quality loss', planned: '< 1 %', observed: `${drop.toFixed(2)} %`, met: drop < 1 },
    );
  }
  const p99 = loadTest?.summary.p99E2eMs ?? loadTest?.summary.p99_e2e_ms;
  rows.push({
    claim: 'P99 latency',
    planned: '< 300 ms',
    observed: p99 === undefined ? 'not measured' : `${p99.toFixed(0)} ms`,
    met: p99 === undefined ? null : p99 < 300,
  });
  return rows;
}

function duration(stage: StageRecord): string {
  if (!stage.startedAt || !stage.finishedAt) return '';
  const ms = Date.parse(stage.finishedAt) - Date.parse(stage.startedAt);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function renderMarkdown(input: PromotionReportInput, claims: ClaimRow[]): string {
  const { status } = input;
  const lines: string[] = [];
  const title =
    status.kind === 'promotion'
      ? `Promotion of ${status.model}`
      : `Canary release on ${status.service.namespace}/${status.service.name}`;
  lines.push(`# ${title}`, '');
  lines.push(`- workflow: \`${input.workflowId}\``);
  lines.push(`- service: ${status.service.namespace}/${status.service.name}`);
  lines.push(`- outcome: **${status.outcome}**${status.reason ? ` — ${status.reason}` : ''}`);
  const simulated = input.quantization?.simulated || input.evaluation?.simulated;
  if (simulated)
    lines.push('- note: GPU Jobs ran as **simulations** (sandbox backend); their numbers are illustrative');
  lines.push('', '## Stages', '', '| stage | state | duration | detail |', '|---|---|---|---|');
  for (const stage of status.stages) {
    lines.push(
      `| ${stage.name} | ${stage.state} | ${duration(stage)} | ${(stage.detail ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`,
    );
  }
  if (claims.length > 0) {
    lines.push(
      '',
      '## Against the production plan',
      '',
      '| claim | plan | observed | met |',
      '|---|---|---|---|',
    );
    for (const row of claims)
      lines.push(
        `| ${row.claim} | ${row.planned} | ${row.observed} | ${row.met === null ? '—' : row.met ? 'yes' : 'no'} |`,
      );
  }
  if (input.analyses.length > 0) {
    lines.push('', '## Canary analyses', '', '| step | traffic | verdict | reasons |', '|---|---|---|---|');
    for (const a of input.analyses)
      lines.push(`| ${a.step + 1} | ${a.canaryPercent}% | ${a.verdict} | ${a.reasons.join('; ')} |`);
  }
  if (input.loadTest) {
    lines.push(
      '',
      '## Load test',
      '',
      `passed: ${input.loadTest.passed ? 'yes' : 'no'}${input.loadTest.reasons.length ? ` (${input.loadTest.reasons.join('; ')})` : ''}`,
      '',
    );
    for (const [k, v] of Object.entries(input.loadTest.summary))
      lines.push(`- ${k}: ${Number.isInteger(v) ? v : v.toFixed(2)}`);
  }
  if (status.compensations.length > 0) {
    lines.push('', '## Compensations (newest first)', '');
    for (const c of status.compensations)
      lines.push(`- ${c.name}: ${c.state}${c.detail ? ` (${c.detail})` : ''}`);
  }
  const artifacts = Object.entries(status.artifacts);
  if (artifacts.length > 0) {
    lines.push('', '## Artifacts', '');
    for (const [k, v] of artifacts) lines.push(`- ${k}: ${v}`);
  }
  return `${lines.join('\n')}\n`;
}

export class PromotionReportService {
  constructor(private readonly store: ArtifactStore) {}

  async write(input: PromotionReportInput): Promise<{ uri: string; markdownUri: string }> {
    const dir = artifactKeys.runDir(input.workflowId);
    const claims = input.status.kind === 'promotion' ? compareWithPlan(input.evaluation, input.loadTest) : [];
    const report = {
      version: 1,
      generatedAt: new Date().toISOString(),
      workflowId: input.workflowId,
      status: input.status,
      claims,
      quantization: input.quantization,
      evaluation: input.evaluation,
      analyses: input.analyses,
      loadTest: input.loadTest,
    };
    await this.store.putJson(`${dir}/report.json`, report);
    await this.store.put(`${dir}/report.md`, renderMarkdown(input, claims), { contentType: 'text/markdown' });
    return { uri: this.store.uri(`${dir}/report.json`), markdownUri: this.store.uri(`${dir}/report.md`) };
  }
}
