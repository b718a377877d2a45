import type { LoadTestRequest } from '../domain/load-test.js';
import type { AggregateResult } from './aggregate.js';
import type { SloEvaluation } from './slo.js';

// The load test report: one JSON document (stored next to its HTML rendering) that says
// what was asked, how the load was actually delivered, what was measured, and whether the
// SLOs held. Field names carry their unit.

export interface PacingReport {
  mode: 'open' | 'closed';
  /** Open loop: the asked arrival rate. */
  targetRps?: number;
  /** Requests actually sent per second during the measured window. */
  achievedRps: number;
  burstiness?: number;
  /** Closed loop: requests in flight; open loop: the in-flight cap. */
  concurrency: number;
  /** Measured arrivals the pacer scheduled. */
  scheduled: number;
  sent: number;
  /** Arrivals not sent because the client queue was full (counted as client_overload errors). */
  droppedStarts: number;
  warmupRequests: number;
  /** How late the pacer handed scheduled arrivals over (timer and event-loop delay), ms. */
  lagP99Ms?: number;
  lagMaxMs?: number;
  /** The pacing lag p99 is a sizeable part of a latency SLO: the client, not the server, limits the result. */
  clientLimited?: boolean;
}

export interface LoadTestReport {
  kind: 'qwenops.loadtest';
  version: 1;
  id: string;
  startedAt: string;
  finishedAt: string;
  /** modelListed: whether GET /models listed the model (absent when the server lists none). */
  target: { url: string; chatUrl: string; model: string; modelListed?: boolean };
  request: LoadTestRequest;
  pacing: PacingReport;
  results: AggregateResult;
  slo: SloEvaluation;
  warnings: string[];
}

/** Headline figures, flat, for workflow results and status lines (absent figures omitted). */
export function summariseLoadTest(report: LoadTestReport): Record<string, number> {
  const { results, pacing } = report;
  const summary: Record<string, number | undefined> = {
    requests: results.requests,
    ok: results.ok,
    errorRatePct: results.errorRatePct,
    requestsPerSecond: results.throughput.requestsPerSecond,
    outputTokensPerSecond: results.throughput.outputTokensPerSecond,
    goodputRps: results.goodput.requestsPerSecond,
    goodputPct: results.goodput.pct,
    p50TtftMs: results.latency.ttft?.p50Ms,
    p99TtftMs: results.latency.ttft?.p99Ms,
    p50TpotMs: results.latency.tpot?.p50Ms,
    p99TpotMs: results.latency.tpot?.p99Ms,
    p99ItlMs: results.latency.itl?.p99Ms,
    p50E2eMs: results.latency.e2e?.p50Ms,
    p99E2eMs: results.latency.e2e?.p99Ms,
    p99QueueMs: results.latency.queue?.p99Ms,
    achievedRps: pacing.achievedRps,
    targetRps: pacing.targetRps,
    droppedStarts: pacing.droppedStarts,
  };
  return Object.fromEntries(Object.entries(summary).filter((e): e is [string, number] => e[1] !== undefined));
}

/** One line for logs and CLI output. */
export function describeLoadTest(report: LoadTestReport): string {
  const r = report.results;
  const p99 = (v?: number) => (v === undefined ? 'n/a' : `${v.toFixed(1)} ms`);
  return [
    `${r.requests} requests in ${r.durationSeconds.toFixed(1)} s (${report.pacing.mode} loop, achieved ${report.pacing.achievedRps.toFixed(2)} req/s${report.pacing.targetRps !== undefined ? ` of ${report.pacing.targetRps}` : ''})`,
    `ok ${r.ok}, errors ${r.failed} (${r.errorRatePct.toFixed(2)} %)`,
    `p99 TTFT ${p99(r.latency.ttft?.p99Ms)}, p99 TPOT ${p99(r.latency.tpot?.p99Ms)}, p99 E2E ${p99(r.latency.e2e?.p99Ms)}`,
    `${r.throughput.outputTokensPerSecond.toFixed(1)} output tok/s, goodput ${r.goodput.requestsPerSecond.toFixed(2)} req/s`,
  ].join('; ');
}
