import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { isClassifiedError } from '../src/domain/failures.js';
import { InputValidationError } from '../src/domain/validation.js';

// What every long activity does the same way: heartbeat while it works (so a dead worker
// is noticed within the heartbeat timeout and a cancellation reaches us), pass the
// cancellation on as an AbortSignal, and turn domain errors into Temporal failures whose
// retryability matches the error.

export interface ActivityHooks {
  signal: AbortSignal;
  onProgress: (message: string) => void;
}

/**
 * Runs `work` heartbeating every second with the latest progress message as details (the
 * SDK throttles what it sends). The message is what the Temporal UI shows under
 * "pending activities".
 */
export async function heartbeating<T>(work: (hooks: ActivityHooks) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  let last = 'started';
  const beat = () => ctx.heartbeat({ progress: last, at: new Date().toISOString() });
  beat();
  const timer = setInterval(beat, 1000);
  try {
    return await work({
      signal: ctx.cancellationSignal,
      onProgress: (message) => {
        last = message;
        beat();
      },
    });
  } catch (err) {
    // Work that stopped because the activity was cancelled reports a cancellation, whatever
    // error the interrupted wait raised, so the workflow sees Cancelled rather than a failure.
    const reason = ctx.cancellationSignal.aborted ? ctx.cancellationSignal.reason : undefined;
    if (reason instanceof CancelledFailure) throw reason;
    throw toTemporalFailure(err);
  } finally {
    clearInterval(timer);
  }
}

/**
 * The one map from errors to Temporal failures: an error that knows its failure type
 * (src/domain/failures.ts) becomes an ApplicationFailure of that type, non-retryable when a
 * retry cannot help, keeping its own cause so the reason stays whole. Anything else is an
 * unexpected error, left to the retry policy.
 */
export function toTemporalFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (isClassifiedError(err)) {
    return ApplicationFailure.create({
      type: err.failureType,
      message: err.message,
      nonRetryable: !err.retryable,
      details: err instanceof InputValidationError ? [err.issues] : undefined,
      cause: err.cause instanceof Error ? err.cause : undefined,
    });
  }
  return err;
}

/** Wraps a short activity: error mapping only. */
export async function mapped<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw toTemporalFailure(err);
  }
}
