import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { freePort } from '../../support/ports.js';
import { startProcess } from '../../support/processes.js';
import { createDevServerEnv } from '../../support/temporal.js';

// A cluster worker process's one /metrics endpoint: the Temporal SDK's series and the
// pipeline metrics of src/observability/pipeline-metrics.ts together (what the alert rules
// in k8s/observability/alerts.yaml read).

let temporal: TestWorkflowEnvironment;
let stateDir: string;

beforeAll(async () => {
  temporal = await createDevServerEnv();
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-worker-metrics-'));
});

afterAll(async () => {
  await temporal?.teardown();
  await rm(stateDir, { recursive: true, force: true });
});

describe('worker /metrics', () => {
  it('serves the SDK metrics and the pipeline metrics on the configured address', async () => {
    const metricsPort = await freePort();
    const worker = startProcess('worker', nodeEntrypoint('workers/cluster'), {
      env: {
        QWENOPS_TEMPORAL_ADDRESS: temporal.address,
        QWENOPS_STATE_DIR: stateDir,
        QWENOPS_STORE_DIR: path.join(stateDir, 'store'),
        QWENOPS_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
        QWENOPS_LOG_LEVEL: 'info',
      },
    });
    try {
      const deadline = Date.now() + 120_000;
      while (!worker.output().includes('workers running')) {
        if (worker.child.exitCode !== null) throw new Error(`worker exited:\n${worker.output()}`);
        if (Date.now() > deadline) throw new Error(`worker not ready:\n${worker.output()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(response.status).toBe(200);
      const metrics = await response.text();
      // The SDK's own series (metricPrefix qwenops_) ...
      expect(metrics).toMatch(/^# TYPE qwenops_worker_task_slots_available /m);
      // ... and the process registry's, each family once.
      for (const name of [
        'qwenops_canary_traffic_percent',
        'qwenops_canary_step_deadline_timestamp_seconds',
        'qwenops_canary_analysis_verdicts_total',
        'qwenops_canary_judge_p_value',
        'qwenops_knowledge_reindex_last_success_timestamp_seconds',
        'qwenops_knowledge_reindex_rows',
      ]) {
        expect(metrics.match(new RegExp(`^# TYPE ${name} `, 'gm'))).toHaveLength(1);
      }
    } finally {
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
    }
  });
});
