import { InvalidArgumentError } from 'commander';
import { type RejudgeOverrides, rejudgeAnalyses, renderRejudge } from '../../analysis/rejudge.js';
import { createDataConverter } from '../../temporal/data-converter.js';
import { analysesFromHistory } from '../analysis-history.js';
import { integerOption } from '../options.js';
import type { CommandGroup } from './index.js';

// qwenops analysis rejudge <workflowId>: re-runs the canary judge on the samples every
// analysis of a run stored in its workflow history, with other thresholds, and says which
// past decisions would flip.

const shown = (text: string) => `'${text.length > 40 ? `${text.slice(0, 40)}…` : text}'`;

/** A finite decimal number in (min, max] or [min, max], written plainly ("0.05", "1.2", "300"). */
export function decimalOption(flag: string, options: { min: number; max: number; exclusiveMin?: boolean }) {
  const rule = `a number ${options.exclusiveMin ? '>' : '>='} ${options.min} and <= ${options.max}`;
  return (text: string): number => {
    if (!/^[0-9]{1,12}(\.[0-9]{1,12})?$/.test(text))
      throw new InvalidArgumentError(`${flag}: must be ${rule}, got ${shown(text)}`);
    const value = Number(text);
    const low = options.exclusiveMin ? value <= options.min : value < options.min;
    if (low || value > options.max)
      throw new InvalidArgumentError(`${flag}: must be ${rule}, got ${shown(text)}`);
    return value;
  };
}

const POLICIES = ['worse-than-stable', 'margin'] as const;

function policyOption(text: string): (typeof POLICIES)[number] {
  if (!(POLICIES as readonly string[]).includes(text))
    throw new InvalidArgumentError(`--policy: must be one of ${POLICIES.join(', ')}, got ${shown(text)}`);
  return text as (typeof POLICIES)[number];
}

export interface RejudgeOptions {
  alpha?: number;
  minEffect?: number;
  sloP99?: number;
  maxErrorRate?: number;
  maxRatio?: number;
  policy?: (typeof POLICIES)[number];
  margin?: number;
  minSamples?: number;
}

/** The thresholds the flags name; absent flags keep each analysis's recorded value. */
export function overridesFromOptions(opts: RejudgeOptions): RejudgeOverrides {
  return {
    alpha: opts.alpha,
    minLatencyEffectRatio: opts.minEffect,
    p99LatencyMs: opts.sloP99,
    maxErrorRatePct: opts.maxErrorRate,
    maxLatencyRatioVsStable: opts.maxRatio,
    absolutePolicy: opts.policy,
    absoluteMarginPct: opts.margin,
    minSamples: opts.minSamples,
  };
}

export const registerAnalysisCommands: CommandGroup = (program, context) => {
  const analysis = program.command('analysis').description('canary analyses of a run: judge them again');
  analysis
    .command('rejudge')
    .description(
      're-run the canary judge on the samples each analysis of a run stored, with other thresholds, and show which decisions would flip',
    )
    .argument('<workflowId>')
    .option(
      '--alpha <p>',
      'significance level of every test (recorded: 0.01)',
      decimalOption('--alpha', { min: 0, max: 0.5, exclusiveMin: true }),
    )
    .option(
      '--min-effect <ratio>',
      'smallest canary/stable latency ratio that fails (recorded: 1.2)',
      decimalOption('--min-effect', { min: 1, max: 100 }),
    )
    .option(
      '--slo-p99 <ms>',
      'p99 E2E latency SLO, ms',
      decimalOption('--slo-p99', { min: 0, max: 3_600_000, exclusiveMin: true }),
    )
    .option(
      '--max-error-rate <pct>',
      'error rate SLO, percent',
      decimalOption('--max-error-rate', { min: 0, max: 100 }),
    )
    .option(
      '--max-ratio <x>',
      'p99 tail ratio limit vs stable',
      decimalOption('--max-ratio', { min: 1, max: 1000 }),
    )
    .option('--policy <policy>', `absolute SLO policy: ${POLICIES.join(' | ')}`, policyOption)
    .option(
      '--margin <pct>',
      'margin over the SLO that is a breach, percent',
      decimalOption('--margin', { min: 0, max: 1000 }),
    )
    .option(
      '--min-samples <n>',
      'minimum requests per revision',
      integerOption('--min-samples', { max: 1_000_000 }),
    )
    .action(async (workflowId: string, opts: RejudgeOptions) => {
      const ctx = context();
      const overrides = overridesFromOptions(opts);
      const client = await ctx.client();
      const history = await client.workflow.getHandle(workflowId).fetchHistory();
      const codec = createDataConverter(ctx.config.codecKey).payloadCodecs?.[0];
      const { analyses, undecodable } = await analysesFromHistory(history.events ?? [], codec);
      const report = rejudgeAnalyses(analyses, overrides);
      ctx.print(
        {
          workflowId,
          overrides,
          flipped: report.flipped,
          skipped: report.skipped,
          undecodable,
          analyses: report.rows.map(({ judgement, ...row }) => ({ ...row, checks: judgement?.checks })),
        },
        () =>
          analyses.length === 0
            ? `${workflowId}: no canary analysis in its history${undecodable ? ` (${undecodable} undecodable: is the codec key set?)` : ''}`
            : `${renderRejudge(workflowId, report, overrides)}${undecodable ? `\n${undecodable} results undecodable (is the codec key set?)` : ''}`,
      );
    });
};
