import { writeFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

// Writes the realmodel tier's vitest counts {passed, total} to $QWENOPS_REALMODEL_COUNTS when
// set, so scripts/run-realmodel-tests.sh can print one realmodel_tests=P/T for the tier's
// vitest and pytest parts together.
export default class RealModelCountsReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const file = process.env.QWENOPS_REALMODEL_COUNTS;
    if (!file) return;
    let passed = 0;
    let total = 0;
    for (const module of testModules) {
      if (!module.moduleId.includes('/test/realmodel/')) continue;
      for (const test of module.children.allTests()) {
        total++;
        if (test.result().state === 'passed') passed++;
      }
    }
    writeFileSync(file, JSON.stringify({ passed, total }));
  }
}
