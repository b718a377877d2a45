import type { Reporter, TestModule } from 'vitest/node';

// Prints the k8s tier's headline after a run that included it:
//   k8s_integration_tests=<passed>/<total>
// (every test in test/integration/k8s, against the real kube-apiserver).
export default class K8sSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let total = 0;
    for (const module of testModules) {
      if (!module.moduleId.includes('/test/integration/k8s/')) continue;
      for (const test of module.children.allTests()) {
        total++;
        if (test.result().state === 'passed') passed++;
      }
    }
    if (total > 0) process.stdout.write(`k8s_integration_tests=${passed}/${total}\n`);
  }
}
