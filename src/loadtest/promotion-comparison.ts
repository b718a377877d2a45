import type { EvaluationResult, PairedDelta, QuantizeResult } from '../domain/job-results.js';
import { escapeHtml, htmlPage } from './html.js';
import type { LoadTestReport } from './report.js';

// Baseline next to AWQ candidate, next to what the production plan claims for Qwen-7B-Chat
// on an A10 (memory 14.2 -> 9.6 GB, 420 -> 850 tokens/s, < 1 % quality loss, P99 < 300 ms),
// each claim marked met or not. Memory and throughput claims are judged as ratios (the
// candidate needs <= 9.6/14.2 of the baseline's memory, delivers >= 850/420 of its tokens/s)
// so they carry over to other model sizes and GPUs; the absolute figures are shown too.
// Pure: the promotion report service renders it next to its own sections.
//
// Figures measured on the CPU (the sandbox's real engine: a tiny model, not Qwen-7B on an
// A10) are shown next to the claims for reference but not judged against them: the report
// says so instead of calling a claim met or missed.

export const SEED_CLAIMS = {
  memoryGb: { baseline: 14.2, candidate: 9.6 },
  tokensPerSecond: { baseline: 420, candidate: 850 },
  maxQualityLossPct: 1,
  p99LatencyMs: 300,
} as const;

export interface ComparisonRow {
  metric: string;
  unit: string;
  baseline?: number;
  candidate?: number;
  /** What the production plan claims, in words. */
  claim?: string;
  /** What was observed, in words. */
  observed: string;
  /** How "met" is decided. */
  rule?: string;
  /** Absent for informational rows and for claims that could not be measured. */
  met?: boolean;
  note?: string;
}

export interface PromotionComparison {
  model?: string;
  gpuType: string;
  evalSet: string;
  samples: number;
  /** True when the evaluation or the load test ran on simulated hardware. */
  simulated: boolean;
  /** Where the evaluation ran, when the Job said (cuda or cpu). */
  device?: 'cuda' | 'cpu';
  /** False when the figures cannot be compared with the plan's A10 claims (a model on CPU). */
  comparable: boolean;
  /** Why not comparable, in words. */
  caveat?: string;
  rows: ComparisonRow[];
  /** Claims judged met / missed / not measured. */
  claims: { met: number; missed: number; notMeasured: number };
}

const round = (v: number, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;
const pct = (v: number) => `${v >= 0 ? '+' : '−'}${Math.abs(round(v, 1))} %`;

const intervalText = (d: PairedDelta) =>
  `${Math.round(d.confidence * 100)} % interval ${round(d.lowPct, 2)} .. ${round(d.highPct, 2)} %, ${d.items} paired items`;

export function buildPromotionComparison(
  evaluation: EvaluationResult,
  loadReport?: LoadTestReport,
  baselineLoadReport?: LoadTestReport,
  quantization?: QuantizeResult,
): PromotionComparison {
  const { baseline, candidate } = evaluation;
  const rows: ComparisonRow[] = [];
  const comparable = evaluation.device !== 'cpu';
  // On the CPU the claims are shown, never judged.
  const judge = (met: boolean): boolean | undefined => (comparable ? met : undefined);

  if (quantization) {
    const ratio =
      quantization.originalSizeBytes > 0 ? quantization.sizeBytes / quantization.originalSizeBytes : 0;
    rows.push({
      metric: 'Model size (files)',
      unit: 'MB',
      baseline: round(quantization.originalSizeBytes / 1e6, 3),
      candidate: round(quantization.sizeBytes / 1e6, 3),
      observed: `${round(quantization.originalSizeBytes / 1e6, 2)} MB → ${round(quantization.sizeBytes / 1e6, 2)} MB (×${round(ratio, 3)})`,
      note: `${quantization.method.toUpperCase()} w${quantization.bits} g${quantization.groupSize}, ${quantization.tool.name} ${quantization.tool.version}${quantization.device ? ` on ${quantization.device}` : ''}, ${round(quantization.durationSeconds, 1)} s`,
    });
  }

  const memoryRatio = candidate.memoryGb / baseline.memoryGb;
  const claimedMemoryRatio = SEED_CLAIMS.memoryGb.candidate / SEED_CLAIMS.memoryGb.baseline;
  rows.push({
    metric: candidate.memoryKind === 'process-rss' ? 'Peak process memory (CPU)' : 'GPU memory',
    unit: 'GB',
    baseline: baseline.memoryGb,
    candidate: candidate.memoryGb,
    claim: `${SEED_CLAIMS.memoryGb.baseline} GB → ${SEED_CLAIMS.memoryGb.candidate} GB (${pct((claimedMemoryRatio - 1) * 100)})`,
    observed: `${round(baseline.memoryGb)} GB → ${round(candidate.memoryGb)} GB (${pct((memoryRatio - 1) * 100)})`,
    rule: `candidate / baseline <= ${round(claimedMemoryRatio, 3)}`,
    met: judge(memoryRatio <= claimedMemoryRatio + 1e-9),
  });

  const gain = candidate.tokensPerSecond / baseline.tokensPerSecond;
  const claimedGain = SEED_CLAIMS.tokensPerSecond.candidate / SEED_CLAIMS.tokensPerSecond.baseline;
  rows.push({
    metric: 'Throughput (evaluation)',
    unit: 'tokens/s',
    baseline: baseline.tokensPerSecond,
    candidate: candidate.tokensPerSecond,
    claim: `${SEED_CLAIMS.tokensPerSecond.baseline} → ${SEED_CLAIMS.tokensPerSecond.candidate} tokens/s (×${round(claimedGain)})`,
    observed: `${round(baseline.tokensPerSecond, 1)} → ${round(candidate.tokensPerSecond, 1)} tokens/s (×${round(gain)})`,
    rule: `candidate / baseline >= ${round(claimedGain, 3)}`,
    met: judge(gain >= claimedGain - 1e-9),
    note: candidate.generation
      ? `greedy generation, ${candidate.generation.prompts} prompts, ${candidate.generation.tokens} tokens, batch ${candidate.generation.batchSize}`
      : undefined,
  });

  const delta = evaluation.qualityDelta;
  const lossPct =
    delta?.estimatePct ?? ((baseline.qualityScore - candidate.qualityScore) / baseline.qualityScore) * 100;
  rows.push({
    metric: delta ? `Quality (${delta.metric})` : 'Quality',
    unit: 'score',
    baseline: baseline.qualityScore,
    candidate: candidate.qualityScore,
    claim: `loss < ${SEED_CLAIMS.maxQualityLossPct} %`,
    observed: `${round(baseline.qualityScore, 4)} → ${round(candidate.qualityScore, 4)} (loss ${round(lossPct, 2)} %${delta ? `; ${intervalText(delta)}` : ''})`,
    // With an interval the claim holds only when the whole interval is under it.
    rule: delta
      ? `upper end of the interval < ${SEED_CLAIMS.maxQualityLossPct} %`
      : `relative drop < ${SEED_CLAIMS.maxQualityLossPct} %`,
    met: judge((delta?.highPct ?? lossPct) < SEED_CLAIMS.maxQualityLossPct),
    note: `${evaluation.evalSet}, ${evaluation.samples} samples${delta ? `, ${delta.method}` : ''}`,
  });
  const acc = (m: typeof baseline) =>
    m.accuracy
      ? `${round(m.accuracy.value, 4)} [${round(m.accuracy.low, 3)}, ${round(m.accuracy.high, 3)}]`
      : '–';
  if (baseline.accuracy || candidate.accuracy) {
    rows.push({
      metric: 'Multiple-choice accuracy',
      unit: 'share',
      baseline: baseline.accuracy?.value,
      candidate: candidate.accuracy?.value,
      observed: `${acc(baseline)} → ${acc(candidate)}`,
      note: `95 % Wilson intervals, ${candidate.accuracy?.items ?? baseline.accuracy?.items} items each`,
    });
  }
  if (baseline.perplexity && candidate.perplexity) {
    const p = evaluation.perplexityDelta;
    rows.push({
      metric: 'Perplexity (held-out)',
      unit: '',
      baseline: baseline.perplexity.value,
      candidate: candidate.perplexity.value,
      observed: `${round(baseline.perplexity.value, 3)} → ${round(candidate.perplexity.value, 3)}${p ? ` (${round(p.estimatePct, 2)} %; ${intervalText(p)})` : ''}`,
      note: `${candidate.perplexity.items} passages, ${candidate.perplexity.tokens} tokens`,
    });
  }
  for (const task of Object.keys({ ...baseline.taskScores, ...candidate.taskScores }).sort()) {
    const b = baseline.taskScores[task];
    const c = candidate.taskScores[task];
    rows.push({
      metric: `Quality: ${task}`,
      unit: 'score',
      baseline: b,
      candidate: c,
      observed:
        b !== undefined && c !== undefined ? `${round(b, 4)} → ${round(c, 4)}` : 'not measured on both',
    });
  }

  // The latency claim: for streamed chat the latency a user waits on is the first token,
  // so P99 < 300 ms is read as p99 TTFT; without streaming it is p99 E2E.
  const candidateLatency = loadReport?.results.latency;
  const p99Source = candidateLatency?.ttft ? 'ttft' : 'e2e';
  const p99 = candidateLatency?.[p99Source]?.p99Ms;
  const baselineP99 = baselineLoadReport?.results.latency[p99Source]?.p99Ms;
  rows.push({
    metric: `P99 latency (${p99Source === 'ttft' ? 'TTFT' : 'E2E'})`,
    unit: 'ms',
    baseline: baselineP99,
    candidate: p99,
    claim: `P99 < ${SEED_CLAIMS.p99LatencyMs} ms`,
    observed: p99 === undefined ? 'not measured (no load test)' : `${round(p99, 1)} ms`,
    rule: `p99 ${p99Source === 'ttft' ? 'TTFT' : 'E2E'} < ${SEED_CLAIMS.p99LatencyMs} ms under the load test`,
    met: p99 === undefined ? undefined : judge(p99 < SEED_CLAIMS.p99LatencyMs),
    note: loadReport
      ? `${loadReport.pacing.mode} loop, ${loadReport.pacing.achievedRps} req/s achieved, ${loadReport.results.requests} requests`
      : undefined,
  });

  if (loadReport) {
    const b = baselineLoadReport?.results;
    const c = loadReport.results;
    const latencyRow = (
      metric: 'ttft' | 'tpot' | 'e2e',
      label: string,
      which: 'p50Ms' | 'p90Ms' | 'p99Ms',
    ) => {
      const cv = c.latency[metric]?.[which];
      const bv = b?.latency[metric]?.[which];
      if (cv === undefined && bv === undefined) return;
      rows.push({
        metric: `${label} ${which.slice(0, -2)}`,
        unit: 'ms',
        baseline: bv,
        candidate: cv,
        observed: `${bv === undefined ? '–' : round(bv, 1)} → ${cv === undefined ? '–' : round(cv, 1)} ms`,
      });
    };
    for (const [metric, label] of [
      ['ttft', 'TTFT'],
      ['tpot', 'TPOT'],
      ['e2e', 'E2E'],
    ] as const) {
      for (const which of ['p50Ms', 'p90Ms', 'p99Ms'] as const) latencyRow(metric, label, which);
    }
    rows.push({
      metric: 'Throughput (load test)',
      unit: 'output tokens/s',
      baseline: b?.throughput.outputTokensPerSecond,
      candidate: c.throughput.outputTokensPerSecond,
      observed: `${b ? round(b.throughput.outputTokensPerSecond, 1) : '–'} → ${round(c.throughput.outputTokensPerSecond, 1)} tokens/s`,
    });
    rows.push({
      metric: 'Error rate (load test)',
      unit: '%',
      baseline: b?.errorRatePct,
      candidate: c.errorRatePct,
      observed: `${b ? round(b.errorRatePct, 2) : '–'} → ${round(c.errorRatePct, 2)} %`,
    });
  }

  const judged = rows.filter((r) => r.claim !== undefined);
  return {
    model: loadReport?.target.model,
    // A Job measured on the CPU ran on no GPU, whatever GPU type the spec asked for.
    gpuType: evaluation.device === 'cpu' ? 'CPU' : evaluation.gpuType,
    evalSet: evaluation.evalSet,
    samples: evaluation.samples,
    simulated: evaluation.simulated,
    device: evaluation.device,
    comparable,
    caveat: comparable
      ? undefined
      : 'measured for real, but on the CPU with a tiny test model: these figures are not comparable to the plan’s claims for Qwen-7B-Chat on an A10, which are shown for reference and not judged',
    rows,
    claims: {
      met: judged.filter((r) => r.met === true).length,
      missed: judged.filter((r) => r.met === false).length,
      notMeasured: judged.filter((r) => r.met === undefined).length,
    },
  };
}

/** The comparison as an HTML table (a fragment the promotion report embeds). */
export function renderPromotionComparisonTable(comparison: PromotionComparison): string {
  const cell = (v: number | undefined) => (v === undefined ? '–' : escapeHtml(round(v, 3)));
  const rows = comparison.rows
    .map((r) => {
      const verdict =
        r.claim === undefined
          ? '<td class="muted">info</td>'
          : r.met === undefined
            ? `<td class="muted">${comparison.comparable ? 'not measured' : 'not comparable'}</td>`
            : `<td class="${r.met ? 'ok' : 'bad'}">${r.met ? 'met' : 'missed'}</td>`;
      return `<tr><td>${escapeHtml(r.metric)}</td><td>${escapeHtml(r.unit)}</td><td>${cell(r.baseline)}</td><td>${cell(r.candidate)}</td><td>${escapeHtml(r.claim ?? '')}</td><td>${escapeHtml(r.observed)}</td>${verdict}<td style="text-align:left">${escapeHtml([r.rule, r.note].filter(Boolean).join('; '))}</td></tr>`;
    })
    .join('\n');
  return `<table class="promotion-comparison">
<tr><th>metric</th><th>unit</th><th>baseline</th><th>AWQ candidate</th><th>plan claims</th><th>observed</th><th>claim</th><th style="text-align:left">rule / note</th></tr>
${rows}
</table>
<p class="muted">${comparison.claims.met} claims met, ${comparison.claims.missed} missed, ${comparison.claims.notMeasured} not measured or not judged · ${escapeHtml(comparison.gpuType)} · ${escapeHtml(comparison.evalSet)}${comparison.simulated ? ' · <strong>simulated hardware: figures come from the sandbox, not a GPU</strong>' : ''}${comparison.caveat ? ` · <strong>${escapeHtml(comparison.caveat)}</strong>` : ''}</p>`;
}

/** A self-contained page with the comparison alone. */
export function renderPromotionComparisonHtml(
  comparison: PromotionComparison,
  title = 'Baseline vs AWQ candidate',
): string {
  return htmlPage({
    title,
    body: `<h1>${escapeHtml(title)}${comparison.model ? `: ${escapeHtml(comparison.model)}` : ''}</h1>\n${renderPromotionComparisonTable(comparison)}`,
  });
}
