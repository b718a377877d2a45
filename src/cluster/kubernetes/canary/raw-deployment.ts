import { knativeSettled, knativeStatus } from './serverless.js';
import {
  type CanaryStrategy,
  type ServingReadback,
  type StrategyContext,
  unsupportedCanary,
} from './strategy.js';

// RawDeployment of KServe releases before v0.20: one Deployment, and no canary API that
// works - those releases silently ignore spec.predictor.canaryTrafficPercent (kserve#5335),
// so the "canary" would get all traffic or none. The service deploys and reads back as one
// revision; every canary change is refused before anything is read or written.

export const rawDeploymentReadback: ServingReadback = {
  status: (isvc, owner) => knativeStatus(isvc, false, owner),
  settled(isvc, canaryPercent) {
    if (canaryPercent !== undefined) throw unsupportedCanary(isvc.metadata);
    return knativeSettled(isvc, knativeStatus(isvc, false), undefined);
  },
};

export function rawDeployment({ ref }: StrategyContext): CanaryStrategy {
  const refuse = () => {
    throw unsupportedCanary(ref);
  };
  return {
    ...rawDeploymentReadback,
    mode: 'RawDeployment',
    deployAnnotations: {},
    startCanary: refuse,
    setTraffic: refuse,
    promote: refuse,
    rollBack: refuse,
  };
}
