import path from 'node:path';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/config.js';
import { startTracing, type Tracing } from '../../src/observability/tracing.js';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { tracingWorkerOptions } from '../../src/temporal/tracing.js';
import { type GoldenHistory, loadGoldenHistories, replayAll } from '../support/golden-histories.js';
import { recordReplays } from './replay-counts.js';

// Tracing must not change what a workflow does: with the OpenTelemetry workflow interceptors
// in the bundle (what workers/run.ts adds when OTEL_* is set) every golden history, recorded
// without them, still replays; the interceptors only add headers and spans, no command.

Runtime.install({ logger: new DefaultLogger('WARN') });

const workflowsPath = path.join(repoRoot, 'workflows', 'index.ts');
const exporter = new InMemorySpanExporter();
let golden: GoldenHistory[];
let tracing: Tracing;

beforeAll(async () => {
  golden = await loadGoldenHistories();
  tracing = startTracing({
    serviceName: 'qwenops-replay',
    settings: configSchema.parse({}).tracing,
    exporter,
  }) as Tracing;
});

afterAll(async () => {
  await tracing?.shutdown();
});

describe('golden histories with tracing on', () => {
  it('replay with the OpenTelemetry workflow interceptors and span sink', async ({ task }) => {
    const traced = tracingWorkerOptions(tracing);
    expect(traced?.interceptors.workflowModules).toHaveLength(1);
    const results = await replayAll(
      {
        workflowsPath,
        interceptors: { workflowModules: traced?.interceptors.workflowModules },
        sinks: traced?.sinks,
      },
      golden.map((g) => ({ workflowId: g.entry.file, history: g.json })),
    );
    const failures = results
      .filter((r) => r.error)
      .map((r) => `${r.workflowId}: ${r.error?.name}: ${r.error?.message}`);
    recordReplays(task.meta, { replayed: results.length, failures: failures.length });
    expect(results).toHaveLength(golden.length);
    expect(failures).toEqual([]);
    // The sink is not called during replay: no workflow span is exported twice.
    expect(exporter.getFinishedSpans().filter((s) => s.name.startsWith('RunWorkflow:'))).toEqual([]);
  });
});
