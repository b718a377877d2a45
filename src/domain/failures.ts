// One failure taxonomy. Every failure a pipeline can end with, or an activity can raise on
// purpose, has a type here and says whether a retry can help. Errors raised by services
// carry their type and retryability (ClassifiedError); activities turn them into Temporal
// failures in one place (activities/support.ts), and the workflows' non-retryable lists are
// derived from this catalog rather than written by hand.

export interface FailureKind {
  /** A later attempt may succeed (an outage, an overloaded server). */
  retryable: boolean;
  /** What it means, for people reading a failure. */
  what: string;
}

export const FAILURE_CATALOG = {
  InvalidInput: { retryable: false, what: 'input broke a rule; the message names each field' },
  QualityGateFailed: { retryable: false, what: 'the candidate failed a quality gate' },
  GpuJobFailed: { retryable: false, what: 'a GPU Job failed on its own (its logs are in the message)' },
  ServingLeaseLost: {
    retryable: false,
    what: 'the rollout lease was taken over (expired) or broken by an operator',
  },
  ServiceBusy: { retryable: false, what: 'another workflow holds the rollout lease of the service' },
  ConcurrentReindex: { retryable: false, what: 'another re-index holds the knowledge base' },
  Unsupported: { retryable: false, what: 'the server lacks a required feature (e.g. pgvector)' },
  EmbeddingRejected: { retryable: false, what: 'the embedding server refused the request or model' },
  EmbeddingUnavailable: { retryable: true, what: 'the embedding server is overloaded or unreachable' },
  StoreUnavailable: { retryable: true, what: 'the knowledge database failed a statement' },
  LoadTargetUnreachable: { retryable: true, what: 'the load-test target did not answer' },
  ServiceUnreachable: { retryable: true, what: 'the service has no address to measure yet' },
  // Pipeline endings: decided by the workflow, never retried.
  RolledBack: {
    retryable: false,
    what: 'the canary was rolled back (analysis, load test, pause, rejection)',
  },
  Rejected: { retryable: false, what: 'a person rejected a gate' },
  ApprovalTimedOut: { retryable: false, what: 'nobody answered a gate before its deadline' },
  Aborted: { retryable: false, what: 'a person aborted the pipeline' },
  LoadTestSloMissed: { retryable: false, what: 'a load test missed its SLOs' },
  IndexVerificationFailed: {
    retryable: false,
    what: 'a rebuilt index failed its checks and was not swapped in',
  },
  PipelineFailed: { retryable: false, what: 'any other ending, with the cause in the message' },
} as const satisfies Record<string, FailureKind>;

export type FailureType = keyof typeof FAILURE_CATALOG;

/**
 * Adapter errors (ClusterError, StorageError, HubError) become "<Name>.<code>" types whose
 * retryability is decided per error (a 404 is final, a 503 is not); they are not listed.
 */
export const ADAPTER_FAILURE_FAMILIES = ['ClusterError', 'StorageError', 'HubError'] as const;

/** Failure types no retry policy may retry. */
export const NON_RETRYABLE_FAILURE_TYPES: readonly FailureType[] = (
  Object.entries(FAILURE_CATALOG) as Array<[FailureType, FailureKind]>
)
  .filter(([, kind]) => !kind.retryable)
  .map(([type]) => type);

/** An error that knows the failure it becomes and whether retrying can help. */
export interface ClassifiedError extends Error {
  readonly failureType: string;
  readonly retryable: boolean;
  /** Structured facts for the failure's details (bad fields, the lease's new holder...). */
  readonly failureDetails?: unknown;
}

/** A failure of a catalogued type, retryable exactly when the catalog says so. */
export class CatalogedError extends Error implements ClassifiedError {
  override readonly name = 'CatalogedError';
  readonly retryable: boolean;
  constructor(
    readonly failureType: FailureType,
    message: string,
    options?: { cause?: unknown; details?: unknown },
  ) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.retryable = FAILURE_CATALOG[failureType].retryable;
    this.failureDetails = options?.details;
  }
  readonly failureDetails?: unknown;
}

/**
 * Work that stopped because it was asked to (its AbortSignal fired): a cancellation, not a
 * failure, whatever error the interrupted wait raised.
 */
export class OperationCancelledError extends Error {
  override readonly name: string = 'OperationCancelledError';
}

export function isClassifiedError(err: unknown): err is ClassifiedError {
  return (
    err instanceof Error &&
    typeof (err as Partial<ClassifiedError>).failureType === 'string' &&
    typeof (err as Partial<ClassifiedError>).retryable === 'boolean'
  );
}
