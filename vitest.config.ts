import { defineConfig } from 'vitest/config';

// One project per tier so `make test` can run and time them separately. Servers are real
// (see DESIGN.md); each test file starts the ones it needs, so files run in parallel up to
// the core count, except where a tier says otherwise.
export default defineConfig({
  test: {
    // The k8s tier prints k8s_integration_tests=<passed>/<total> when it ran; the realmodel
    // tier writes its counts for scripts/run-realmodel-tests.sh; the replay tier prints
    // replayed_histories=<N> and replay_failures=<F>; failed tests are kept for the summary
    // line at the end of scripts/run-tests.sh.
    reporters: [
      'default',
      './test/integration/k8s/summary-reporter.ts',
      './test/realmodel/counts-reporter.ts',
      './test/replay/summary-reporter.ts',
      './test/support/failures-reporter.ts',
    ],
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'workflows',
          sequence: { groupOrder: 1 },
          include: ['test/workflows/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // Golden histories (test/fixtures/histories) replayed against the current workflow
        // code, the negative control, and the live runs on the dev server.
        test: {
          name: 'replay',
          sequence: { groupOrder: 1 },
          include: ['test/replay/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'integration',
          sequence: { groupOrder: 2 },
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: 'e2e',
          sequence: { groupOrder: 3 },
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 300_000,
          maxWorkers: 1,
        },
      },
      {
        // Real models on the CPU (tiny Qwen2, vLLM, llm-compressor): one file at a time, the
        // two cores are theirs.
        test: {
          name: 'realmodel',
          sequence: { groupOrder: 4 },
          include: ['test/realmodel/**/*.test.ts'],
          testTimeout: 900_000,
          hookTimeout: 300_000,
          maxWorkers: 1,
        },
      },
    ],
  },
});
