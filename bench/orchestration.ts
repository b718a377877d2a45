import { pathToFileURL } from 'node:url';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { startPromotion } from '../src/cli/pipelines.js';
import { parsePromotionSpec } from '../src/domain/promotion-spec.js';
import type { PipelineStatus } from '../src/domain/status.js';
import { writeFixtureModel } from '../src/hub/fixture-model.js';
import { modulePath } from '../src/runtime/entrypoints.js';
import { statusQuery } from '../workflows/definitions.js';
import { startBenchStack } from './stack.js';

// orchestration_overhead_ratio: promoteModel in the sandbox where every GPU Job is a fixed
// 500 ms process, on the real dev server with the production activities. The ratio is the
// pipeline's wall time (client start -> result) over the sum of its stages' wall times, so
// it prices what Temporal and our orchestration add between stages.
// activity_roundtrip_ms_p50: a no-op activity's schedule -> completion -> next workflow task
// round trip, in workflow time, on the same server.

const RUNS = 3;

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function stageWallMs(status: PipelineStatus): number {
  return status.stages
    .filter((s) => s.startedAt && s.finishedAt)
    .reduce((sum, s) => sum + (Date.parse(s.finishedAt as string) - Date.parse(s.startedAt as string)), 0);
}

export async function runOrchestrationBench(): Promise<Record<string, number>> {
  const stack = await startBenchStack('orch', {
    extraWorkers: async (env) => {
      const roundtripBundle = await bundleWorkflowCode({
        workflowsPath: modulePath('bench/roundtrip-workflow'),
        logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never,
      });
      return [
        await Worker.create({
          connection: env.nativeConnection,
          taskQueue: 'bench-roundtrip',
          workflowBundle: roundtripBundle,
          activities: { noop: async () => undefined },
        }),
      ];
    },
  });
  const { env } = stack;
  await writeFixtureModel(stack.config.hub.mirrorDir, 'qwen/Qwen-7B-Chat', 'master');
  try {
    const ratios: number[] = [];
    const walls: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const spec = parsePromotionSpec({
        model: 'qwen/Qwen-7B-Chat',
        hub: { provider: 'local', revision: 'master' },
        approvals: { beforeCanary: false, beforePromote: false },
        canary: {
          steps: [100],
          analysisWindowSeconds: 1,
          minSamples: 4,
          probe: { requestsPerSecond: 8, maxTokens: 4, concurrency: 4 },
          slo: { p99LatencyMs: 5000, maxLatencyRatioVsStable: 10 },
        },
        loadTest: { enabled: false },
        execution: { heartbeatTimeoutSeconds: 10, gpuJobTimeoutSeconds: 60 },
      });
      const t0 = performance.now();
      const handle = await startPromotion(env.client, spec, `bench-orchestration-${run}`);
      await handle.result();
      const wall = performance.now() - t0;
      const status = await handle.query(statusQuery);
      walls.push(wall);
      ratios.push(wall / stageWallMs(status));
    }
    const samples = await env.client.workflow.execute('activityRoundtrip', {
      args: [200],
      taskQueue: 'bench-roundtrip',
      workflowId: 'bench-activity-roundtrip',
    });
    const measured = (samples as number[]).slice(20); // the first calls warm caches and connections
    return {
      orchestration_overhead_ratio: Math.round(percentile(ratios, 0.5) * 1000) / 1000,
      promotion_wall_ms_p50: Math.round(percentile(walls, 0.5)),
      activity_roundtrip_ms_p50: percentile(measured, 0.5),
      activity_roundtrip_ms_p99: percentile(measured, 0.99),
    };
  } finally {
    await stack.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await runOrchestrationBench();
  for (const [name, value] of Object.entries(figures)) console.log(`${name}=${value}`);
}
