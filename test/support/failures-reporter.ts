import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

// Keeps each failed test's name and first error line where scripts/run-tests.sh can print
// them again after the last tier: CI shows only the tail of a long run, and a failure in
// the first tier is otherwise thousands of lines above it. The file is named by
// QWENOPS_TEST_FAILURES_FILE (set by run-tests.sh); without it nothing is written.
export default class FailuresReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandled: ReadonlyArray<{ message?: string }>): void {
    const file = process.env.QWENOPS_TEST_FAILURES_FILE;
    if (!file) return;
    const lines: string[] = [];
    for (const module of testModules) {
      const where = path.relative(process.cwd(), module.moduleId);
      const moduleErrors = module.errors();
      if (moduleErrors.length > 0) lines.push(`${where}: ${firstLine(moduleErrors[0]?.message)}`);
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state !== 'failed') continue;
        lines.push(`${where} > ${test.fullName}: ${firstLine(result.errors?.[0]?.message)}`);
      }
    }
    for (const error of unhandled) lines.push(`unhandled error: ${firstLine(error.message)}`);
    if (lines.length === 0) return;
    mkdirSync(path.dirname(file), { recursive: true });
    appendFileSync(file, `${lines.join('\n')}\n`);
  }
}

function firstLine(message: string | undefined): string {
  return (message ?? 'no message').split('\n')[0]?.slice(0, 400) ?? '';
}
