import type { DeploymentMode, ServingStatus } from '../../../domain/serving-revision.js';
import type { InferenceService } from '../inference-service.js';
import { rawDeployment, rawDeploymentReadback } from './raw-deployment.js';
import { serverlessCanary, serverlessReadback } from './serverless.js';
import { standardCanary, standardReadback } from './standard.js';
import type { CanaryStrategy, ServingReadback, Settled, StrategyContext } from './strategy.js';

// The factory: the one place that looks at a deployment mode to pick its canary API.

export type { CanaryStrategy, ServiceEdit, ServingReadback, Settled, StrategyContext } from './strategy.js';
export { describeService } from './strategy.js';

const STRATEGIES: Record<DeploymentMode, (context: StrategyContext) => CanaryStrategy> = {
  Serverless: serverlessCanary,
  Standard: standardCanary,
  RawDeployment: rawDeployment,
};

const READBACKS: Record<DeploymentMode, ServingReadback> = {
  Serverless: serverlessReadback,
  Standard: standardReadback,
  RawDeployment: rawDeploymentReadback,
};

/** The canary API of the service's deployment mode (context.ref.deploymentMode). */
export function canaryStrategyFor(context: StrategyContext): CanaryStrategy {
  return STRATEGIES[context.ref.deploymentMode](context);
}

/** What the service serves and how traffic is split, as the controller last reported it. */
export function servingStatusFrom(
  isvc: InferenceService,
  mode: DeploymentMode,
  owner?: string,
): ServingStatus {
  return READBACKS[mode].status(isvc, owner);
}

/**
 * Whether the controller has applied the current spec and the traffic split shows
 * `canaryPercent` (undefined: no canary, one revision at 100 %). Throws when the controller
 * reports the new revision failed: waiting longer would not help.
 */
export function trafficSettled(
  isvc: InferenceService,
  mode: DeploymentMode,
  canaryPercent: number | undefined,
): Settled {
  return READBACKS[mode].settled(isvc, canaryPercent);
}
