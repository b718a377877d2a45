import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { isClassifiedError, OperationCancelledError } from '../src/domain/failures.js';

// What every long activity does the same way: heartbeat while it works (so a dead worker
// is noticed within the heartbeat timeout and a cancellation reaches us), pass the
// cancellation on as an AbortSignal, and turn domain errors into Temporal failures whose
// retryability matches the error.

export interface ActivityHooks<Checkpoint = never> {
  signal: AbortSignal;
  onProgress: (message: string) => void;
  /** The last checkpoint an earlier attempt of this activity recorded, to resume from. */
  resumeFrom?: Checkpoint;
  /** Records how far the work got; a retry after a crash gets it back as `resumeFrom`. */
  checkpoint: (checkpoint: Checkpoint) => void;
}

/** What an activity heartbeats: the latest progress message and the latest checkpoint. */
interface HeartbeatDetails<Checkpoint> {
  progress: string;
  at: string;
  checkpoint?: Checkpoint;
}

/**
 * Runs `work` heartbeating every `intervalMs` (default 1 s; the SDK throttles what it
 * sends) with the latest progress message, which the Temporal UI shows under "pending
 * activities", and the latest checkpoint, which a retry resumes from.
 */
export async function heartbeating<T, Checkpoint = never>(
  work: (hooks: ActivityHooks<Checkpoint>) => Promise<T>,
  options: { intervalMs?: number } = {},
): Promise<T> {
  const ctx = Context.current();
  const previous = ctx.info.heartbeatDetails as Partial<HeartbeatDetails<Checkpoint>> | undefined;
  const details: HeartbeatDetails<Checkpoint> = { progress: 'started', at: '' };
  const beat = () => ctx.heartbeat({ ...details, at: new Date().toISOString() });
  beat();
  const timer = setInterval(beat, options.intervalMs ?? 1000);
  try {
    return await work({
      signal: ctx.cancellationSignal,
      resumeFrom: previous?.checkpoint,
      onProgress: (message) => {
        details.progress = message;
        beat();
      },
      checkpoint: (checkpoint) => {
        details.checkpoint = checkpoint;
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
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  // Work that noticed its cancellation itself (a load test stopping early) reports one.
  if (err instanceof OperationCancelledError) return new CancelledFailure(err.message);
  if (isClassifiedError(err)) {
    return ApplicationFailure.create({
      type: err.failureType,
      message: err.message,
      nonRetryable: !err.retryable,
      details: err.failureDetails !== undefined ? [err.failureDetails] : undefined,
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
