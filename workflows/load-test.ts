// loadTest: drive an OpenAI-compatible endpoint with a load profile, store the report
// (JSON + HTML) in the artifact store and judge it against its SLOs. The request is
// validated when the workflow starts, so a bad start form fails at once naming each field.

import { ApplicationFailure, setWorkflowOptions, workflowInfo } from '@temporalio/workflow';
import type { EndpointLoadTestResult } from '../activities/loadtest.js';
import { artifactKeys } from '../src/domain/artifact-layout.js';
import {
  type LoadTestRequest,
  type LoadTestRequestInput,
  parseLoadTestRequest,
} from '../src/domain/load-test.js';
import { loadTestActivities } from './activity-options.js';
import { FAILURE_TYPES } from './definitions.js';
import { resolveSpecOnce } from './resolve-spec.js';
import { versioningBehavior } from './versioning.js';

export interface LoadTestWorkflowInput {
  /** What to load and how: src/domain/load-test.ts loadTestRequestSchema. */
  request: LoadTestRequestInput;
  /** End the workflow failed (LoadTestSloMissed) when an SLO is missed. Default true. */
  failOnSloMiss?: boolean;
  /** How fast a dead worker is noticed. Default 60 s. */
  heartbeatTimeoutSeconds?: number;
}

export interface LoadTestWorkflowResult extends EndpointLoadTestResult {
  workflowId: string;
}

/** Longest the measurement can take: warm-up + duration (or an hour by request count) + drain. */
function expectedSeconds(request: LoadTestRequest): number {
  return request.warmupSeconds + (request.durationSeconds ?? 3600) + request.requestTimeoutSeconds;
}

/** The activity call, for workflows that run a load test as one of their stages. */
export async function runLoadTestStage(
  request: LoadTestRequest,
  options: { reportPrefix: string; reportId: string; heartbeatTimeoutSeconds?: number },
): Promise<EndpointLoadTestResult> {
  const { runEndpointLoadTest } = loadTestActivities({
    expectedSeconds: expectedSeconds(request),
    heartbeatTimeoutSeconds: options.heartbeatTimeoutSeconds ?? 60,
  });
  return runEndpointLoadTest({ request, reportPrefix: options.reportPrefix, reportId: options.reportId });
}

// Worker Versioning: a load test moves to the current worker version at its next workflow
// task (its golden histories prove each version can replay the last one's runs).
setWorkflowOptions(versioningBehavior('AUTO_UPGRADE'), loadTest);

export async function loadTest(input: LoadTestWorkflowInput): Promise<LoadTestWorkflowResult> {
  // Resolved once and recorded in history: a later change of a default never reaches this run.
  const request = await resolveSpecOnce('resolveLoadTestRequest', input?.request, parseLoadTestRequest);
  const { workflowId } = workflowInfo();
  const result = await runLoadTestStage(request, {
    reportPrefix: `${artifactKeys.runDir(workflowId)}/load-test`,
    reportId: workflowId,
    heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds,
  });
  if (!result.passed && input.failOnSloMiss !== false) {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.loadTestSlo,
      message: `load test missed its SLOs: ${result.reasons.join('; ')} (report ${result.reportHtmlUri})`,
      nonRetryable: true,
      details: [result],
    });
  }
  return { ...result, workflowId };
}
