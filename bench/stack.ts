import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { loadConfig, type QwenopsConfig } from '../src/config/config.js';
import { createLogger } from '../src/observability/logger.js';
import { modulePath, nodeEntrypoint } from '../src/runtime/entrypoints.js';
import { toolBinary } from '../src/runtime/tools.js';
import { compose } from '../workers/compose.js';
import { SEARCH_ATTRIBUTES, TASK_QUEUES } from '../workflows/definitions.js';

// What the promotion benchmarks run on: the real dev server, a sandbox cluster process, an
// fs store and local mirror in a temp dir, and the production worker composition on the
// three pipeline task queues, all in or beside this process.

export interface BenchStack {
  work: string;
  env: TestWorkflowEnvironment;
  config: QwenopsConfig;
  sandboxUrl: string;
  /** The sandbox daemon's state dir: Job records under jobs/<namespace>/<name>.json, logs beside. */
  sandboxStateDir: string;
  stop(): Promise<void>;
}

async function startSandbox(
  stateDir: string,
  storeDir: string,
  extraEnv: Record<string, string>,
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

/** `extraWorkers` run beside the pipeline workers on the same server (e.g. a round-trip probe). */
export async function startBenchStack(
  name: string,
  options: {
    sandboxEnv?: Record<string, string>;
    extraWorkers?: (env: TestWorkflowEnvironment) => Promise<Worker[]>;
  } = {},
): Promise<BenchStack> {
  const work = await mkdtemp(path.join(os.tmpdir(), `qwenops-bench-${name}-`));
  const storeDir = path.join(work, 'store');
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: toolBinary('temporal') },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      ui: false,
      extraArgs: ['--log-level', 'error'],
    },
  });
  const sandboxStateDir = path.join(work, 'sandbox');
  const sandbox = await startSandbox(sandboxStateDir, storeDir, options.sandboxEnv ?? {});
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
  const composition = await compose(config, createLogger('bench', 'warn'));
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
  workers.push(...((await options.extraWorkers?.(env)) ?? []));
  const running = workers.map((w) => w.run());
  return {
    work,
    env,
    config,
    sandboxUrl: sandbox.url,
    sandboxStateDir,
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
      await composition.close();
      sandbox.stop();
      await env.teardown();
      await rm(work, { recursive: true, force: true });
    },
  };
}
