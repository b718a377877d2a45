// The index phase's batch window: up to `parallelism` batch activities in flight, each over
// a slice of the source listing whose start is known before it runs (the listing is cut
// into fixed slices of `sourcesPerBatch`: batch k of a run covers
// [start + k*size, start + (k+1)*size)). Batches may finish in any order; their results are
// folded in listing order, like a consumer's committed offset: `position` only moves past
// a slice when every slice below it has finished, so counters, failures (the first N, in
// listing order) and the position a run hands to continue-as-new are exactly what the
// sequential loop produced. Before the run continues as new the window drains (starts no
// batch, waits for the running ones): nothing finished above the committed position has
// to be carried, and no batch still writes while the next run could redo its slice.
//
// Deterministic (workflow code): no I/O, no timers; ordering comes from the promises the
// SDK resolves in history order.

import type { BatchResult, ListingCursor } from '../src/domain/knowledge.js';

export interface BatchWindowOptions {
  /** The committed position this run starts from. */
  start: number;
  /** Sources per batch activity (`batch.sourcesPerActivity`). */
  sourcesPerBatch: number;
  /** Batch activities in flight at most (`batch.parallelism`). */
  parallelism: number;
  /** Batch activities this run may start before it continues as new (`batch.batchesPerRun`). */
  maxBatches: number;
  /**
   * Sources the plan listed: batches starting below it are started ahead. Past it a batch
   * is started only when every earlier one has finished and none reported the end (the
   * listing grew since it was counted), as the sequential loop did.
   */
  listed: number;
  /**
   * Starts the batch at `position`; `cursor`, when one is known, is the furthest listing
   * cursor at or below it (the last key of the finished batch that ended furthest), so the
   * batch lists from there instead of from the start.
   */
  runBatch: (position: number, cursor?: ListingCursor) => Promise<BatchResult>;
  /** The cursor at `start`, carried from the previous run (absent: list from the start). */
  startCursor?: ListingCursor;
  /** Asked before each start: true stops starting (e.g. continue-as-new suggested). */
  stopStarting?: () => boolean;
  /** Each batch's result, in listing order, with the committed position after it. */
  onCommit: (batch: BatchResult, committedPosition: number) => void;
  /** Called whenever the number of batches in flight changes. */
  onInFlight?: (inFlight: number) => void;
  /** Called once, at the first failed batch, before waiting for the others to settle. */
  onFailure?: (err: unknown) => void;
}

export interface BatchWindowOutcome {
  /** Committed position: every source below it was handled by a finished batch. */
  position: number;
  /** A batch reported the end of the listing (and every batch below it finished). */
  done: boolean;
  batchesStarted: number;
  maxInFlight: number;
  /** The furthest cursor known (at `position` once the window drained): carried to the next run. */
  cursor?: ListingCursor;
}

type Settled = { start: number; result: BatchResult } | { start: number; error: unknown };

export async function runBatchWindow(options: BatchWindowOptions): Promise<BatchWindowOutcome> {
  const size = options.sourcesPerBatch;
  const parallelism = Math.max(1, options.parallelism);
  const inFlight = new Map<number, Promise<Settled>>();
  const finished = new Map<number, BatchResult>();
  let next = options.start;
  let frontier = options.start;
  let position = options.start;
  let horizon = options.listed;
  let ended = false;
  let endPosition: number | undefined;
  let failure: { error: unknown } | undefined;
  let started = 0;
  let maxInFlight = 0;
  // Every finished batch ended at or below `next`, so the one that ended furthest gives the
  // nearest cursor for any batch started from now on: one cursor, whatever the parallelism.
  let cursor = options.startCursor?.position === options.start ? options.startCursor : undefined;

  const mayStart = () => {
    if (ended || failure || started >= options.maxBatches || inFlight.size >= parallelism) return false;
    // Always at least one batch per run: a run that starts none would continue as new forever.
    if (started > 0 && options.stopStarting?.()) return false;
    return next < horizon || inFlight.size === 0;
  };
  const commit = () => {
    for (let batch = finished.get(frontier); batch; batch = finished.get(frontier)) {
      finished.delete(frontier);
      frontier += size;
      if (endPosition === undefined) {
        position = batch.done ? batch.nextPosition : Math.max(position, batch.nextPosition);
        if (batch.done) endPosition = batch.nextPosition;
      }
      options.onCommit(batch, position);
    }
  };

  for (;;) {
    while (mayStart()) {
      const start = next;
      next += size;
      started++;
      inFlight.set(
        start,
        options.runBatch(start, cursor).then(
          (result): Settled => ({ start, result }),
          (error: unknown): Settled => ({ start, error }),
        ),
      );
    }
    maxInFlight = Math.max(maxInFlight, inFlight.size);
    options.onInFlight?.(inFlight.size);
    if (inFlight.size === 0) break;
    const settled = await Promise.race(inFlight.values());
    inFlight.delete(settled.start);
    if ('error' in settled) {
      if (!failure) {
        failure = { error: settled.error };
        options.onFailure?.(settled.error);
      }
      continue;
    }
    if (failure) continue;
    const { result } = settled;
    if (result.lastKey !== undefined && result.nextPosition >= (cursor?.position ?? 0))
      cursor = { position: result.nextPosition, startAfter: result.lastKey };
    if (result.done) ended = true;
    else horizon = Math.max(horizon, result.nextPosition + 1);
    finished.set(settled.start, result);
    commit();
  }
  if (failure) throw failure.error;
  return { position, done: ended, batchesStarted: started, maxInFlight, cursor };
}
