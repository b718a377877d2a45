import { type CanaryReleaseSpec, parseCanaryReleaseSpec } from '../src/domain/canary.js';
import { type ReindexRequest, reindexRequestSchema } from '../src/domain/knowledge.js';
import { type LoadTestRequest, parseLoadTestRequest } from '../src/domain/load-test.js';
import { type PromotionSpec, parsePromotionSpec } from '../src/domain/promotion-spec.js';
import { type FieldIssue, InputValidationError, parseInput } from '../src/domain/validation.js';

// Spec resolution, run as the first (local) activity of every workflow: a start input is
// validated and its defaults filled here, once, and the resolved spec is recorded in the
// workflow's history (a local activity marker). On replay the workflow reads the spec back
// from that marker instead of parsing again, so changing a default in src/domain never
// changes what a run already in flight does (workflows/resolve-spec.ts).
//
// Registered on every worker that runs workflows (local activities run in the workflow's
// worker): workers/compose.ts for the default queue, and the test workers.

/** A resolved spec, or the bad fields (bad input is an answer, not an activity failure). */
export type SpecResolution<T> = { ok: true; spec: T } | { ok: false; subject: string; issues: FieldIssue[] };

function resolveWith<T>(parse: (input: unknown) => T, input: unknown): SpecResolution<T> {
  try {
    return { ok: true, spec: parse(input) };
  } catch (err) {
    if (err instanceof InputValidationError) return { ok: false, subject: err.subject, issues: err.issues };
    throw err;
  }
}

export const specActivities = {
  async resolvePromotionSpec(input: unknown): Promise<SpecResolution<PromotionSpec>> {
    return resolveWith(parsePromotionSpec, input);
  },
  async resolveCanaryReleaseSpec(input: unknown): Promise<SpecResolution<CanaryReleaseSpec>> {
    return resolveWith(parseCanaryReleaseSpec, input);
  },
  async resolveLoadTestRequest(input: unknown): Promise<SpecResolution<LoadTestRequest>> {
    return resolveWith(parseLoadTestRequest, input);
  },
  async resolveReindexRequest(input: unknown): Promise<SpecResolution<ReindexRequest>> {
    return resolveWith(
      (value) => parseInput('knowledge re-index request', reindexRequestSchema, value),
      input,
    );
  },
};

export type SpecActivities = typeof specActivities;
