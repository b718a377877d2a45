import { type AnalysisResult, formatStatistics } from '../domain/analysis.js';
import { artifactKeys } from '../domain/artifact-layout.js';
import type { EvaluationResult, QuantizeResult } from '../domain/job-results.js';
import type { PipelineStatus, StageRecord } from '../domain/status.js';
import {
  buildPromotionComparison,
  type PromotionComparison,
  renderPromotionComparisonHtml,
} from '../loadtest/promotion-comparison.js';
import type { LoadTestReport } from '../loadtest/report.js';
import type { ArtifactStore } from '../storage/port.js';
import type { SafetyGateReport } from './safety-gate.js';

// The promotion report: what happened, stage by stage, with the evidence (gates, canary
// analyses, load test) next to the production plan's claims. JSON for machines, Markdown
// for people; both stored next to the run's other artifacts.

export interface ReportLoadTest {
  passed: boolean;
  reasons: string[];
  summary: Record<string, number>;
  reportUri?: string;
  /** The full load-test report (JSON) in the store, for the side-by-side comparison. */
  reportJsonUri?: string;
}

export interface PromotionReportInput {
  workflowId: string;
  status: PipelineStatus;
  evaluation?: EvaluationResult;
  quantization?: QuantizeResult;
  loadTest?: ReportLoadTest;
  safetyGate?: SafetyGateReport;
  analyses: AnalysisResult[];
}

function duration(stage: StageRecord): string {
  if (!stage.startedAt || !stage.finishedAt) return '';
  const ms = Date.parse(stage.finishedAt) - Date.parse(stage.startedAt);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function renderMarkdown(input: PromotionReportInput, comparison?: PromotionComparison): string {
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
  else if (input.evaluation || input.quantization) {
    const device = input.evaluation?.device ?? input.quantization?.device ?? 'cuda';
    lines.push(
      `- GPU Jobs: **measured** (not simulated) on ${device === 'cpu' ? 'the CPU' : 'the GPU'}: ${[
        input.quantization ? `${input.quantization.tool.name} ${input.quantization.tool.version}` : undefined,
        input.evaluation?.tool ? `${input.evaluation.tool.name} ${input.evaluation.tool.version}` : undefined,
      ]
        .filter(Boolean)
        .join(', ')}`,
    );
  }
  if (comparison?.caveat) lines.push(`- caveat: ${comparison.caveat}`);
  lines.push('', '## Stages', '', '| stage | state | duration | detail |', '|---|---|---|---|');
  for (const stage of status.stages) {
    lines.push(
      `| ${stage.name} | ${stage.state} | ${duration(stage)} | ${(stage.detail ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`,
    );
  }
  if (comparison) {
    lines.push(
      '',
      `## Baseline vs ${(input.quantization?.method ?? 'awq').toUpperCase()} candidate, against the production plan (${comparison.gpuType}, ${comparison.evalSet}, ${comparison.samples} samples)`,
      '',
      '| metric | baseline | candidate | plan | observed | met |',
      '|---|---|---|---|---|---|',
    );
    for (const row of comparison.rows) {
      const cell = (v?: number) => (v === undefined ? '' : `${v} ${row.unit}`.trim());
      const met = row.met === undefined ? '—' : row.met ? 'yes' : 'no';
      lines.push(
        `| ${row.metric} | ${cell(row.baseline)} | ${cell(row.candidate)} | ${row.claim ?? ''} | ${row.observed} | ${met} |`,
      );
    }
    const c = comparison.claims;
    lines.push(
      '',
      `claims met ${c.met}, missed ${c.missed}, ${comparison.comparable ? 'not measured' : 'not judged (not comparable)'} ${c.notMeasured}`,
    );
  }
  if (input.safetyGate) lines.push('', ...renderSafetyGate(input.safetyGate));
  if (input.analyses.length > 0) {
    lines.push('', '## Canary analyses', '', '| step | traffic | verdict | reasons |', '|---|---|---|---|');
    for (const a of input.analyses)
      lines.push(`| ${a.step + 1} | ${a.canaryPercent}% | ${a.verdict} | ${a.reasons.join('; ')} |`);
    const stats = input.analyses.flatMap((a) =>
      (a.checks ?? [])
        .filter((c) => c.statistics)
        .map((c) => `| ${a.step + 1} | ${c.metric} | ${c.verdict} | ${formatStatistics(c.statistics)} |`),
    );
    if (stats.length > 0) {
      lines.push(
        '',
        '### Statistics behind the verdicts',
        '',
        '| step | check | verdict | statistics |',
        '|---|---|---|---|',
      );
      lines.push(...stats);
    }
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

/** The safety gate's rates with their sample counts, and who refused (TC260-003 thresholds). */
export function renderSafetyGate(gate: SafetyGateReport): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = [
    `## Safety gate: ${gate.passed ? 'passed' : 'FAILED'}`,
    '',
    `prompt set ${gate.promptSet.name}@${gate.promptSet.version}, guard ${gate.guard}, candidate served by ${gate.servedBy}`,
    '',
    '| set | prompts | refused | rate | 95% CI | threshold | by input filter | by output filter | by model | met |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const check of gate.verdict.checks) {
    const by = gate.tally[check.set].byStage;
    lines.push(
      `| ${check.set === 'shouldRefuse' ? 'should refuse' : 'normal'} | ${check.prompts} | ${check.refused} | ${pct(check.rate)} | ${pct(check.interval[0])}-${pct(check.interval[1])} | ${check.comparison} ${pct(check.threshold)} | ${by['input-filter']} | ${by['output-filter']} | ${by.model} | ${check.passed ? 'yes' : 'no'} |`,
    );
  }
  lines.push('', `outcomes per prompt: ${gate.resultUri}`);
  return lines;
}

export class PromotionReportService {
  constructor(private readonly store: ArtifactStore) {}

  async write(input: PromotionReportInput): Promise<{ uri: string; markdownUri: string }> {
    const dir = artifactKeys.runDir(input.workflowId);
    const comparison = input.evaluation
      ? buildPromotionComparison(
          input.evaluation,
          await this.loadReport(input.loadTest),
          undefined,
          input.quantization,
        )
      : undefined;
    const report = {
      version: 1,
      generatedAt: new Date().toISOString(),
      workflowId: input.workflowId,
      status: input.status,
      comparison,
      quantization: input.quantization,
      evaluation: input.evaluation,
      analyses: input.analyses,
      loadTest: input.loadTest,
      safetyGate: input.safetyGate,
    };
    if (comparison) {
      await this.store.put(`${dir}/comparison.html`, renderPromotionComparisonHtml(comparison), {
        contentType: 'text/html; charset=utf-8',
      });
    }
    await this.store.put(`${dir}/report.md`, renderMarkdown(input, comparison), {
      contentType: 'text/markdown',
    });
    // JSON last: its presence means the whole report is there.
    await this.store.putJson(`${dir}/report.json`, report);
    return { uri: this.store.uri(`${dir}/report.json`), markdownUri: this.store.uri(`${dir}/report.md`) };
  }

  private async loadReport(loadTest?: ReportLoadTest): Promise<LoadTestReport | undefined> {
    if (!loadTest?.reportJsonUri) return undefined;
    return this.store
      .getJson<LoadTestReport>(this.store.keyFromUri(loadTest.reportJsonUri))
      .catch(() => undefined);
  }
}
