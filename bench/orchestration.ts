import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { startPromotion } from '../src/cli/pipelines.js';
import { loadConfig } from '../src/config/config.js';
import { parsePromotionSpec } from '../src/domain/promotion-spec.js';
import type { PipelineStatus } from '../src/domain/status.js';
import { writeFixtureModel } from '../src/hub/fixture-model.js';
import { createLogger } from '../src/observability/logger.js';
import { modulePath, nodeEntrypoint } from '../src/runtime/entrypoints.js';
import { toolBinary } from '../src/runtime/tools.js';
import { compose } from '../workers/compose.js';
import { SEARCH_ATTRIBUTES, statusQuery, TASK_QUEUES } from '../workflows/definitions.js';

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

export async function startSandbox(
  stateDir: string,
  storeDir: string,
  extraEnv: Record<string, string> = {},
): Promise<{ url: string; stop: () => void }> {
  const [cmd, ...args] = nodeEntrypoint('src/cluster/sandbox/main');
  const child = spawn(cmd as string, [...args, '--port', '0', '--state-dir', stateDir], {
    env: {
      ...process.env,
      QWENOPS_STORE: 'fs',
      QWENOPS_STORE_DIR: storeDir,
      QWENOPS_SIM_JOB_SECONDS: '0.5',
      QWENOPS_LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => l.includes('"url"') && resolve(l));
    child.once('exit', (code) => reject(new Error(`sandbox exited ${code}`)));
  });
  return {
    url: (JSON.parse(line) as { url: string }).url,
    stop: () => process.kill(-(child.pid as number), 'SIGTERM'),
  };
}

export async function runOrchestrationBench(): Promise<Record<string, number>> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'qwenops-bench-orch-'));
  const storeDir = path.join(work, 'store');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: toolBinary('temporal') },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      ui: false,
      extraArgs: ['--log-level', 'error'],
    },
  });
  const sandbox = await startSandbox(path.join(work, 'sandbox'), storeDir);
  const config = loadConfig({
    env: {
      QWENOPS_STATE_DIR: work,
      QWENOPS_STORE: 'fs',
      QWENOPS_STORE_DIR: storeDir,
      QWENOPS_HUB: 'local',
      QWENOPS_HUB_MIRROR_DIR: path.join(work, 'mirror'),
      QWENOPS_CLUSTER: 'sandbox',
      QWENOPS_SANDBOX_URL: sandbox.url,
      QWENOPS_METRICS_ADDRESS: '',
    },
  });
  await writeFixtureModel(config.hub.mirrorDir, 'qwen/Qwen-7B-Chat', 'master');
  const logger = createLogger('bench', 'warn');
  const composition = await compose(config, logger);
  const workers = await Promise.all(
    (['default', 'gpuJobs', 'cluster'] as const).map((queue) =>
      Worker.create({
        connection: env.nativeConnection,
        taskQueue: TASK_QUEUES[queue],
        activities: composition.activitiesFor(queue),
        workflowsPath: queue === 'default' ? modulePath('workflows/index') : undefined,
      }),
    ),
  );
  const roundtripBundle = await bundleWorkflowCode({
    workflowsPath: modulePath('bench/roundtrip-workflow'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never,
  });
  const roundtripWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: 'bench-roundtrip',
    workflowBundle: roundtripBundle,
    activities: { noop: async () => undefined },
  });
  const running = [...workers, roundtripWorker].map((w) => w.run());
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
    for (const w of [...workers, roundtripWorker]) w.shutdown();
    await Promise.all(running);
    await composition.close();
    sandbox.stop();
    await env.teardown();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await runOrchestrationBench();
  for (const [name, value] of Object.entries(figures)) console.log(`${name}=${value}`);
}
