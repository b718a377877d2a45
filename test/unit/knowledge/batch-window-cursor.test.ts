import { describe, expect, it } from 'vitest';
import { type BatchResult, emptyCounters, type ListingCursor } from '../../../src/domain/knowledge.js';
import { runBatchWindow } from '../../../workflows/reindex-batches.js';

// The listing cursor through the batch window (workflows/reindex-batches.ts): each batch is
// given the furthest cursor known below its start (the last key of the finished batch that
// ended furthest), the cursor carried across continue-as-new is the one at the committed
// position, and a batch never lists more than (parallelism - 1) batches' worth of entries
// before its own slice, so a corpus is listed O(corpus x parallelism), not O(corpus^2).

const keyAt = (i: number) => `doc/${String(i).padStart(5, '0')}.md`;

async function indexAll(total: number, size: number, parallelism: number, maxBatches: number) {
  const given: Array<{ position: number; cursor?: ListingCursor }> = [];
  let seed = 11;
  const delay = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % 20;
  };
  const runBatch = async (position: number, cursor?: ListingCursor): Promise<BatchResult> => {
    given.push({ position, cursor });
    if (cursor) {
      expect(cursor.position).toBeLessThanOrEqual(position);
      expect(cursor.startAfter).toBe(keyAt(cursor.position - 1));
    }
    for (let t = delay(); t > 0; t--) await Promise.resolve();
    const end = Math.min(position + size, total);
    const n = Math.max(0, end - position);
    return {
      nextPosition: position + n,
      done: position + size >= total,
      counters: { ...emptyCounters(), documents: n },
      failures: [],
      chunksInBatch: n,
      ...(n > 0 ? { lastKey: keyAt(end - 1) } : {}),
    };
  };
  let position = 0;
  let cursor: ListingCursor | undefined;
  let runs = 0;
  for (;;) {
    runs++;
    const outcome = await runBatchWindow({
      start: position,
      startCursor: cursor,
      sourcesPerBatch: size,
      parallelism,
      maxBatches,
      listed: total,
      runBatch,
      onCommit: () => undefined,
    });
    position = outcome.position;
    if (outcome.done) break;
    // What the workflow carries: the cursor at the committed position.
    expect(outcome.cursor).toEqual({ position, startAfter: keyAt(position - 1) });
    cursor = outcome.cursor;
    expect(runs).toBeLessThan(1000);
  }
  return { given, position, runs };
}

describe('the listing cursor in the batch window', () => {
  it('sequential: every batch after the first starts exactly at its cursor, across continue-as-new', async () => {
    const { given, position, runs } = await indexAll(100, 7, 1, 3);
    expect(position).toBe(100);
    expect(runs).toBeGreaterThan(3);
    expect(given[0]?.cursor).toBeUndefined();
    for (const { position: at, cursor } of given.slice(1)) expect(cursor?.position).toBe(at);
  });

  it('parallel: a batch skips at most (parallelism - 1) batches of entries before its slice', async () => {
    for (const parallelism of [2, 4, 8]) {
      const size = 5;
      const { given, position } = await indexAll(203, size, parallelism, 9);
      expect(position).toBe(203);
      let skipped = 0;
      for (const { position: at, cursor } of given) {
        const skip = at - (cursor?.position ?? 0);
        expect(skip).toBeLessThanOrEqual((parallelism - 1) * size);
        skipped += skip;
      }
      // Listing work: the corpus once plus the skips, bounded by parallelism, not by corpus^2.
      expect(skipped).toBeLessThanOrEqual(given.length * (parallelism - 1) * size);
      expect(given.filter((g) => g.cursor !== undefined).length).toBeGreaterThan(given.length / 2);
    }
  });

  it('a carried cursor that is not at the start position is not used', async () => {
    const calls: Array<ListingCursor | undefined> = [];
    await runBatchWindow({
      start: 10,
      startCursor: { position: 5, startAfter: keyAt(4) },
      sourcesPerBatch: 10,
      parallelism: 1,
      maxBatches: 1,
      listed: 20,
      runBatch: async (at, cursor) => {
        calls.push(cursor);
        return {
          nextPosition: at + 10,
          done: true,
          counters: emptyCounters(),
          failures: [],
          chunksInBatch: 0,
          lastKey: keyAt(at + 9),
        };
      },
      onCommit: () => undefined,
    });
    expect(calls).toEqual([undefined]);
  });
});
