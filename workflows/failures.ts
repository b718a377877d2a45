// Turning whatever ended a pipeline into an outcome, a reason people can read, and the
// failure the workflow ends with.

import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  TemporalFailure,
} from '@temporalio/workflow';
import type { Outcome } from '../src/domain/status.js';
import { InputValidationError } from '../src/domain/validation.js';
import type { PipelineControl } from './control.js';
import { FAILURE_TYPES } from './definitions.js';
import type { Saga } from './saga.js';

/** The innermost message: an activity failure's cause is what the activity said. */
export function rootMessage(err: unknown): string {
  let current: unknown = err;
  while (current instanceof TemporalFailure && current.cause) current = current.cause;
  if (current instanceof Error) return current.message;
  return String(current);
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

export function classifyFailure(err: unknown, abort: { by: string; reason: string } | undefined): Classified {
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
  if (isCancellation(err) && !(err instanceof ActivityFailure)) {
    // The workflow itself was cancelled (Temporal UI / API): end as Cancelled, after clean-up.
    return { outcome: 'aborted', reason: 'cancelled through Temporal', failure: err };
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
      return fail('failed', type ?? 'PipelineFailed');
  }
}

/** Bad workflow input -> a non-retryable failure naming each field. */
export function invalidInput(err: unknown): ApplicationFailure {
  if (err instanceof InputValidationError) {
    return ApplicationFailure.create({
      type: FAILURE_TYPES.invalidInput,
      message: err.message,
      nonRetryable: true,
      details: [err.issues],
    });
  }
  return ApplicationFailure.create({
    type: FAILURE_TYPES.invalidInput,
    message: String(err),
    nonRetryable: true,
  });
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
  const classified = classifyFailure(err, control.aborted);
  control.status.reason = classified.reason;
  const running = control.status.stages.find((s) => s.state === 'running' || s.state === 'waiting');
  if (running) control.setStageState(running.name, 'failed', classified.reason);
  await saga.compensate((record) => control.recordCompensation(record));
  control.finish(classified.outcome, classified.reason);
  await CancellationScope.nonCancellable(writeReport).catch(() => undefined);
  throw classified.failure;
}
