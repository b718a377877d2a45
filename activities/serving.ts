import type { CanaryAnalyzer } from '../src/analysis/port.js';
import type { AnalysisResult } from '../src/domain/analysis.js';
import { CatalogedError } from '../src/domain/failures.js';
import type { LoadTestProfile } from '../src/domain/promotion-spec.js';
import {
  recordCanaryAnalysis,
  recordCanaryConcluded,
  recordCanaryRolloutEnded,
  recordCanaryStepStarted,
  recordCanaryTraffic,
} from '../src/observability/pipeline-metrics.js';
import type { ServingService } from '../src/services/serving-rollout.js';
import type { AnalyseStepInput, LoadTestOutcome, ServingActivities } from './contracts.js';
import { type ActivityHooks, heartbeating, mapped } from './support.js';

// Activities that change or measure serving: thin adapters over ServingService, the canary
// analyzer and the load generator. They record the pipeline metrics
// (src/observability/pipeline-metrics.ts) after each successful change or analysis.

export interface ServingActivityDeps {
  serving: ServingService;
  analyzer: CanaryAnalyzer;
  /** Runs a load test against an OpenAI base URL and stores its report. */
  loadTest: (
    request: { workflowId: string; baseUrl: string; model: string; profile: LoadTestProfile },
    hooks: ActivityHooks,
  ) => Promise<LoadTestOutcome>;
}

export function createServingActivities(deps: ServingActivityDeps): ServingActivities {
  const { serving } = deps;

  /** Measures one analysis window (an inconclusive result when the canary has no endpoint). */
  async function analyseStep(input: AnalyseStepInput, hooks: ActivityHooks): Promise<AnalysisResult> {
    const status = await serving.describe(input.ref);
    const endpoints = status ? serving.endpoints(status) : {};
    if (!endpoints.canary) {
      // Nothing to measure is a measurement problem, not a verdict on the canary.
      const now = new Date().toISOString();
      return {
        step: input.step,
        canaryPercent: input.canaryPercent,
        verdict: 'inconclusive',
        reasons: [`no per-revision endpoint for the canary of ${input.ref.namespace}/${input.ref.name}`],
        checks: [],
        provider: deps.analyzer.provider,
        startedAt: now,
        finishedAt: now,
      };
    }
    return deps.analyzer.analyse(
      {
        step: input.step,
        canaryPercent: input.canaryPercent,
        model: input.ref.name,
        canary: endpoints.canary,
        // A baseline started with the canary is the fairer comparison: both cold, same load.
        ...(endpoints.baseline
          ? { stable: endpoints.baseline, comparison: 'baseline' as const }
          : { stable: endpoints.stable }),
        windowSeconds: input.windowSeconds,
        minSamples: input.minSamples,
        probe: input.probe,
        slo: input.slo,
      },
      hooks,
    );
  }

  return {
    claimServingTarget: (input) => mapped(() => serving.claim(input.ref, input.workflowId, input.actor)),

    releaseServingTarget: (input) =>
      mapped(async () => {
        await serving.release(input.ref, input.workflowId, input.actor);
        recordCanaryRolloutEnded(input.ref, input.workflowId);
      }),

    renewServingTarget: (input) => mapped(() => serving.renew(input.ref, input.workflowId)),

    holdServingTarget: (input) => heartbeating((hooks) => serving.hold(input.ref, input.workflowId, hooks)),

    describeServing: (input) => mapped(async () => (await serving.describe(input.ref)) ?? null),

    ensureStableService: (input) =>
      heartbeating((hooks) =>
        serving.ensureStable(
          input.ref,
          input.revision,
          { workflowId: input.workflowId, actor: input.actor, timeoutSeconds: input.timeoutSeconds },
          hooks,
        ),
      ),

    shiftCanaryTraffic: (input) =>
      heartbeating(async (hooks) => {
        // A canary step starts with its traffic shift, which may take up to its timeout.
        recordCanaryStepStarted(input.ref, input.workflowId, input.timeoutSeconds);
        const status = await serving.shiftCanaryTraffic(
          input.ref,
          input.revision,
          input.percent,
          {
            workflowId: input.workflowId,
            actor: input.actor,
            timeoutSeconds: input.timeoutSeconds,
            baseline: input.baseline,
          },
          hooks,
        );
        recordCanaryTraffic(input.ref, status.canaryPercent ?? input.percent);
        return status;
      }),

    rollbackCanary: (input) =>
      heartbeating(async (hooks) => {
        const status = await serving.rollback(
          input.ref,
          {
            workflowId: input.workflowId,
            actor: input.actor,
            timeoutSeconds: input.timeoutSeconds,
            reason: input.reason,
          },
          hooks,
        );
        recordCanaryConcluded(input.ref, input.workflowId);
        return status;
      }),

    promoteCanary: (input) =>
      heartbeating(async (hooks) => {
        const status = await serving.promote(
          input.ref,
          { workflowId: input.workflowId, actor: input.actor, timeoutSeconds: input.timeoutSeconds },
          hooks,
        );
        // The canary is the stable revision now (100 % of the traffic): no canary share left.
        recordCanaryConcluded(input.ref, input.workflowId);
        return status;
      }),

    analyseCanaryStep: (input) =>
      heartbeating(async (hooks): Promise<AnalysisResult> => {
        recordCanaryStepStarted(input.ref, input.workflowId, input.windowSeconds);
        const result = await analyseStep(input, hooks);
        recordCanaryAnalysis(input.ref, result);
        return result;
      }),

    runLoadTest: (input) =>
      heartbeating(async (hooks) => {
        const status = await serving.describe(input.ref);
        const baseUrl = status ? serving.endpoints(status).service : undefined;
        if (!baseUrl) {
          throw new CatalogedError(
            'ServiceUnreachable',
            `service ${input.ref.namespace}/${input.ref.name} has no URL to load-test`,
          );
        }
        return deps.loadTest(
          { workflowId: input.workflowId, baseUrl, model: input.ref.name, profile: input.profile },
          hooks,
        );
      }),
  };
}
