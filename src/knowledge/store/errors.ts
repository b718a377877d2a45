// The knowledge store's failure vocabulary, whatever the adapter: each error carries the
// failure type it maps to (src/domain/failures.ts) and whether a retry can help.

export class StoreError extends Error {
  override readonly name: string = 'StoreError';
  readonly failureType: string = 'StoreUnavailable';
  readonly retryable: boolean = true;
}

/** Another run holds the base: refused before anything is written. */
export class ConcurrentReindexError extends StoreError {
  override readonly name = 'ConcurrentReindexError';
  override readonly failureType = 'ConcurrentReindex';
  override readonly retryable = false;
}

/** This run's lease was taken over (it expired): stop writing. */
export class LeaseLostError extends StoreError {
  override readonly name = 'LeaseLostError';
  override readonly failureType = 'ConcurrentReindex';
  override readonly retryable = false;
}

export class UnsupportedServerError extends StoreError {
  override readonly name = 'UnsupportedServerError';
  override readonly failureType = 'Unsupported';
  override readonly retryable = false;
}
