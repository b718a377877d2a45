import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import hdr from 'hdr-histogram-js';
import { Agent, type Dispatcher } from 'undici';
import { type ConfinementPolicy, confinePath, confineUrl } from '../config/confinement.js';
import { OperationCancelledError } from '../domain/failures.js';
import {
  DEFAULT_BURSTINESS,
  DEFAULT_REQUESTS_PER_SECOND,
  effectiveConcurrency,
  type LoadTestRequest,
  parseLoadTestRequest,
} from '../domain/load-test.js';
import type { Logger } from '../observability/logger.js';
import { goodputLimitsFromSlo, LoadAggregator } from './aggregate.js';
import { ArrivalSchedule } from './arrivals.js';
import { discoverModel, resolveChatEndpoint } from './endpoint.js';
import { loadPrompts, type PromptItem } from './prompts/index.js';
import { describeLoadTest, type LoadTestReport } from './report.js';
import { type ChatTarget, InFlightRequests, type RequestRecord, sendChatCompletion } from './request.js';
import { clientLimitWarning, evaluateSlo } from './slo.js';
import {
  countCl100kTokens,
  countsDisagree,
  DISAGREEMENT_FACTOR,
  loadTokenEstimator,
  TOKEN_ESTIMATOR_NAME,
} from './tokens.js';

// Drives one load test: open loop (arrivals on a seeded gamma schedule, sent at their
// absolute deadlines whatever the server does) or closed loop (a fixed number of requests
// in flight), a warm-up that is not counted, a stop by duration or request count, and a
// drain of what is still in flight. Records are aggregated as they finish.

export interface LoadTestProgress {
  phase: 'warmup' | 'measure' | 'drain' | 'done';
  /** Seconds since the measured window started (negative during warm-up). */
  elapsedSeconds: number;
  /** 0..1 of the measured window (by time or by request count). */
  fraction: number;
  sent: number;
  completed: number;
  ok: number;
  failed: number;
  inFlight: number;
  queued: number;
  /** Sends per second over the measured window so far. */
  achievedRps: number;
  p99E2eMs?: number;
}

export interface LoadTestHooks {
  signal?: AbortSignal;
  onProgress?: (progress: LoadTestProgress) => void;
  progressIntervalMs?: number;
  /** Bearer token for the endpoint; never stored in the report. */
  apiKey?: string;
  logger?: Logger;
  /** Every finished request, warm-up included (tests, live views). */
  onRecord?: (record: RequestRecord, measured: boolean) => void;
  /** Report id; random when absent. */
  id?: string;
  /**
   * What the request may reach (a worker running a test from workflow input): the target
   * URL must be on the allowlist and a prompt file under a prompt root, both checked before
   * anything is sent or read. Absent (the CLI running a test as its user): unconfined.
   */
  confinement?: Pick<ConfinementPolicy, 'promptRoots' | 'loadTestTargets'>;
  /**
   * Open loop: arrivals allowed to wait for a free slot once `concurrency` requests are in
   * flight (default max(1000, 10 x concurrency)); later ones are dropped starts.
   */
  maxQueued?: number;
  /**
   * HTTP client to use instead of a fresh one (which is closed at the end): lets a caller
   * keep connections open across runs, e.g. a warm-up run and the measured run.
   */
  dispatcher?: Dispatcher;
}

/** The run was cancelled (signal aborted) before it finished. */
export class LoadTestCancelledError extends OperationCancelledError {
  override readonly name = 'LoadTestCancelledError';
}

/**
 * Measured answers whose text is kept: a non-streamed answer's usage is cross-checked
 * against the tokenizer estimate of that text (streamed answers are checked against their
 * chunk count, every one of them, and need no text).
 */
const TOKEN_CHECK_SAMPLES = 16;

interface PendingEstimate {
  record: RequestRecord;
  prompt: PromptItem;
}

export async function runLoadTest(input: unknown, hooks: LoadTestHooks = {}): Promise<LoadTestReport> {
  const request: LoadTestRequest = parseLoadTestRequest(input);
  const confinement = hooks.confinement;
  if (confinement) {
    confineUrl(request.url, confinement.loadTestTargets, 'load test request', 'url');
    if (request.prompts.kind === 'jsonl') {
      await confinePath(request.prompts.path, confinement.promptRoots, {
        subject: 'load test request',
        field: 'prompts.path',
        rule: 'promptRoots',
      });
    }
  }
  const endpoint = resolveChatEndpoint(request.url);
  const concurrency = effectiveConcurrency(request);
  const warnings: string[] = [];
  const headers: Record<string, string> = {};
  if (hooks.apiKey) headers.authorization = `Bearer ${hooks.apiKey}`;

  // One connection per request in flight; keep-alive so steady load does not pay connects.
  const dispatcher =
    hooks.dispatcher ??
    new Agent({
      connections: concurrency,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connect: { timeout: 10_000 },
    });
  try {
    const discovered = await discoverModel(endpoint, request.model, {
      dispatcher,
      headers,
      timeoutMs: Math.min(30_000, request.requestTimeoutSeconds * 1000),
    });
    warnings.push(...discovered.warnings);
    const model = discovered.model;
    const prompts = await loadPrompts(request.prompts, request.seed, {
      promptRoots: confinement?.promptRoots,
    });
    const bodies = prompts.map((prompt) => chatBody(request, model, prompt));
    const target: ChatTarget = {
      dispatcher,
      origin: endpoint.origin,
      path: endpoint.chatPath,
      headers: {
        ...headers,
        'content-type': 'application/json',
        accept: request.stream ? 'text/event-stream' : 'application/json',
      },
    };
    const startedAt = new Date();
    hooks.logger?.info(
      {
        url: endpoint.chatUrl,
        model,
        mode: request.mode,
        requestsPerSecond: request.mode === 'open' ? request.requestsPerSecond : undefined,
        concurrency,
        durationSeconds: request.durationSeconds,
        maxRequests: request.maxRequests,
        prompts: prompts.length,
      },
      'load test starting',
    );
    const run = new LoadRun(request, target, prompts, bodies, concurrency, hooks);
    await run.execute();
    warnings.push(...(await run.settleTokenCounts()));
    const aggregate = run.aggregator.finish();
    if (run.droppedStarts > 0) {
      warnings.push(
        `${run.droppedStarts} arrivals were dropped because ${concurrency} requests were in flight and the client queue was full; raise --concurrency or lower the rate`,
      );
    }
    const lagP99Ms = run.lag.totalCount > 0 ? Math.round(run.lag.getValueAtPercentile(99)) / 1000 : undefined;
    const clientLimit = clientLimitWarning(lagP99Ms, request.slo);
    if (clientLimit) warnings.push(clientLimit);
    const report: LoadTestReport = {
      kind: 'qwenops.loadtest',
      version: 1,
      id: hooks.id ?? randomUUID(),
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      target: { url: request.url, chatUrl: endpoint.chatUrl, model, modelListed: discovered.listed },
      request: { ...request, model },
      pacing: {
        mode: request.mode,
        targetRps: request.mode === 'open' ? request.requestsPerSecond : undefined,
        achievedRps: Math.round((run.measuredSent / run.sendWindowSeconds()) * 1000) / 1000,
        burstiness: request.mode === 'open' ? request.burstiness : undefined,
        concurrency,
        scheduled: run.measuredScheduled,
        sent: run.measuredSent,
        droppedStarts: run.droppedStarts,
        warmupRequests: run.warmupRequests,
        lagP99Ms,
        lagMaxMs: run.lag.totalCount > 0 ? Math.round(run.lag.maxValue) / 1000 : undefined,
        clientLimited: clientLimit !== undefined,
      },
      results: aggregate,
      slo: evaluateSlo(request.slo, aggregate),
      warnings,
    };
    if (aggregate.requests > 0 && aggregate.ok === 0) {
      warnings.unshift(
        `every request failed: ${Object.entries(aggregate.errors.byClass)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}`,
      );
    }
    hooks.logger?.info(
      {
        id: report.id,
        passed: report.slo.passed,
        summary: describeLoadTest(report),
        warnings: report.warnings,
      },
      'load test finished',
    );
    return report;
  } finally {
    if (!hooks.dispatcher) await dispatcher.destroy().catch(() => undefined);
  }
}

function chatBody(request: LoadTestRequest, model: string, prompt: PromptItem): string {
  const body: Record<string, unknown> = {
    model,
    messages: prompt.messages,
    max_tokens: prompt.maxTokens ?? request.maxTokens,
    stream: request.stream,
  };
  if (request.stream) body.stream_options = { include_usage: true };
  if (request.ignoreEos) body.ignore_eos = true;
  if (request.temperature !== undefined) body.temperature = request.temperature;
  return JSON.stringify(body);
}

class LoadRun {
  readonly aggregator: LoadAggregator;
  readonly lag = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 2,
  });
  readonly startMs: number;
  readonly measureStartMs: number;
  readonly stopAtMs: number;
  measuredScheduled = 0;
  measuredSent = 0;
  lastMeasuredSendMs: number;
  /** When the last measured request finished (closed loop: the end of its send window). */
  lastMeasuredFinishMs: number;
  /** Why sending stopped: the duration ran out, the request count was reached, or neither yet. */
  stoppedBy?: 'duration' | 'requests';
  droppedStarts = 0;
  warmupRequests = 0;
  private sent = 0;
  private completed = 0;
  private inFlight = 0;
  private nextPrompt = 0;
  private stopping = false;
  private readonly queue: { intendedMs: number; measured: boolean }[] = [];
  private readonly maxQueued: number;
  private readonly inFlightDone = new Set<Promise<void>>();
  private readonly pendingEstimates: PendingEstimate[] = [];
  private readonly tokenChecks: PendingEstimate[] = [];
  /** Measured launches keeping their text for the check (a failed one frees its place). */
  private textSamples = 0;
  /** Streamed answers with usage: their usage against their token-carrying chunks. */
  private readonly chunkCheck = { answers: 0, usage: 0, chunks: 0 };
  private readonly inFlightRequests: InFlightRequests;

  constructor(
    private readonly request: LoadTestRequest,
    private readonly target: ChatTarget,
    private readonly prompts: PromptItem[],
    private readonly bodies: string[],
    private readonly concurrency: number,
    private readonly hooks: LoadTestHooks,
  ) {
    // Open loop: a few ms of lead so the first deadline is not already late when the loop
    // starts. Closed loop: workers start at once.
    this.startMs = performance.now() + (request.mode === 'open' ? 5 : 0);
    this.measureStartMs = this.startMs + request.warmupSeconds * 1000;
    this.stopAtMs =
      request.durationSeconds !== undefined
        ? this.measureStartMs + request.durationSeconds * 1000
        : Number.POSITIVE_INFINITY;
    this.lastMeasuredSendMs = this.measureStartMs;
    this.lastMeasuredFinishMs = this.measureStartMs;
    this.maxQueued = hooks.maxQueued ?? Math.max(1000, concurrency * 10);
    this.inFlightRequests = new InFlightRequests(request.requestTimeoutSeconds * 1000);
    const bucketSeconds = Math.max(1, Math.ceil((request.durationSeconds ?? 60) / 300));
    this.aggregator = new LoadAggregator(
      this.measureStartMs,
      bucketSeconds,
      goodputLimitsFromSlo(request.slo),
    );
  }

  private get measuredQuotaReached(): boolean {
    const reached =
      this.request.maxRequests !== undefined && this.measuredScheduled >= this.request.maxRequests;
    if (reached) this.stoppedBy ??= 'requests';
    return reached;
  }

  /**
   * The measured time the sends were spread over, for the achieved rate. Open loop: from the
   * start of the window to the last send, or the whole duration when that ran out (longer
   * when the client fell behind). Closed loop: a slot's next send waits for its answer, so
   * the window runs to the last measured answer, or to the end of the duration.
   */
  sendWindowSeconds(): number {
    const durationMs = this.stoppedBy === 'duration' ? this.stopAtMs - this.measureStartMs : 0;
    const spanMs =
      this.request.mode === 'open'
        ? Math.max(this.lastMeasuredSendMs - this.measureStartMs, durationMs)
        : durationMs > 0
          ? durationMs
          : this.lastMeasuredFinishMs - this.measureStartMs;
    return Math.max(1e-3, spanMs / 1000);
  }

  async execute(): Promise<void> {
    const signal = this.hooks.signal;
    const onAbort = () => {
      this.stopping = true;
      this.queue.length = 0;
      this.inFlightRequests.abortAll();
    };
    if (signal?.aborted) throw new LoadTestCancelledError('load test cancelled before it started');
    signal?.addEventListener('abort', onAbort, { once: true });
    const progressTimer = this.hooks.onProgress
      ? setInterval(() => this.reportProgress(), this.hooks.progressIntervalMs ?? 1000)
      : undefined;
    progressTimer?.unref();
    try {
      if (this.request.mode === 'open') await this.openLoop();
      else await this.closedLoop();
      // Drain: everything scheduled is sent and measured, bounded by the request timeout.
      while (this.inFlightDone.size > 0) {
        await Promise.all([...this.inFlightDone]);
      }
      if (signal?.aborted) throw new LoadTestCancelledError('load test cancelled');
      this.reportProgress(true);
    } finally {
      if (progressTimer) clearInterval(progressTimer);
      signal?.removeEventListener('abort', onAbort);
      this.inFlightRequests.close();
    }
  }

  private reportProgress(done = false): void {
    const now = performance.now();
    const counts = this.aggregator.counts;
    const elapsed = (now - this.measureStartMs) / 1000;
    let fraction: number;
    if (done) fraction = 1;
    else if (this.request.durationSeconds !== undefined) fraction = elapsed / this.request.durationSeconds;
    else fraction = this.measuredScheduled / (this.request.maxRequests as number);
    const sendWindow = Math.max(1e-3, (Math.min(now, this.stopAtMs) - this.measureStartMs) / 1000);
    this.hooks.onProgress?.({
      phase: done ? 'done' : now < this.measureStartMs ? 'warmup' : this.stopping ? 'drain' : 'measure',
      elapsedSeconds: Math.round(elapsed * 10) / 10,
      fraction: Math.min(1, Math.max(0, fraction)),
      sent: this.sent,
      completed: this.completed,
      ok: counts.ok,
      failed: counts.failed,
      inFlight: this.inFlight,
      queued: this.queue.length,
      achievedRps: Math.round((this.measuredSent / sendWindow) * 100) / 100,
      p99E2eMs: counts.p99E2eMs,
    });
  }

  private async openLoop(): Promise<void> {
    // The schema fills both on an open loop; the defaults only satisfy the type.
    const schedule = new ArrivalSchedule(
      this.request.requestsPerSecond ?? DEFAULT_REQUESTS_PER_SECOND,
      this.request.burstiness ?? DEFAULT_BURSTINESS,
      this.request.seed,
    );
    while (!this.stopping) {
      const now = performance.now();
      // Every arrival whose deadline has passed goes now: a late timer delays sends (the
      // delay shows as queue time and in the latencies) but never thins the arrivals.
      while (this.startMs + schedule.peek() <= now) {
        const intendedMs = this.startMs + schedule.next();
        if (intendedMs >= this.stopAtMs) {
          this.stoppedBy ??= 'duration';
          this.stopping = true;
          break;
        }
        const measured = intendedMs >= this.measureStartMs;
        if (measured) {
          if (this.measuredQuotaReached) {
            this.stopping = true;
            break;
          }
          this.measuredScheduled += 1;
          recordLag(this.lag, now - intendedMs);
        }
        this.admit(intendedMs, measured, now);
      }
      if (this.stopping) break;
      const next = this.startMs + schedule.peek();
      if (next >= this.stopAtMs) {
        this.stoppedBy ??= 'duration';
        break;
      }
      const wait = next - performance.now();
      // Timers have 1 ms granularity: sleep for the whole milliseconds, then yield to I/O
      // until the deadline, so sub-millisecond gaps at high rates are not rounded up.
      if (wait >= 2) await sleep(Math.floor(wait) - 1);
      else await yieldToLoop();
    }
  }

  private admit(intendedMs: number, measured: boolean, now: number): void {
    if (this.inFlight < this.concurrency) {
      void this.launch(intendedMs, measured);
    } else if (this.queue.length < this.maxQueued) {
      this.queue.push({ intendedMs, measured });
    } else {
      // The client cannot keep up: count the arrival as a failed request so the overload
      // is visible in the error rate instead of silently thinning the load.
      this.droppedStarts += measured ? 1 : 0;
      this.finishRecord(
        {
          intendedMs,
          sentMs: now,
          finishedMs: now,
          ok: false,
          errorClass: 'client_overload',
          error: `not sent: ${this.concurrency} requests in flight and ${this.maxQueued} waiting`,
          itlMs: [],
          chunks: 0,
          tokenSource: 'none',
        },
        measured,
        undefined,
        false,
      );
    }
  }

  private launch(intendedMs: number, measured: boolean): Promise<void> {
    const index = this.nextPrompt++ % this.prompts.length;
    const prompt = this.prompts[index] as PromptItem;
    this.inFlight += 1;
    this.sent += 1;
    if (measured) {
      this.measuredSent += 1;
      this.lastMeasuredSendMs = Math.max(this.lastMeasuredSendMs, performance.now());
    } else {
      this.warmupRequests += 1;
    }
    // Text is kept for a sample of measured answers (the token cross-check), counted among
    // measured requests only so no warm-up can use it up; a non-streamed answer's text is
    // in hand anyway and is what its tokens are estimated from when usage is missing.
    const sample = measured && this.textSamples < TOKEN_CHECK_SAMPLES;
    if (sample) this.textSamples += 1;
    const done = sendChatCompletion(this.target, this.bodies[index] as string, {
      stream: this.request.stream,
      intendedMs,
      latencyFrom: this.request.mode === 'open' ? 'intended' : 'sent',
      inFlight: this.inFlightRequests,
      captureText: sample || !this.request.stream,
    }).then((record) => {
      this.inFlight -= 1;
      this.inFlightDone.delete(done);
      this.finishRecord(record, measured, prompt, sample);
      const next = this.queue.shift();
      if (next) void this.launch(next.intendedMs, next.measured);
    });
    this.inFlightDone.add(done);
    return done;
  }

  private finishRecord(
    record: RequestRecord,
    measured: boolean,
    prompt: PromptItem | undefined,
    sample: boolean,
  ): void {
    this.completed += 1;
    if (sample && (!record.ok || record.cancelled)) this.textSamples -= 1;
    if (record.cancelled) return;
    this.hooks.onRecord?.(record, measured);
    if (!measured) return;
    this.lastMeasuredFinishMs = Math.max(this.lastMeasuredFinishMs, record.finishedMs);
    if (record.ok && prompt && record.tokenSource !== 'usage') {
      // No usage from the server: counted after the run, when the tokenizer load cannot
      // disturb the measurement.
      this.pendingEstimates.push({ record, prompt });
      return;
    }
    if (record.ok && record.tokenSource === 'usage') {
      if (this.request.stream) {
        this.chunkCheck.answers += 1;
        this.chunkCheck.usage += record.outputTokens ?? 0;
        this.chunkCheck.chunks += record.chunks;
      } else if (prompt && sample && record.text !== undefined) {
        this.tokenChecks.push({ record: { ...record, itlMs: [] }, prompt });
      }
    }
    record.text = undefined;
    this.aggregator.add(record);
  }

  private async closedLoop(): Promise<void> {
    const stagger = (this.request.rampUpSeconds * 1000) / this.concurrency;
    const workers = Array.from({ length: this.concurrency }, (_, i) => this.closedWorker(i * stagger));
    await Promise.all(workers);
    this.stopping = true;
  }

  /** One closed-loop slot: send, wait for the whole answer, send the next. */
  private async closedWorker(startDelayMs: number): Promise<void> {
    if (startDelayMs > 0) await sleep(startDelayMs);
    while (!this.stopping) {
      const now = performance.now();
      if (now >= this.stopAtMs) {
        this.stoppedBy ??= 'duration';
        return;
      }
      const measured = now >= this.measureStartMs;
      if (measured) {
        if (this.measuredQuotaReached) return;
        this.measuredScheduled += 1;
      }
      await this.launch(now, measured);
    }
  }

  /**
   * Fills token counts the server did not send and cross-checks those it did. Output tokens
   * of a streamed answer are its token-carrying chunks (vLLM streams one token per chunk; a
   * tokenizer other than the model's is far off, cl100k_base 2.6x on Qwen's Chinese); the
   * tokenizer estimate stays where no stream exists: prompts and non-streamed answers.
   */
  async settleTokenCounts(): Promise<string[]> {
    const warnings: string[] = [];
    const { answers, usage, chunks } = this.chunkCheck;
    if (answers > 0 && countsDisagree(usage, chunks)) {
      warnings.push(
        `server usage and the count of streamed chunks disagree by more than ${DISAGREEMENT_FACTOR}x over ${answers} checked answers (usage ${usage} output tokens, chunks ${chunks}); the report uses usage, check the server's token accounting`,
      );
    }
    if (this.pendingEstimates.length === 0 && this.tokenChecks.length === 0) return warnings;
    await loadTokenEstimator();
    let streamed = 0;
    for (const { record, prompt } of this.pendingEstimates) {
      if (record.outputTokens === undefined) {
        if (this.request.stream) {
          record.outputTokens = record.chunks;
          record.tokenSource = 'chunks';
          streamed += 1;
        } else {
          record.outputTokens = countCl100kTokens(record.text ?? '');
          record.tokenSource = 'estimate';
        }
      }
      if (record.inputTokens === undefined) {
        record.inputTokens = countCl100kTokens(prompt.messages.map((m) => m.content).join('\n'));
      }
      if (record.outputTokens > 1 && record.ttftMs !== undefined && record.e2eMs !== undefined) {
        record.tpotMs = (record.e2eMs - record.ttftMs) / (record.outputTokens - 1);
      }
      record.text = undefined;
      this.aggregator.add(record);
    }
    if (streamed > 0) {
      warnings.push(
        `${streamed} answers carried no usage: output tokens are their streamed content chunks (vLLM streams one token per chunk), input tokens ${TOKEN_ESTIMATOR_NAME} estimates; marked "chunks" in the report`,
      );
    }
    const estimated = this.pendingEstimates.length - streamed;
    if (estimated > 0) {
      warnings.push(
        `${estimated} answers carried no usage and no stream: their token counts are ${TOKEN_ESTIMATOR_NAME} estimates of the text, marked "estimate" in the report`,
      );
    }
    let usageSum = 0;
    let estimateSum = 0;
    for (const { record } of this.tokenChecks) {
      usageSum += record.outputTokens ?? 0;
      estimateSum += countCl100kTokens(record.text ?? '');
    }
    if (this.tokenChecks.length > 0 && countsDisagree(usageSum, estimateSum)) {
      warnings.push(
        `server usage and the ${TOKEN_ESTIMATOR_NAME} estimate disagree by more than ${DISAGREEMENT_FACTOR}x over ${this.tokenChecks.length} checked answers (usage ${usageSum} output tokens, estimate ${estimateSum}); the report uses usage, check the server's token accounting`,
      );
    }
    return warnings;
  }
}

function recordLag(histogram: hdr.Histogram, lagMs: number): void {
  histogram.recordValue(Math.min(3_600_000_000, Math.max(0, Math.round(lagMs * 1000))));
}
