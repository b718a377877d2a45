import { describe, expect, it } from 'vitest';
import {
  addCounters,
  appendFailures,
  type BatchResult,
  emptyCounters,
  type ReindexCounters,
  reindexRequestSchema,
  type SourceFailure,
} from '../../../src/domain/knowledge.js';
import { InputValidationError, parseInput } from '../../../src/domain/validation.js';
import { type BatchWindowOptions, runBatchWindow } from '../../../workflows/reindex-batches.js';

// The index phase's batch window (workflows/reindex-batches.ts) over scripted batches:
// bounded in-flight count, results folded in listing order whatever order they finish in,
// a committed position that never passes an unfinished batch, and draining before the
// run continues as new.

/** A listing of `total` sources; every third one fails; batch i finishes after `delay(i)` ticks. */
function scriptedSource(total: number, size: number, delay: (start: number) => number) {
  let inFlight = 0;
  let maxInFlight = 0;
  const calls: number[] = [];
  const finishOrder: number[] = [];
  const runBatch = async (position: number): Promise<BatchResult> => {
    calls.push(position);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    for (let t = 0; t < delay(position); t++) await Promise.resolve();
    inFlight--;
    finishOrder.push(position);
    const end = Math.min(position + size, total);
    const n = Math.max(0, end - position);
    const failures: SourceFailure[] = [];
    for (let i = position; i < end; i++) if (i % 3 === 0) failures.push({ source: `s${i}`, reason: 'bad' });
    return {
      nextPosition: position + n,
      done: position + size >= total,
      counters: { ...emptyCounters(), documents: n, chunksAdded: 2 * n, documentsFailed: failures.length },
      failures,
      chunksInBatch: 2 * n,
    };
  };
  return { runBatch, calls, finishOrder, max: () => maxInFlight };
}

/** Runs the window like the workflow does: continue-as-new (a fresh window) until done. */
async function indexAll(
  total: number,
  size: number,
  parallelism: number,
  maxBatches: number,
  delay: (start: number) => number,
) {
  const source = scriptedSource(total, size, delay);
  let counters: ReindexCounters = emptyCounters();
  let failures: SourceFailure[] = [];
  let expectedRows = 0;
  let position = 0;
  let runs = 0;
  const committed: number[] = [];
  for (;;) {
    runs++;
    const options: BatchWindowOptions = {
      start: position,
      sourcesPerBatch: size,
      parallelism,
      maxBatches,
      listed: total,
      runBatch: source.runBatch,
      onCommit: (batch, at) => {
        counters = addCounters(counters, batch.counters);
        failures = appendFailures(failures, batch.failures);
        expectedRows += batch.chunksInBatch;
        committed.push(at);
      },
    };
    const outcome = await runBatchWindow(options);
    expect(outcome.batchesStarted).toBeLessThanOrEqual(maxBatches);
    position = outcome.position;
    if (outcome.done) break;
    expect(runs).toBeLessThan(100);
  }
  return { counters, failures, expectedRows, position, runs, committed, source };
}

describe('runBatchWindow', () => {
  it('keeps at most `parallelism` batches in flight and folds out-of-order results in listing order', async () => {
    // Later batches finish first: batch at 0 takes the longest.
    const result = await indexAll(23, 2, 4, 1000, (start) => 100 - start);
    expect(result.source.max()).toBe(4);
    expect(result.source.finishOrder.slice(0, 3)).not.toEqual([0, 2, 4]);
    expect(result.runs).toBe(1);
    expect(result.position).toBe(23);
    expect(result.counters.documents).toBe(23);
    expect(result.counters.chunksAdded).toBe(46);
    expect(result.expectedRows).toBe(46);
    expect(result.counters.documentsFailed).toBe(8);
    // Failures in listing order, as the sequential loop reported them.
    expect(result.failures.map((f) => f.source)).toEqual([
      's0',
      's3',
      's6',
      's9',
      's12',
      's15',
      's18',
      's21',
    ]);
    // The committed position only ever grows, one batch at a time.
    expect(result.committed).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 23]);
    // Every slice exactly once.
    expect([...result.source.calls].sort((a, b) => a - b)).toEqual([
      0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
    ]);
  });

  it('stays exact across continue-as-new: each run drains, so the next starts at its committed position', async () => {
    for (const [parallelism, maxBatches] of [
      [1, 1],
      [2, 3],
      [3, 2],
      [5, 4],
      [8, 100],
    ] as const) {
      const result = await indexAll(31, 3, parallelism, maxBatches, (start) => (start * 7) % 5);
      expect(result.position).toBe(31);
      expect(result.counters.documents).toBe(31);
      expect(result.expectedRows).toBe(62);
      expect(result.counters.documentsFailed).toBe(11);
      expect(result.runs).toBe(Math.ceil(11 / maxBatches));
      expect(result.source.calls).toHaveLength(11);
      expect(new Set(result.source.calls).size).toBe(11);
      expect(result.source.max()).toBeLessThanOrEqual(parallelism);
    }
  });

  it('runs one batch over an empty listing, and keeps going one at a time past a listing that grew', async () => {
    const empty = await indexAll(0, 5, 4, 10, () => 0);
    expect(empty.source.calls).toEqual([0]);
    expect(empty.position).toBe(0);
    // The plan counted 4 sources, the listing now has 12.
    const source = scriptedSource(12, 2, () => 1);
    const outcome = await runBatchWindow({
      start: 0,
      sourcesPerBatch: 2,
      parallelism: 3,
      maxBatches: 100,
      listed: 4,
      runBatch: source.runBatch,
      onCommit: () => undefined,
    });
    expect(outcome).toMatchObject({ position: 12, done: true, batchesStarted: 6 });
  });

  it('stops starting when asked (continue-as-new suggested), but always starts one batch', async () => {
    const source = scriptedSource(20, 2, () => 1);
    const outcome = await runBatchWindow({
      start: 4,
      sourcesPerBatch: 2,
      parallelism: 4,
      maxBatches: 100,
      listed: 20,
      runBatch: source.runBatch,
      stopStarting: () => true,
      onCommit: () => undefined,
    });
    expect(outcome).toMatchObject({ position: 6, done: false, batchesStarted: 1 });
  });

  it('fails with the first failed batch after the others settled, committing nothing past a gap', async () => {
    const committed: number[] = [];
    let cancelled = 0;
    const settled: number[] = [];
    const calls: number[] = [];
    const error = await runBatchWindow({
      start: 0,
      sourcesPerBatch: 1,
      parallelism: 3,
      maxBatches: 100,
      listed: 10,
      runBatch: async (position) => {
        calls.push(position);
        // Batch 0 is the slowest, batch 1 fails, the ones after it finish at once.
        for (let t = 0; t < (position === 0 ? 60 : position === 1 ? 30 : 0); t++) await Promise.resolve();
        settled.push(position);
        if (position === 1) throw new Error('batch 1 failed');
        return {
          nextPosition: position + 1,
          done: false,
          counters: emptyCounters(),
          failures: [],
          chunksInBatch: 0,
        };
      },
      onCommit: (_, at) => committed.push(at),
      onFailure: () => cancelled++,
    }).catch((err: unknown) => err);
    expect((error as Error).message).toBe('batch 1 failed');
    expect(cancelled).toBe(1);
    expect(committed).toEqual([]);
    // Nothing started after the failure, and every started batch settled before it was thrown.
    expect(settled.sort()).toEqual(calls.sort());
    expect(calls).toContain(0);
  });
});

describe('batch.parallelism', () => {
  const parse = (parallelism: unknown) =>
    parseInput('knowledge re-index request', reindexRequestSchema, {
      source: { kind: 'directory', path: '/srv/kb' },
      batch: { parallelism },
    });

  it('defaults to 2 and accepts 1..64', () => {
    expect(
      parseInput('r', reindexRequestSchema, { source: { kind: 'directory', path: '/srv/kb' } }).batch
        .parallelism,
    ).toBe(2);
    expect(parse(1).batch.parallelism).toBe(1);
    expect(parse(64).batch.parallelism).toBe(64);
  });

  it.each([0, 65, 2.5, '4'])('refuses %j naming the field', (value) => {
    let error: unknown;
    try {
      parse(value);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InputValidationError);
    expect((error as Error).message).toContain('batch.parallelism');
  });
});
