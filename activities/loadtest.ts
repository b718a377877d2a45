import { CancelledFailure } from '@temporalio/common';
import type { AnalysisHooks, CanaryAnalysisRequest, CanaryAnalyzer } from '../src/analysis/port.js';
import { type ConfinementPolicy, confineUrl } from '../src/config/confinement.js';
import type { AnalysisResult } from '../src/domain/analysis.js';
import type { LoadTestRequestInput } from '../src/domain/load-test.js';
import { assertStorageKey } from '../src/domain/validation.js';
import { describeLoadTest, type SloResult } from '../src/loadtest/index.js';
import { runAndStoreLoadTest } from '../src/loadtest/run-and-store.js';
import type { Logger } from '../src/observability/logger.js';
import type { ArtifactStore } from '../src/storage/port.js';
import type { LoadTestOutcome } from './contracts.js';
import { heartbeating } from './support.js';

// Activities over the load generator and the canary analyzer, for callers that already
// know the endpoint URLs (the loadTest workflow, tests, CI). promoteModel/canaryRelease
// reach the same code through activities/serving.ts, which first resolves a service's
// URLs; the names here differ so both sets can live on the cluster queue's worker.

export interface EndpointLoadTestInput {
  /** The load test, as parseLoadTestRequest accepts it (validated here too). */
  request: LoadTestRequestInput;
  /** Artifact-store prefix that receives report.json and report.html. */
  reportPrefix: string;
  /** Report id; the workflow passes its own id so a retry writes the same report. */
  reportId?: string;
}

export interface EndpointLoadTestResult extends LoadTestOutcome {
  reportJsonUri: string;
  reportHtmlUri: string;
  /** One line for logs and the UI. */
  description: string;
  slo: SloResult[];
  warnings: string[];
}

export interface LoadTestActivityDeps {
  store: ArtifactStore;
  analyzer: CanaryAnalyzer;
  logger?: Logger;
  /** Bearer token for the endpoints under test (from the environment, never from input). */
  apiKey?: string;
  /**
   * The worker's confinement (config.confinement): these activities take URLs and prompt
   * file paths from workflow input, so targets must be allowlisted and files under a root.
   */
  confinement: Pick<ConfinementPolicy, 'promptRoots' | 'loadTestTargets'>;
}

export function createLoadTestActivities(deps: LoadTestActivityDeps) {
  return {
    /** Runs one load test against a URL, stores its report, returns the verdict and headline figures. */
    runEndpointLoadTest(input: EndpointLoadTestInput): Promise<EndpointLoadTestResult> {
      return heartbeating(async (hooks) => {
        // Checked before any load is sent: a bad prefix must not waste a whole test.
        assertStorageKey(input.reportPrefix, 'reportPrefix');
        const { report, stored, verdict } = await runAndStoreLoadTest(input.request, {
          store: deps.store,
          reportPrefix: input.reportPrefix,
          signal: hooks.signal,
          onProgress: hooks.onProgress,
          logger: deps.logger,
          apiKey: deps.apiKey,
          id: input.reportId,
          confinement: deps.confinement,
        });
        return {
          ...verdict,
          reportHtmlUri: stored.htmlUri,
          description: describeLoadTest(report),
          slo: report.slo.results,
          warnings: report.warnings,
        };
      });
    },

    /** One canary analysis between revisions whose endpoints the caller already knows. */
    analyseCanaryEndpoints(request: CanaryAnalysisRequest): Promise<AnalysisResult> {
      return heartbeating(async (hooks) => {
        const analysisHooks: AnalysisHooks = { signal: hooks.signal, onProgress: hooks.onProgress };
        // Both endpoints come from input: the same allowlist as a load test's target.
        const targets = deps.confinement.loadTestTargets;
        confineUrl(request.canary?.baseUrl ?? '', targets, 'canary analysis request', 'canary.baseUrl');
        if (request.stable) {
          confineUrl(request.stable.baseUrl, targets, 'canary analysis request', 'stable.baseUrl');
        }
        try {
          return await deps.analyzer.analyse(request, analysisHooks);
        } catch (error) {
          if (hooks.signal.aborted) throw new CancelledFailure('canary analysis cancelled');
          throw error;
        }
      });
    },
  };
}

export type LoadTestActivities = ReturnType<typeof createLoadTestActivities>;
