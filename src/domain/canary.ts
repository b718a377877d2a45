import { z } from 'zod';
import type { Verdict } from './analysis.js';
import {
  approvalsSchema,
  baselineNeedsStandardMode,
  canaryPlanSchema,
  executionSchema,
  loadTestProfileSchema,
  servingTargetSchema,
} from './promotion-spec.js';
import { dnsLabelSchema, parseInput } from './validation.js';

// canaryRelease input (what CI starts for a new serving config, image or model revision)
// and the pure decision rules of the canary loop, shared with promoteModel.

const storageUriSchema = z
  .string()
  .regex(
    /^(s3|pvc|hf|oci|gs|file):\/\/[^\s]+$/,
    'must be a URI with scheme s3://, pvc://, hf://, oci://, gs:// or file://',
  )
  .refine((uri) => !uri.split('/').includes('..'), 'must not contain ".." segments (path traversal)');

export const canaryReleaseSpecSchema = z
  .object({
    serving: servingTargetSchema.and(z.object({ name: dnsLabelSchema })),
    /** Weights of the new revision. */
    storageUri: storageUriSchema,
    /** Whether the weights are AWQ-quantized (sets vLLM's --quantization). */
    quantized: z.boolean().default(true),
    canary: canaryPlanSchema.default(canaryPlanSchema.parse({})),
    /** CI releases run unattended unless asked: no approval gate by default. */
    approvals: approvalsSchema.default({ beforeCanary: false, beforePromote: false, timeoutSeconds: 3600 }),
    loadTest: loadTestProfileSchema.default(loadTestProfileSchema.parse({ enabled: false })),
    execution: executionSchema.default(executionSchema.parse({})),
    requestedBy: z.string().min(1).max(128).default('ci'),
    /** Why: commit, ticket, change summary; shown in reports and audit records. */
    reason: z.string().max(2000).optional(),
  })
  .strict()
  .superRefine((spec, ctx) => baselineNeedsStandardMode(spec, ctx));

export type CanaryReleaseSpecInput = z.input<typeof canaryReleaseSpecSchema>;
export type CanaryReleaseSpec = z.output<typeof canaryReleaseSpecSchema>;

export function parseCanaryReleaseSpec(input: unknown): CanaryReleaseSpec {
  return parseInput('canary release spec', canaryReleaseSpecSchema, input);
}

export type StepDecision =
  | { action: 'advance' }
  | { action: 'reanalyse'; failures: number }
  | { action: 'ask-human'; question: string }
  | { action: 'rollback'; reason: string };

/**
 * What to do after one analysis. A failure counts against `failureLimit` (Argo semantics:
 * limit 0 rolls back on the first failure); an inconclusive analysis is neither a failure
 * nor a pass: a human decides.
 */
export function decideAfterAnalysis(input: {
  verdict: Verdict;
  failuresSoFar: number;
  failureLimit: number;
  canaryPercent: number;
  reasons: readonly string[];
}): StepDecision {
  const headline = input.reasons[0] ?? 'no reason given';
  switch (input.verdict) {
    case 'pass':
      return { action: 'advance' };
    case 'fail': {
      const failures = input.failuresSoFar + 1;
      if (failures > input.failureLimit) {
        return {
          action: 'rollback',
          reason: `canary analysis failed at ${input.canaryPercent}% traffic (${failures} failure${failures === 1 ? '' : 's'}, limit ${input.failureLimit}): ${headline}`,
        };
      }
      return { action: 'reanalyse', failures };
    }
    case 'inconclusive':
      return {
        action: 'ask-human',
        question: `analysis at ${input.canaryPercent}% was inconclusive (${headline}); approve to continue, reject to roll back`,
      };
  }
}

/** Progress of a rollout in percent, counting finished steps (0..100). */
export function canaryProgressPercent(steps: readonly number[], completedSteps: number): number {
  if (steps.length === 0) return 100;
  return Math.round((Math.min(completedSteps, steps.length) / steps.length) * 100);
}
