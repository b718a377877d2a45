import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { abortSignal, abortUpdate, FAILURE_TYPES } from '../../workflows/definitions.js';
import type { AnalysisResult } from '../domain/analysis.js';
import type { PipelineStatus } from '../domain/status.js';
import { createDataConverter } from '../temporal/data-converter.js';
import { analysesFromHistory } from './analysis-history.js';
import { renderJunit } from './ci-report/junit.js';
import type { CiReport } from './ci-report/report.js';
import { renderSummary } from './ci-report/summary.js';
import type { CliContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { type Conclusion, conclude, follow, type Pipeline, type StartState } from './pipeline-client.js';
import { renderStatus } from './render.js';

// Waiting for a pipeline to end, the way CI needs it: a progress line at least every
// `progressEverySeconds` (so runners never see an idle job), the exit code of the outcome,
// JUnit and Markdown reports, and SIGINT/SIGTERM (a cancelled CI job) handled promptly: the
// CLI detaches (the release goes on) or, with `abortOnCancel`, aborts the release first.

export const CANCEL_REASON = 'CI job cancelled';

export interface WaitOptions {
  /** Write a JUnit XML report here (overwritten). */
  junit?: string;
  /** Append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY). */
  summary?: string;
  /** On SIGINT/SIGTERM, abort the release (reason "CI job cancelled") instead of detaching. */
  abortOnCancel?: boolean;
  /** Who aborts, for the audit records. */
  by?: string;
  /** A progress line at least this often, even when nothing changes. Default 30. */
  progressEverySeconds?: number;
  /** How the CLI came to this run (a new start, or an existing run of the same id). */
  startState?: StartState;
  uiUrl?: string;
}

/** How long an abort may take before the CLI falls back to the abort signal and exits. */
const ABORT_UPDATE_TIMEOUT_MS = 5_000;

export function exitCodeFor(conclusion: Pick<Conclusion, 'outcome' | 'failureType'>): number {
  if (conclusion.outcome === 'promoted') return EXIT.ok;
  if (conclusion.outcome === 'rolled_back') return EXIT.rolledBack;
  if (conclusion.failureType === FAILURE_TYPES.serviceBusy) return EXIT.serviceBusy;
  return EXIT.error;
}

/** The holder named in a ServiceBusy refusal ("... is being rolled out by workflow <id>"). */
export function leaseHolder(reason: string | undefined): string | undefined {
  return reason?.match(/being rolled out by workflow (\S+)/)?.[1];
}

function clock(): string {
  return new Date().toISOString().slice(11, 19);
}

function progressLine(
  workflowId: string,
  status: PipelineStatus,
  pending: string[],
  unchanged: boolean,
  since: number,
) {
  const decision = status.pendingDecision
    ? ` | waiting for ${status.pendingDecision.gate}: qwenops approve ${workflowId}`
    : '';
  const running = pending.length > 0 ? ` | ${pending.join('; ')}` : '';
  const still = unchanged ? ` (no change for ${Math.round((Date.now() - since) / 1000)} s)` : '';
  const traffic = status.traffic.canaryPercent > 0 ? ` | canary ${status.traffic.canaryPercent}%` : '';
  return `[${clock()}] ${status.stage} ${status.progress.percent}% ${status.progress.message}${traffic}${running}${decision}${still}\n`;
}

async function writeReports(report: CiReport, options: WaitOptions): Promise<void> {
  if (options.junit) {
    await mkdir(path.dirname(path.resolve(options.junit)), { recursive: true });
    await writeFile(options.junit, renderJunit(report));
  }
  if (options.summary) {
    await mkdir(path.dirname(path.resolve(options.summary)), { recursive: true });
    await appendFile(options.summary, renderSummary(report));
  }
}

/** Prints how a run ended, writes the reports and returns the exit code. */
export async function reportConclusion(
  ctx: CliContext,
  workflowId: string,
  conclusion: Conclusion,
  options: WaitOptions & { analyses?: AnalysisResult[] } = {},
): Promise<number> {
  const exitCode = exitCodeFor(conclusion);
  const holder =
    conclusion.failureType === FAILURE_TYPES.serviceBusy ? leaseHolder(conclusion.reason) : undefined;
  await writeReports(
    {
      workflowId,
      outcome: conclusion.outcome,
      reason: conclusion.reason,
      failureType: conclusion.failureType,
      exitCode,
      status: conclusion.status,
      analyses: options.analyses ?? [],
      uiUrl: options.uiUrl,
    },
    options,
  );
  ctx.print(
    {
      workflowId,
      ...(options.startState ? { startState: options.startState } : {}),
      exitCode,
      ...(holder ? { leaseHolder: holder } : {}),
      ...conclusion,
    },
    () => {
      const head = `${workflowId}: ${conclusion.outcome}${conclusion.reason ? ` — ${conclusion.reason}` : ''}`;
      const lines = [head];
      if (holder) {
        lines.push(
          `  refused: another release, ${holder}, holds the lease on this service. Follow it with "qwenops status ${holder} --follow"; re-run this job once it has ended (with a new --release/--id: this one is finished)`,
        );
      }
      if (conclusion.status) lines.push(renderStatus(conclusion.status));
      return lines.join('\n');
    },
  );
  return exitCode;
}

async function historyAnalyses(ctx: CliContext, workflowId: string): Promise<AnalysisResult[]> {
  try {
    const client = await ctx.client();
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const codec = createDataConverter(ctx.config.codecKey).payloadCodecs?.[0];
    return (await analysesFromHistory(history.events ?? [], codec)).analyses;
  } catch (err) {
    process.stderr.write(
      `qwenops: could not read the analyses from the history: ${(err as Error).message}\n`,
    );
    return [];
  }
}

/** Concludes a run that has already finished: its outcome, reports and exit code. */
export async function concludeFinished(
  ctx: CliContext,
  workflowId: string,
  options: WaitOptions = {},
): Promise<number> {
  const client = await ctx.client();
  const conclusion = await conclude(client.workflow.getHandle<Pipeline>(workflowId));
  const analyses = options.junit || options.summary ? await historyAnalyses(ctx, workflowId) : [];
  return reportConclusion(ctx, workflowId, conclusion, { ...options, analyses });
}

/** Asks the run to abort; falls back to the (fire-and-forget) abort signal if the update is slow. */
async function abortRun(
  ctx: CliContext,
  workflowId: string,
  by: string,
): Promise<{ ok: boolean; message: string }> {
  const client = await ctx.client();
  const handle = client.workflow.getHandle(workflowId);
  const request = { by, reason: CANCEL_REASON };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ABORT_UPDATE_TIMEOUT_MS);
  });
  try {
    const outcome = await Promise.race([handle.executeUpdate(abortUpdate, { args: [request] }), timeout]);
    if (outcome !== 'timeout') return { ok: true, message: `abort accepted by ${workflowId}: it rolls back` };
    await handle.signal(abortSignal, request);
    return {
      ok: true,
      message: `abort signalled to ${workflowId} (no answer within 5 s): it rolls back when it reads it`,
    };
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      return { ok: false, message: `abort refused by ${workflowId}: ${err.cause?.message ?? err.message}` };
    }
    try {
      await handle.signal(abortSignal, request);
      return { ok: true, message: `abort signalled to ${workflowId}` };
    } catch (signalErr) {
      return { ok: false, message: `could not abort ${workflowId}: ${(signalErr as Error).message}` };
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Follows a run to its end (or a cancellation) and returns the exit code. */
export async function waitForRun(
  ctx: CliContext,
  workflowId: string,
  options: WaitOptions = {},
): Promise<number> {
  const client = await ctx.client();
  const handle = client.workflow.getHandle<Pipeline>(workflowId);
  const codec = createDataConverter(ctx.config.codecKey).payloadCodecs?.[0];
  const stop = new AbortController();
  let received: NodeJS.Signals | undefined;
  let cancelExitCode: number = EXIT.cancelledDetached;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) {
      // A second signal: the runner insists. Leave now.
      process.stderr.write(`qwenops: ${signal} again: exiting\n`);
      process.exit(cancelExitCode);
    }
    received = signal;
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let last: PipelineStatus | undefined;
  let lastChange = Date.now();
  try {
    const cancelled = new Promise<'cancelled'>((resolve) => {
      stop.signal.addEventListener('abort', () => resolve('cancelled'), { once: true });
    });
    const work = (async () => {
      await follow(
        handle,
        (status, pending, unchanged) => {
          last = status;
          if (!unchanged) lastChange = Date.now();
          process.stderr.write(progressLine(workflowId, status, pending, unchanged, lastChange));
        },
        { codec, signal: stop.signal, repeatAfterMs: (options.progressEverySeconds ?? 30) * 1000 },
      );
      if (stop.signal.aborted) return 'cancelled' as const;
      return conclude(handle);
    })();
    // Abandoned on a cancellation; its long poll ends when the connection closes.
    work.catch(() => undefined);
    const first = await Promise.race([work, cancelled]);
    if (first !== 'cancelled') {
      const analyses = options.junit || options.summary ? await historyAnalyses(ctx, workflowId) : [];
      return await reportConclusion(ctx, workflowId, first, { ...options, analyses });
    }

    // Cancelled (the CI job was cancelled, or ^C).
    let action: 'detached' | 'aborted' = 'detached';
    let message = `detached from ${workflowId}: the release goes on (follow it: qwenops status ${workflowId} --follow)`;
    if (options.abortOnCancel) {
      process.stderr.write(`qwenops: ${received}: aborting ${workflowId} (${CANCEL_REASON})\n`);
      const abort = await abortRun(ctx, workflowId, options.by ?? 'ci');
      if (abort.ok) {
        action = 'aborted';
        cancelExitCode = EXIT.cancelledAborted;
        message = abort.message;
      } else {
        message = `${abort.message}; detached, the release goes on`;
      }
    }
    const exitCode = action === 'aborted' ? EXIT.cancelledAborted : EXIT.cancelledDetached;
    process.stderr.write(`qwenops: ${received}: ${message}\n`);
    const report: CiReport = {
      workflowId,
      outcome: 'running',
      reason: `${CANCEL_REASON}: ${message}`,
      exitCode,
      cancelled: action,
      status: last,
      analyses: [],
      uiUrl: options.uiUrl,
    };
    await writeReports(report, options).catch((err) =>
      process.stderr.write(`qwenops: could not write the reports: ${(err as Error).message}\n`),
    );
    ctx.print(
      { workflowId, exitCode, cancelled: action, signal: received, message, status: last },
      () => `${workflowId}: ${action} on ${received} (${message})`,
    );
    return exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
