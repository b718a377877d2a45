import { z } from 'zod';
import { type FieldIssue, issuesFromZod } from './validation.js';

// Payloads of the human-control signals and updates (approve, reject, abort, pause, resume,
// set traffic step). They arrive from the Temporal UI as free JSON, so each is parsed here
// before it may change anything: a malformed one is refused (update) or ignored and
// recorded (signal), never thrown inside the workflow where it would fail the workflow task.

/** The gates a pipeline can wait at; a decision names the one it answers. */
export const DECISION_GATES = [
  'before-canary',
  'before-promote',
  'inconclusive-analysis',
  'inconclusive-quality-gate',
] as const;
export type DecisionGate = (typeof DECISION_GATES)[number];

const actor = z.string().trim().min(1, 'must not be empty').max(128, 'at most 128 characters');
const text = z.string().max(2000, 'at most 2000 characters');

export const decisionSchema = z
  .object({
    gate: z.enum(DECISION_GATES, {
      message: `must name the gate this decision answers: one of ${DECISION_GATES.join(', ')} (the status query shows pendingDecision.gate)`,
    }),
    by: actor.optional(),
    comment: text.optional(),
  })
  .strict();
export type Decision = z.infer<typeof decisionSchema>;

export const abortRequestSchema = z
  .object({
    by: actor.optional(),
    reason: text.optional(),
  })
  .strict();
export type AbortRequest = z.infer<typeof abortRequestSchema>;

export const actorRequestSchema = z.object({ by: actor.optional() }).strict();
export type ActorRequest = z.infer<typeof actorRequestSchema>;

export const trafficStepRequestSchema = z
  .object({
    percent: z.number().int('must be a whole number').min(1, 'must be 1..100').max(100, 'must be 1..100'),
    by: actor.optional(),
  })
  .strict();
export type TrafficStepRequest = z.infer<typeof trafficStepRequestSchema>;

/** A payload schema and whether the payload may be absent. */
export interface ControlSchema<T> {
  schema: z.ZodType<T>;
  optional: boolean;
}

export const CONTROL_SCHEMAS = {
  decision: { schema: decisionSchema, optional: false } as ControlSchema<Decision>,
  abort: { schema: abortRequestSchema, optional: true } as ControlSchema<AbortRequest>,
  actor: { schema: actorRequestSchema, optional: true } as ControlSchema<ActorRequest>,
  trafficStep: { schema: trafficStepRequestSchema, optional: false } as ControlSchema<TrafficStepRequest>,
};

export type ControlParse<T> = { ok: true; value: T } | { ok: false; problem: string };

/**
 * Parses a control payload. `optional` payloads (abort, pause, resume) may be absent: the
 * UI sends none when its input box is left empty. The problem names each bad field.
 */
export function parseControlPayload<T>(
  schema: z.ZodType<T>,
  payload: unknown,
  options: { optional?: boolean } = {},
): ControlParse<T> {
  if (payload === undefined || payload === null) {
    if (options.optional) return { ok: true, value: schema.parse({}) };
    return { ok: false, problem: '(root): a JSON object is required' };
  }
  if (typeof payload !== 'object' || Array.isArray(payload)) {
    const got = Array.isArray(payload) ? 'an array' : typeof payload;
    return { ok: false, problem: `(root): expected a JSON object, got ${got}` };
  }
  const result = schema.safeParse(payload);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, problem: describeIssues(issuesFromZod(result.error)) };
}

function describeIssues(issues: FieldIssue[]): string {
  return issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ');
}
