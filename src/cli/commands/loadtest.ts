import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { TASK_QUEUES } from '../../../workflows/definitions.js';
import { loadTest } from '../../../workflows/index.js';
import {
  LATENCY_SLO_KEYS,
  type LoadTestRequestInput,
  type LoadTestSlo,
  parseLoadTestRequest,
} from '../../domain/load-test.js';
import { InputValidationError } from '../../domain/validation.js';
import {
  describeLoadTest,
  LoadTestCancelledError,
  type LoadTestProgress,
  type LoadTestReport,
  renderLoadTestHtml,
  runLoadTest,
  sloFlagName,
  storeLoadTestReport,
} from '../../loadtest/index.js';
import { createArtifactStore } from '../../storage/index.js';
import { createDataConverter } from '../../temporal/data-converter.js';
import type { CliContext } from '../context.js';
import { durationSeconds, parseDuration } from '../durations.js';
import { EXIT } from '../exit-codes.js';
import { pendingActivities } from '../pipeline-client.js';
import type { CommandGroup } from './index.js';

// `qwenops loadtest`: load an OpenAI-compatible endpoint from this machine (or, with
// --temporal, through the loadTest workflow on the workers), show live progress on stderr,
// store the JSON + HTML report, and exit non-zero when an SLO is missed.

/** "500ms", "30s", "2m", "1h" or a plain number of seconds -> seconds. */
export function parseDurationSeconds(text: string): number {
  return durationSeconds(
    parseDuration(text, {
      units: ['ms', 's', 'm', 'h'],
      bareUnit: 's',
      decimals: true,
      spaced: true,
      message: 'must be a duration such as 500ms, 30s, 2m or 1h',
    }),
  );
}

const number = (what: string) => (text: string) => {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value))
    throw new InvalidArgumentError(`${what} must be a number`);
  return value;
};

const SLO_ALIASES: Record<string, keyof LoadTestSlo> = {
  error_rate_pct: 'maxErrorRatePct',
  max_error_rate_pct: 'maxErrorRatePct',
  output_tokens_per_s: 'minOutputTokensPerSecond',
  min_output_tokens_per_s: 'minOutputTokensPerSecond',
  goodput_pct: 'minGoodputPct',
  min_goodput_pct: 'minGoodputPct',
};

/** --slo name=value (repeatable): p99_e2e_ms=300, p95_ttft_ms=200, error_rate_pct=1, ... */
export function parseSloFlags(flags: string[]): LoadTestSlo {
  const slo: Record<string, number> = {};
  const known = new Map<string, string>(LATENCY_SLO_KEYS.map(({ key }) => [sloFlagName(key), key]));
  for (const [alias, key] of Object.entries(SLO_ALIASES)) {
    known.set(alias, key);
    known.set(sloFlagName(key), key);
  }
  const issues: { path: string; message: string }[] = [];
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    const name = (eq > 0 ? flag.slice(0, eq) : flag).trim();
    // snake_case as documented, or the request's own camelCase key.
    const key = known.get(name.toLowerCase()) ?? known.get(sloFlagName(name));
    if (eq <= 0 || !key) {
      issues.push({
        path: `--slo ${flag}`,
        message: `must be name=value with name one of p50|p90|p95|p99 _ ttft|tpot|itl|e2e _ms (e.g. p99_e2e_ms), ${Object.keys(SLO_ALIASES).join(', ')}`,
      });
      continue;
    }
    const value = Number(flag.slice(eq + 1));
    if (!Number.isFinite(value)) {
      issues.push({ path: `--slo ${flag}`, message: 'the value must be a number' });
      continue;
    }
    slo[key] = value;
  }
  if (issues.length > 0) throw new InputValidationError('load test SLOs', issues);
  return slo as LoadTestSlo;
}

interface LoadTestFlags {
  url: string;
  model?: string;
  mode?: 'open' | 'closed';
  rate?: number;
  burstiness?: number;
  concurrency?: number;
  duration?: number;
  requests?: number;
  warmup?: number;
  maxTokens?: number;
  ignoreEos?: boolean;
  stream: boolean;
  prompts?: string;
  inputTokens?: string;
  timeout?: number;
  seed?: number;
  slo?: string[];
  out?: string;
  records?: string;
  store: boolean;
  temporal?: boolean;
  json?: boolean;
}

/**
 * Flags that only mean something together with another: refused (exit 64) instead of being
 * silently ignored, naming the flag and the rule.
 */
function flagConflicts(flags: LoadTestFlags, mode: 'open' | 'closed'): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  if (flags.inputTokens !== undefined && flags.prompts !== 'synthetic') {
    issues.push({
      path: '--input-tokens',
      message: `only applies with --prompts synthetic (the builtin-zh set and a JSONL file have their own lengths), got --prompts ${flags.prompts ?? 'builtin-zh (the default)'}`,
    });
  }
  if (mode === 'closed') {
    for (const [flag, value] of [
      ['--rate', flags.rate],
      ['--burstiness', flags.burstiness],
    ] as const) {
      if (value === undefined) continue;
      issues.push({
        path: flag,
        message:
          'only applies to --mode open: a closed loop keeps --concurrency requests in flight and sends the next when one finishes, so it has no arrival rate; drop it or use --mode open',
      });
    }
  }
  return issues;
}

/** The load-test request the flags describe (validated later by the same schema as everywhere). */
export function requestFromFlags(flags: LoadTestFlags): LoadTestRequestInput {
  const mode =
    flags.mode ?? (flags.rate === undefined && flags.concurrency !== undefined ? 'closed' : 'open');
  const conflicts = flagConflicts(flags, mode);
  if (conflicts.length > 0) throw new InputValidationError('load test flags', conflicts);
  let prompts: LoadTestRequestInput['prompts'];
  if (flags.prompts === undefined || flags.prompts === 'builtin-zh') prompts = { kind: 'builtin-zh' };
  else if (flags.prompts === 'synthetic') {
    const [min, max] = (flags.inputTokens ?? '32-512').split('-').map(Number);
    prompts = { kind: 'synthetic', minInputTokens: min, maxInputTokens: max ?? min };
  } else prompts = { kind: 'jsonl', path: path.resolve(flags.prompts) };
  return {
    url: flags.url,
    model: flags.model,
    mode,
    requestsPerSecond: flags.rate,
    burstiness: flags.burstiness,
    concurrency: flags.concurrency,
    durationSeconds: flags.duration,
    maxRequests: flags.requests,
    warmupSeconds: flags.warmup,
    maxTokens: flags.maxTokens,
    ignoreEos: flags.ignoreEos,
    stream: flags.stream,
    prompts,
    requestTimeoutSeconds: flags.timeout,
    seed: flags.seed,
    slo: parseSloFlags(flags.slo ?? []),
  };
}

/** Live progress on stderr: one redrawn line with a bar on a terminal, a line every 5 s otherwise. */
export class ProgressLine {
  private lastPrinted = 0;
  private drawn = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(p: LoadTestProgress): void {
    const width = 24;
    const filled = Math.round(p.fraction * width);
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const p99 = p.p99E2eMs !== undefined ? ` p99 E2E ${p.p99E2eMs.toFixed(0)}ms` : '';
    const text = `${bar} ${String(Math.round(p.fraction * 100)).padStart(3)}% ${p.phase} ${p.elapsedSeconds.toFixed(0)}s | sent ${p.sent} ok ${p.ok} err ${p.failed} | in flight ${p.inFlight}${p.queued > 0 ? ` queued ${p.queued}` : ''} | ${p.achievedRps.toFixed(1)} req/s${p99}`;
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[2K${text}`);
      this.drawn = true;
    } else if (Date.now() - this.lastPrinted >= 5000 || p.fraction >= 1) {
      this.stream.write(`${text}\n`);
      this.lastPrinted = Date.now();
    }
  }

  done(): void {
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}

function renderSummary(report: LoadTestReport, uris: string[]): string {
  const lines = [describeLoadTest(report)];
  for (const r of report.slo.results) lines.push(`  ${r.met ? 'met   ' : 'MISSED'} ${r.message}`);
  if (report.slo.results.length === 0) lines.push('  no SLO set (--slo p99_e2e_ms=300 ...)');
  for (const w of report.warnings) lines.push(`  warning: ${w}`);
  for (const uri of uris) lines.push(`  report: ${uri}`);
  lines.push(report.slo.passed ? 'SLOs met' : 'SLO MISSED');
  return lines.join('\n');
}

async function runLocally(ctx: CliContext, flags: LoadTestFlags): Promise<number> {
  const request = parseLoadTestRequest(requestFromFlags(flags));
  const progress = new ProgressLine();
  // Per-request measurements, one JSON object per line, for analysis outside the report.
  const records = flags.records ? createWriteStream(path.resolve(flags.records)) : undefined;
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  let report: LoadTestReport;
  try {
    report = await runLoadTest(request, {
      signal: controller.signal,
      apiKey: process.env.QWENOPS_LLM_API_KEY,
      onProgress: (p) => progress.update(p),
      progressIntervalMs: process.stderr.isTTY ? 250 : 1000,
      onRecord: records
        ? (record, measured) => {
            if (measured) records.write(`${JSON.stringify({ ...record, text: undefined })}\n`);
          }
        : undefined,
    });
  } catch (error) {
    progress.done();
    if (error instanceof LoadTestCancelledError) {
      process.stderr.write('qwenops: load test interrupted; nothing stored\n');
      return 130;
    }
    throw error;
  } finally {
    process.off('SIGINT', onSigint);
    if (records) await new Promise((resolve) => records.end(resolve));
  }
  progress.done();

  const uris: string[] = [];
  if (flags.out) {
    const dir = path.resolve(flags.out);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(path.join(dir, 'report.html'), renderLoadTestHtml(report));
    uris.push(path.join(dir, 'report.html'));
  }
  if (flags.store) {
    try {
      const store = await createArtifactStore(ctx.config.store);
      const prefix = `loadtests/${report.startedAt.replace(/[:.]/g, '-')}-${report.id.slice(0, 8)}`;
      const stored = await storeLoadTestReport(store, prefix, report);
      uris.push(stored.htmlUri, stored.jsonUri);
    } catch (error) {
      // The measurement is done; a store problem must not hide its result.
      process.stderr.write(
        `qwenops: warning: report not stored in the artifact store: ${(error as Error).message}\n`,
      );
    }
  }
  ctx.print({ passed: report.slo.passed, reportUris: uris, report }, () => renderSummary(report, uris));
  return report.slo.passed ? EXIT.ok : EXIT.sloMissed;
}

async function runThroughTemporal(ctx: CliContext, flags: LoadTestFlags): Promise<number> {
  const request = parseLoadTestRequest(requestFromFlags(flags));
  const client = await ctx.client();
  const workflowId = `loadtest-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '')}-${randomUUID().slice(0, 8)}`;
  const handle = await client.workflow.start(loadTest, {
    taskQueue: TASK_QUEUES.default,
    workflowId,
    args: [{ request, failOnSloMiss: false }],
  });
  process.stderr.write(
    `qwenops: started workflow ${workflowId} (${ctx.config.temporal.uiUrl}/namespaces/${ctx.config.temporal.namespace}/workflows/${workflowId})\n`,
  );
  const codec = createDataConverter(ctx.config.codecKey).payloadCodecs?.[0];
  let finished = false;
  const result = handle.result().finally(() => {
    finished = true;
  });
  while (!finished) {
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    if (finished) break;
    const pending = await pendingActivities(handle, codec).catch(() => []);
    if (pending.length > 0) process.stderr.write(`${pending.join('; ')}\n`);
  }
  try {
    const outcome = await result;
    ctx.print(outcome, () =>
      [
        outcome.description,
        ...outcome.slo.map((r) => `  ${r.met ? 'met   ' : 'MISSED'} ${r.message}`),
        ...outcome.warnings.map((w) => `  warning: ${w}`),
        `  report: ${outcome.reportHtmlUri}`,
        outcome.passed ? 'SLOs met' : 'SLO MISSED',
      ].join('\n'),
    );
    return outcome.passed ? EXIT.ok : EXIT.sloMissed;
  } catch (error) {
    if (error instanceof WorkflowFailedError) {
      let cause: unknown = error.cause;
      while (cause instanceof Error && (cause as { cause?: unknown }).cause instanceof Error)
        cause = (cause as { cause?: unknown }).cause;
      const type = cause instanceof ApplicationFailure ? ` (${cause.type})` : '';
      throw new Error(`workflow ${workflowId} failed${type}: ${(cause as Error)?.message ?? error.message}`);
    }
    throw error;
  }
}

export const registerLoadTestCommands: CommandGroup = (program: Command, context: () => CliContext) => {
  program
    .command('loadtest')
    .description(
      'load an OpenAI-compatible endpoint (vLLM) and judge it against SLOs; exits 3 when an SLO is missed',
    )
    .requiredOption('--url <url>', 'server root, OpenAI base (…/v1) or full chat completions URL')
    .option('--model <name>', 'served model name (default: the first of GET /v1/models)')
    .addOption(
      new Option('--mode <mode>', 'open: arrivals at --rate; closed: --concurrency in flight').choices([
        'open',
        'closed',
      ]),
    )
    .option('--rate <rps>', 'open loop only: mean requests per second', number('--rate'))
    .option(
      '--burstiness <n>',
      'open loop only: gamma shape of the arrival gaps (1 = Poisson)',
      number('--burstiness'),
    )
    .option(
      '--concurrency <n>',
      'closed loop: requests in flight; open loop: the cap',
      number('--concurrency'),
    )
    .option('--duration <duration>', 'measured duration, e.g. 60s or 5m', parseDurationSeconds)
    .option('--requests <n>', 'stop after this many measured requests', number('--requests'))
    .option('--warmup <duration>', 'load before measuring, not counted', parseDurationSeconds)
    .option('--max-tokens <n>', 'max_tokens per request', number('--max-tokens'))
    .option('--ignore-eos', 'generate exactly --max-tokens (vLLM ignore_eos)')
    .option('--no-stream', 'non-streaming requests (no TTFT/ITL)')
    .option('--prompts <source>', 'builtin-zh (default), synthetic, or a JSONL file')
    .option('--input-tokens <min-max>', 'with --prompts synthetic only: input length range, e.g. 32-512')
    .option('--timeout <duration>', 'per-request timeout', parseDurationSeconds)
    .option('--seed <n>', 'seed for arrivals and prompt order', number('--seed'))
    .option(
      '--slo <name=value>',
      'SLO, repeatable: p99_e2e_ms=300, p99_ttft_ms=200, error_rate_pct=1, output_tokens_per_s=500, goodput_pct=95',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--out <dir>', 'also write report.json and report.html into this directory')
    .option('--records <file>', 'write every measured request (timings, tokens, error class) as JSON lines')
    .option('--no-store', 'do not store the report in the artifact store')
    .option('--temporal', 'run through the loadTest workflow on the workers instead of from here')
    .action(async (flags: LoadTestFlags) => {
      const ctx = context();
      process.exitCode = flags.temporal ? await runThroughTemporal(ctx, flags) : await runLocally(ctx, flags);
    });
};
