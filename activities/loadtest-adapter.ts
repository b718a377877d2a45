import { loadTestRequestFromProfile } from '../src/domain/load-test.js';
import { artifactKeys } from '../src/domain/promotion-spec.js';
import { runLoadTest, storeLoadTestReport, summariseLoadTest } from '../src/loadtest/index.js';
import type { Logger } from '../src/observability/logger.js';
import type { ArtifactStore } from '../src/storage/port.js';
import type { ServingActivityDeps } from './serving.js';

// The load-test stage of a promotion: the promotion's profile becomes a load-test request
// against the service's traffic split; the full report (JSON + HTML) goes next to the
// run's other artifacts and the stage keeps the headline figures and the SLO verdict.

export function createLoadTestActivitiesFor(deps: {
  store: ArtifactStore;
  logger: Logger;
}): ServingActivityDeps['loadTest'] {
  return async ({ workflowId, baseUrl, model, profile }, hooks) => {
    const report = await runLoadTest(loadTestRequestFromProfile(profile, baseUrl, model), {
      signal: hooks.signal,
      logger: deps.logger,
      progressIntervalMs: 2000,
      onProgress: (p) =>
        hooks.onProgress(
          `${p.phase} ${Math.round(p.fraction * 100)}%: ${p.completed} done, ${p.failed} failed, ${p.inFlight} in flight, ${p.achievedRps.toFixed(1)} req/s`,
        ),
    });
    const stored = await storeLoadTestReport(
      deps.store,
      `${artifactKeys.runDir(workflowId)}/load-test`,
      report,
    );
    return {
      passed: report.slo.passed,
      reasons: report.slo.results.filter((r) => !r.met).map((r) => r.message),
      summary: summariseLoadTest(report),
      reportUri: stored.htmlUri,
      reportJsonUri: stored.jsonUri,
    };
  };
}
