// A workflow's spec is resolved once, where replay cannot change it.
//
// The start input is whatever the starter sent: a full spec from the CLI, or
// {"model": "qwen/Qwen-7B-Chat"} from the Temporal UI. Filling its defaults inside the
// workflow would fill them again on every replay, with whatever defaults the worker that
// replays has: a default changed in src/domain between the start of a promotion and its
// approval (days later) would change what the promotion does, or break its replay. So the
// first thing every workflow does is a local activity (activities/spec.ts) that validates
// the input and fills the defaults; its result is recorded in history as a marker, and a
// replay reads the spec back from that marker instead of parsing again.
//
// Why a local activity and not the starters: the UI path has no starter code to resolve
// anything, and a local activity adds no round trip to the server (it runs inside the
// first workflow task). Bad input comes back as an answer, not a failure, and ends the run
// with InvalidInput naming each field, as before.
//
// Runs started before this existed have no marker: `patched(RESOLVE_SPEC_PATCH)` is false
// when they replay, and they parse inside the workflow as they did. Once no such run can
// remain (the longest approval timeout after the deploy), this becomes
// deprecatePatch(RESOLVE_SPEC_PATCH) and the legacy branch goes (README, "Changing a
// workflow").

import { patched, proxyLocalActivities } from '@temporalio/workflow';
import type { SpecActivities, SpecResolution } from '../activities/spec.js';
import { InputValidationError } from '../src/domain/validation.js';
import { invalidInput } from './failures.js';

export const RESOLVE_SPEC_PATCH = 'resolve-spec-once';

const resolvers = proxyLocalActivities<SpecActivities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '100ms', maximumAttempts: 5 },
});

type Resolved<K extends keyof SpecActivities> =
  Awaited<ReturnType<SpecActivities[K]>> extends SpecResolution<infer T> ? T : never;

/**
 * The spec this run works with: resolved by the local activity `name` and recorded in
 * history (or, for a run from before the patch, parsed here by `legacyParse`). Bad input
 * ends the run: InvalidInput, naming each bad field.
 */
export async function resolveSpecOnce<K extends keyof SpecActivities>(
  name: K,
  input: unknown,
  legacyParse: (input: unknown) => Resolved<K>,
  onRefused?: (reason: string) => void,
): Promise<Resolved<K>> {
  try {
    if (!patched(RESOLVE_SPEC_PATCH)) return legacyParse(input);
    const resolve = resolvers[name] as (input: unknown) => Promise<SpecResolution<Resolved<K>>>;
    const resolution = await resolve(input);
    if (!resolution.ok) throw new InputValidationError(resolution.subject, resolution.issues);
    return resolution.spec;
  } catch (err) {
    // Anything else (the local activity itself failing) fails the run as it is.
    if (err instanceof InputValidationError) {
      onRefused?.(err.message);
      throw invalidInput(err);
    }
    throw err;
  }
}

/**
 * A text field of the raw start input (e.g. "serving", "namespace"), or "": what the
 * status query shows while the spec is being resolved. Handlers are installed before that,
 * so a query or an update that arrives with the start is answered, not refused.
 */
export function rawText(input: unknown, ...path: string[]): string {
  let value: unknown = input;
  for (const key of path) {
    value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  }
  return typeof value === 'string' ? value : '';
}
