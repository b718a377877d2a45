import type { Logger } from '../observability/logger.js';
import type { ArtifactStore } from '../storage/port.js';
import { describeLoadTest, type LoadTestReport, summariseLoadTest } from './report.js';
import { type LoadTestHooks, type LoadTestProgress, runLoadTest } from './runner.js';
import { type StoredLoadTestReport, storeLoadTestReport } from './store.js';

// One load test, end to end: run it, store its report (JSON + HTML), and say how it went
// in the few figures a workflow keeps. Shared by the loadTest workflow's activity and the
// load-test stage of a promotion.

export interface LoadTestVerdict {
  passed: boolean;
  /** The missed SLOs, one message each (empty when passed). */
  reasons: string[];
  summary: Record<string, number>;
  reportUri: string;
  reportJsonUri: string;
}

export function describeProgress(p: LoadTestProgress): string {
  const p99 = p.p99E2eMs !== undefined ? `, p99 E2E ${p.p99E2eMs.toFixed(0)} ms` : '';
  return `${p.phase} ${Math.round(p.fraction * 100)}%: ${p.sent} sent, ${p.ok} ok, ${p.failed} failed, ${p.inFlight} in flight, ${p.achievedRps.toFixed(1)} req/s${p99}`;
}

export async function runAndStoreLoadTest(
  request: unknown,
  options: {
    store: ArtifactStore;
    reportPrefix: string;
    signal?: AbortSignal;
    onProgress?: (line: string) => void;
    logger?: Logger;
    apiKey?: string;
    id?: string;
    /** See LoadTestHooks.confinement: set when the request came from workflow input. */
    confinement?: LoadTestHooks['confinement'];
  },
): Promise<{ report: LoadTestReport; stored: StoredLoadTestReport; verdict: LoadTestVerdict }> {
  const report = await runLoadTest(request, {
    signal: options.signal,
    apiKey: options.apiKey,
    logger: options.logger,
    id: options.id,
    confinement: options.confinement,
    progressIntervalMs: 1000,
    onProgress: (p) => options.onProgress?.(describeProgress(p)),
  });
  const stored = await storeLoadTestReport(options.store, options.reportPrefix, report);
  const summary = summariseLoadTest(report);
  options.logger?.info(
    { reportUri: stored.jsonUri, passed: report.slo.passed, summary },
    `load test finished: ${describeLoadTest(report)}`,
  );
  return {
    report,
    stored,
    verdict: {
      passed: report.slo.passed,
      reasons: report.slo.results.filter((r) => !r.met).map((r) => r.message),
      summary,
      reportUri: stored.htmlUri,
      reportJsonUri: stored.jsonUri,
    },
  };
}
