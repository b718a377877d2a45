import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { loadConfig, type QwenopsConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { compose } from '../../workers/compose.js';
import { MAX_HEARTBEAT_THROTTLE_INTERVAL } from '../../workers/heartbeat-throttle.js';
import { TASK_QUEUES } from '../../workflows/definitions.js';
import { type RunningMinio, startMinio } from './minio.js';
import {
  type FixtureModelSpec,
  type ModelScopeFixtureServer,
  startModelScopeFixtureServer,
} from './modelscope-fixture-server.js';
import { startSandboxCluster, type TestSandboxCluster } from './sandbox.js';
import { createDevServerEnv, workflowBundle } from './temporal.js';

// Everything a promotion touches, real and on loopback: the Temporal dev server, MinIO, a
// ModelScope-shaped hub serving a fixture model, and the sandbox cluster daemon (GPU Jobs
// as processes, serving simulators behind a traffic-splitting proxy). `env` is the worker
// environment (QWENOPS_*) that points at all of them.

export interface PipelineStack {
  temporal: TestWorkflowEnvironment;
  minio: RunningMinio;
  hub: ModelScopeFixtureServer;
  sandbox: TestSandboxCluster;
  stateDir: string;
  env: Record<string, string>;
  config: QwenopsConfig;
  stop(): Promise<void>;
}

export const MODEL = 'qwen/Qwen-7B-Chat';

export interface PipelineStackOptions {
  revisions?: string[];
  jobSeconds?: string;
  /** What the hub serves; default: the Qwen-7B-Chat fixture at `revisions`. */
  models?: FixtureModelSpec[];
  /** The sandbox cluster's engine (QWENOPS_ENGINE); default simulator. */
  engine?: 'simulator' | 'vllm';
  /** More env for the sandbox daemon. */
  sandboxEnv?: Record<string, string>;
}

export async function startPipelineStack(options: PipelineStackOptions = {}): Promise<PipelineStack> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-pipeline-'));
  const [temporal, minio] = await Promise.all([createDevServerEnv(), startMinio()]);
  const hub = await startModelScopeFixtureServer({
    dir: path.join(stateDir, 'hub'),
    models:
      options.models ??
      (options.revisions ?? ['master']).map((revision) => ({
        model: MODEL,
        revision,
        shards: 2,
        shardBytes: 64 * 1024,
      })),
  });
  const storeEnv = {
    QWENOPS_STORE: 'minio',
    QWENOPS_S3_ENDPOINT: minio.endpoint,
    QWENOPS_S3_BUCKET: minio.bucket,
  };
  const sandbox = await startSandboxCluster({
    storeEnv,
    secrets: { 'qwenops-s3': { AWS_ACCESS_KEY_ID: minio.accessKey, AWS_SECRET_ACCESS_KEY: minio.secretKey } },
    extraEnv: {
      QWENOPS_SIM_JOB_SECONDS: options.jobSeconds ?? '1',
      QWENOPS_ENGINE: options.engine ?? 'simulator',
      ...options.sandboxEnv,
    },
  });
  const env: Record<string, string> = {
    ...storeEnv,
    QWENOPS_S3_ACCESS_KEY: minio.accessKey,
    QWENOPS_S3_SECRET_KEY: minio.secretKey,
    QWENOPS_STATE_DIR: stateDir,
    QWENOPS_TEMPORAL_ADDRESS: temporal.address,
    QWENOPS_CLUSTER: 'sandbox',
    QWENOPS_SANDBOX_URL: sandbox.url,
    QWENOPS_SANDBOX_TOKEN_FILE: sandbox.tokenFile,
    QWENOPS_HUB: 'modelscope',
    QWENOPS_HUB_ENDPOINT: hub.endpoint,
    QWENOPS_METRICS_ADDRESS: '',
    QWENOPS_LOG_LEVEL: process.env.QWENOPS_TEST_LOG_LEVEL ?? 'warn',
  };
  const config = loadConfig({ env });
  return {
    temporal,
    minio,
    hub,
    sandbox,
    stateDir,
    env,
    config,
    async stop() {
      await sandbox.stop().catch(() => undefined);
      await hub.stop().catch(() => undefined);
      await minio.stop().catch(() => undefined);
      await temporal.teardown().catch(() => undefined);
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** The production worker composition, in this process, on the stack's Temporal server. */
export async function startInProcessWorkers(
  stack: PipelineStack,
  config: QwenopsConfig = stack.config,
): Promise<{ stop(): Promise<void> }> {
  const logger = createLogger('test-worker', config.log.level);
  const composition = await compose(config, logger);
  const bundle = await workflowBundle();
  const workers = await Promise.all(
    (['default', 'gpuJobs', 'cluster'] as const).map((queue) =>
      Worker.create({
        connection: stack.temporal.nativeConnection,
        taskQueue: TASK_QUEUES[queue],
        activities: composition.activitiesFor(queue),
        workflowBundle: queue === 'default' ? bundle : undefined,
        maxHeartbeatThrottleInterval: MAX_HEARTBEAT_THROTTLE_INTERVAL,
      }),
    ),
  );
  const running = workers.map((w) => w.run());
  return {
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
      await composition.close();
    },
  };
}
