import type { FinishReason } from '../openai/wire.js';
import { LatencySamples, type LatencySummary } from './latency-stats.js';
import type { VllmMetrics } from './metrics.js';
import type { FaultSettings } from './options.js';

// What the simulator counts, kept twice: vLLM's Prometheus series (./metrics.ts) for
// dashboards and the analysis providers, and exact counters and latency samples for
// /admin/stats, which tests and benchmarks compare with what a client measured. Every
// event is recorded here once, so the two views never disagree on what happened.

export interface SimulatorStats {
  simulated: true;
  model: string;
  revision: string;
  /** When counting (re)started. */
  since: string;
  requests: {
    total: number;
    completed: number;
    /** Answers with an error status, by status code. */
    errors: Record<string, number>;
    /** Connections destroyed mid-answer by the resetMidStreamPct fault. */
    resets: number;
    /** Clients that went away before the answer ended. */
    aborted: number;
    embeddings: number;
  };
  /** Server-side latencies (ms) of completed generations, from request arrival. */
  e2eMs: LatencySummary;
  ttftMs: LatencySummary;
  queueMs: LatencySummary;
  promptTokens: number;
  outputTokens: number;
  running: number;
  waiting: number;
  faults: FaultSettings;
}

/** What the stats report besides the counters: who is served and the engine's state now. */
export interface StatsContext {
  model: string;
  revision: string;
  running: number;
  waiting: number;
  faults: FaultSettings;
}

export class SimulatorRecorder {
  private since = new Date();
  private total = 0;
  private completedCount = 0;
  private errors: Record<string, number> = {};
  private resets = 0;
  private aborted = 0;
  private embeddings = 0;
  private promptTokens = 0;
  private outputTokens = 0;
  private readonly e2e = new LatencySamples();
  private readonly ttft = new LatencySamples();
  private readonly queue = new LatencySamples();

  constructor(readonly metrics: VllmMetrics) {}

  /** A generation or embedding request arrived (admin routes are not counted). */
  arrived(): void {
    this.total++;
  }

  error(status: number): void {
    this.errors[status] = (this.errors[status] ?? 0) + 1;
  }

  /** A request got its batch slot after waiting `ms`. */
  queued(ms: number): void {
    this.metrics.requestQueueTime.observe(ms / 1000);
    this.queue.add(ms);
  }

  firstToken(msFromArrival: number): void {
    this.metrics.timeToFirstToken.observe(msFromArrival / 1000);
  }

  tokenGap(ms: number): void {
    this.metrics.interTokenLatency.observe(ms / 1000);
  }

  /** A generation answered in full (its end is recorded by ended()). */
  completed(promptTokens: number, outputTokens: number, e2eMs: number, ttftMs: number): void {
    this.completedCount++;
    this.promptTokens += promptTokens;
    this.outputTokens += outputTokens;
    this.metrics.promptTokens.inc(promptTokens);
    this.metrics.generationTokens.inc(outputTokens);
    this.metrics.e2eRequestLatency.observe(e2eMs / 1000);
    this.e2e.add(e2eMs);
    this.ttft.add(ttftMs);
  }

  /** A generation ended: finished, reset by the fault, or left by its client ('abort'). */
  ended(reason: FinishReason | 'reset'): void {
    if (reason === 'reset') {
      this.resets++;
      this.metrics.requestSuccess('abort');
    } else if (reason === 'abort') {
      this.aborted++;
      this.metrics.requestSuccess('abort');
    } else {
      this.metrics.requestSuccess(reason);
    }
  }

  embedded(promptTokens: number): void {
    this.embeddings++;
    this.metrics.promptTokens.inc(promptTokens);
  }

  /** Restarts the counters and samples; the Prometheus series keep counting, as vLLM's do. */
  reset(): void {
    this.since = new Date();
    this.total = 0;
    this.completedCount = 0;
    this.errors = {};
    this.resets = 0;
    this.aborted = 0;
    this.embeddings = 0;
    this.promptTokens = 0;
    this.outputTokens = 0;
    this.e2e.reset();
    this.ttft.reset();
    this.queue.reset();
  }

  snapshot(context: StatsContext): SimulatorStats {
    return {
      simulated: true,
      model: context.model,
      revision: context.revision,
      since: this.since.toISOString(),
      requests: {
        total: this.total,
        completed: this.completedCount,
        errors: { ...this.errors },
        resets: this.resets,
        aborted: this.aborted,
        embeddings: this.embeddings,
      },
      e2eMs: this.e2e.summary(),
      ttftMs: this.ttft.summary(),
      queueMs: this.queue.summary(),
      promptTokens: this.promptTokens,
      outputTokens: this.outputTokens,
      running: context.running,
      waiting: context.waiting,
      faults: context.faults,
    };
  }
}
