import { Counter, Registry } from 'prom-client';

// The process's own Prometheus registry and the series the safety filter counts. Counters
// are registered once per process; tests read them back with metricsRegistry.getSingleMetric.

export const metricsRegistry = new Registry();

export const filterInterceptions = new Counter({
  name: 'qwenops_filter_interceptions_total',
  help: 'Texts the safety filter blocked, by stage (input: the question; output: the answer) and category.',
  labelNames: ['stage', 'category'] as const,
  registers: [metricsRegistry],
});

export const filterChecks = new Counter({
  name: 'qwenops_filter_checks_total',
  help: 'Texts the safety filter checked, by stage.',
  labelNames: ['stage'] as const,
  registers: [metricsRegistry],
});
