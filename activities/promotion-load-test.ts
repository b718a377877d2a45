import { artifactKeys } from '../src/domain/artifact-layout.js';
import { loadTestRequestFromProfile } from '../src/domain/load-test.js';
import { runAndStoreLoadTest } from '../src/loadtest/run-and-store.js';
import type { Logger } from '../src/observability/logger.js';
import type { ArtifactStore } from '../src/storage/port.js';
import type { ServingActivityDeps } from './serving.js';

// The load-test stage of a promotion: the promotion's profile becomes a load-test request
// against the service's traffic split; the full report (JSON + HTML) goes next to the
// run's other artifacts and the stage keeps the headline figures and the SLO verdict.

export function createPromotionLoadTest(deps: {
  store: ArtifactStore;
  logger: Logger;
}): ServingActivityDeps['loadTest'] {
  return async ({ workflowId, baseUrl, model, profile }, hooks) => {
    const { verdict } = await runAndStoreLoadTest(loadTestRequestFromProfile(profile, baseUrl, model), {
      store: deps.store,
      reportPrefix: `${artifactKeys.runDir(workflowId)}/load-test`,
      signal: hooks.signal,
      onProgress: hooks.onProgress,
      logger: deps.logger,
    });
    return verdict;
  };
}
