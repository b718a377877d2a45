// Turning whatever ended a pipeline into an outcome, a reason people can read, and the
// failure the workflow ends with.

import {
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  isCancellation,
  TemporalFailure,
} from '@temporalio/workflow';
import type { Outcome } from '../src/domain/status.js';
import { InputValidationError } from '../src/domain/validation.js';
import type { PipelineControl } from './control.js';
import { FAILURE_TYPES } from './definitions.js';
import type { Saga } from './saga.js';
import { publishOutcome } from './visibility.js';

/** Wrapper messages that say nothing about the cause. */
const GENERIC_MESSAGES = new Set([
  'Activity task failed',
  'Child Workflow execution failed',
  'Workflow execution failed',
]);

/**
 * What went wrong, whole: every message along the cause chain, outermost first, without
 * Temporal's generic wrappers and without repeating a message its parent already contains
 * ("cannot reach the cluster at ...: connect ECONNREFUSED", not just the last part).
 */
export function rootMessage(err: unknown): string {
  const messages: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    const message = current instanceof Error ? current.message : String(current);
    if (message && !GENERIC_MESSAGES.has(message) && !messages.some((m) => m.includes(message))) {
      messages.push(message);
    }
    current = current instanceof Error ? current.cause : undefined;
  }
  return messages.join(': ') || (err instanceof Error ? err.message : String(err));
}

function applicationType(err: unknown): string | undefined {
  let current: unknown = err;
  while (current instanceof TemporalFailure) {
    if (current instanceof ApplicationFailure && current.type) return current.type;
    current = current.cause;
  }
  return undefined;
}

export interface Classified {
  outcome: Exclude<Outcome, 'running' | 'promoted'>;
  reason: string;
  /** What the workflow throws: an ApplicationFailure, or the cancellation itself. */
  failure: unknown;
}

export function classifyFailure(
  err: unknown,
  abort: { by: string; reason: string } | undefined,
  leaseLost?: string,
): Classified {
  if (leaseLost) {
    const reason = `lost the rollout lease: ${leaseLost}`;
    return {
      outcome: 'failed',
      reason,
      failure: ApplicationFailure.create({
        type: FAILURE_TYPES.servingLeaseLost,
        message: reason,
        nonRetryable: true,
      }),
    };
  }
  if (abort) {
    const reason = `aborted by ${abort.by}: ${abort.reason}`;
    return {
      outcome: 'aborted',
      reason,
      failure: ApplicationFailure.create({
        type: FAILURE_TYPES.aborted,
        message: reason,
        nonRetryable: true,
      }),
    };
  }
  if (isCancellation(err)) {
    // Only an abort (handled above) or a cancellation of the workflow itself (Temporal UI,
    // API, CLI) cancels the pipeline's scope; an activity cancelled that way surfaces as an
    // ActivityFailure wrapping the cancellation. Either way the run ends as Cancelled, after
    // clean-up, not as a failure.
    const reason = 'cancelled through Temporal';
    return {
      outcome: 'aborted',
      reason,
      failure: err instanceof CancelledFailure ? err : new CancelledFailure(reason),
    };
  }
  const type = applicationType(err);
  const reason = rootMessage(err);
  const fail = (outcome: Classified['outcome'], failureType: string) => ({
    outcome,
    reason,
    failure:
      err instanceof ApplicationFailure && err.type === failureType
        ? err
        : ApplicationFailure.create({
            type: failureType,
            message: reason,
            nonRetryable: true,
            cause: err instanceof Error ? err : undefined,
          }),
  });
  switch (type) {
    case FAILURE_TYPES.rolledBack:
      return fail('rolled_back', FAILURE_TYPES.rolledBack);
    case FAILURE_TYPES.rejected:
    case FAILURE_TYPES.approvalTimeout:
      return fail('rejected', type);
    default:
      return fail('failed', type ?? FAILURE_TYPES.pipelineFailed);
  }
}

/**
 * Bad workflow input -> a non-retryable failure naming each field. The run's outcome and
 * reason are published too, so a refused start is findable in the UI's list like any
 * other ending.
 */
export function invalidInput(err: unknown): ApplicationFailure {
  const failure =
    err instanceof InputValidationError
      ? ApplicationFailure.create({
          type: FAILURE_TYPES.invalidInput,
          message: err.message,
          nonRetryable: true,
          details: [err.issues],
        })
      : ApplicationFailure.create({
          type: FAILURE_TYPES.invalidInput,
          message: String(err),
          nonRetryable: true,
        });
  publishOutcome('failed', { text: failure.message, summary: FAILURE_TYPES.invalidInput });
  return failure;
}

/**
 * How every pipeline ends when something stops it: record the reason, mark the stage that
 * was running as failed, compensate newest first, publish the outcome, write the report
 * (best effort, even when cancelled), then rethrow as the failure clients see.
 */
export async function endInFailure(
  err: unknown,
  control: PipelineControl,
  saga: Saga,
  writeReport: () => Promise<void>,
): Promise<never> {
  const classified = classifyFailure(err, control.aborted, control.leaseLost);
  control.status.reason = classified.reason;
  control.stopLeaseHold();
  if (control.leaseLost) {
    // Another workflow (or an operator) owns the service now: leave its serving state alone.
    saga.forget('rollbackCanary');
    saga.forget('releaseServingTarget');
  }
  const running = control.status.stages.find((s) => s.state === 'running' || s.state === 'waiting');
  if (running) control.setStageState(running.name, 'failed', classified.reason);
  await saga.compensate((record) => control.recordCompensation(record));
  control.finish(classified.outcome, classified.reason);
  await CancellationScope.nonCancellable(writeReport).catch(() => undefined);
  throw classified.failure;
}
