import type { SafetyOutcome } from '../src/safety/safety-gate.js';
import type { SafetyGateService } from '../src/services/safety-gate.js';
import type { SafetyActivities } from './contracts.js';
import { heartbeating, mapped } from './support.js';

// The safety gate's activities: thin adapters over SafetyGateService. Serving and the
// prompt run heartbeat; the run resumes from the outcomes its last attempt checkpointed.

export function createSafetyActivities(deps: { safety: SafetyGateService }): SafetyActivities {
  const { safety } = deps;
  return {
    serveValidationCandidate: (input) =>
      heartbeating(async (hooks) => {
        const ref = safety.validationRef(input.workflowId, input.deploymentMode);
        const served = await safety.serveCandidate(
          ref,
          input.revision,
          { workflowId: input.workflowId, actor: input.actor, timeoutSeconds: input.timeoutSeconds },
          hooks,
        );
        return { ref, ...served };
      }),

    runSafetyGate: (input) =>
      heartbeating<Awaited<ReturnType<SafetyActivities['runSafetyGate']>>, SafetyOutcome[]>((hooks) =>
        safety.run(input, hooks),
      ),

    removeValidationCandidate: (input) =>
      mapped(() =>
        safety.removeCandidate(safety.validationRef(input.workflowId, input.deploymentMode), {
          workflowId: input.workflowId,
          actor: input.actor,
        }),
      ),
  };
}
