import type { TaskMeta } from 'vitest';

// Counts the replay tier reports (test/replay/summary-reporter.ts prints them): each test
// that replays histories records how many it replayed and how many failed, before it
// asserts, so the line is printed on a failing run too.

declare module 'vitest' {
  interface TaskMeta {
    replayedHistories?: number;
    replayFailures?: number;
    /** Replays that must fail (the negative control), and did. */
    expectedViolations?: number;
    /** Golden history files replayed (test/fixtures/histories). */
    goldenHistories?: number;
  }
}

export function recordReplays(
  meta: TaskMeta,
  counts: { replayed?: number; failures?: number; expectedViolations?: number; golden?: number },
): void {
  if (counts.golden !== undefined) meta.goldenHistories = counts.golden;
  meta.replayedHistories = (meta.replayedHistories ?? 0) + (counts.replayed ?? 0);
  meta.replayFailures = (meta.replayFailures ?? 0) + (counts.failures ?? 0);
  if (counts.expectedViolations !== undefined) {
    meta.expectedViolations = (meta.expectedViolations ?? 0) + counts.expectedViolations;
  }
}
