import type { Reporter, TestModule } from 'vitest/node';
import './replay-counts.js';

// Prints the replay tier's headline after a run that included it:
//   golden_histories=<G> replayed_histories=<N> replay_failures=<F> determinism_violations_expected=<V>
// G is the number of golden history files, N counts every history replay that must pass
// (golden files as JSON and as history objects, the live runs, the changed-default code),
// F those that did not (a failed test whose replays never ran counts as one), V the
// negative control's replays that raised DeterminismViolationError as they must.
export default class ReplaySummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let ran = false;
    let replayed = 0;
    let failures = 0;
    let violations = 0;
    let golden = 0;
    for (const module of testModules) {
      if (!module.moduleId.includes('/test/replay/')) continue;
      ran = true;
      for (const test of module.children.allTests()) {
        const meta = test.meta();
        replayed += meta.replayedHistories ?? 0;
        violations += meta.expectedViolations ?? 0;
        golden += meta.goldenHistories ?? 0;
        const failed = meta.replayFailures ?? 0;
        failures += failed;
        if (failed === 0 && test.result().state === 'failed') failures++;
      }
    }
    if (!ran) return;
    process.stdout.write(`golden_histories=${golden}\n`);
    process.stdout.write(`replayed_histories=${replayed}\n`);
    process.stdout.write(`replay_failures=${failures}\n`);
    process.stdout.write(`determinism_violations_expected=${violations}\n`);
  }
}
