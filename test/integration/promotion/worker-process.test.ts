import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { freePort } from '../../support/ports.js';
import { startProcess } from '../../support/processes.js';
import { createDevServerEnv } from '../../support/temporal.js';

// A worker process as it runs in production: JSON logs, Prometheus metrics from the SDK
// runtime, graceful shutdown on SIGTERM.

let temporal: TestWorkflowEnvironment;
let stateDir: string;

beforeAll(async () => {
  temporal = await createDevServerEnv();
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-worker-'));
});

afterAll(async () => {
  await temporal?.teardown();
  await rm(stateDir, { recursive: true, force: true });
});

describe('worker process', () => {
  it('logs JSON, serves Prometheus metrics and drains on SIGTERM', async () => {
    const metricsPort = await freePort();
    const worker = startProcess('worker', nodeEntrypoint('workers/cluster'), {
      env: {
        QWENOPS_TEMPORAL_ADDRESS: temporal.address,
        QWENOPS_STATE_DIR: stateDir,
        QWENOPS_STORE_DIR: path.join(stateDir, 'store'),
        QWENOPS_METRICS_ADDRESS: `127.0.0.1:${metricsPort}`,
        QWENOPS_S3_SECRET_KEY: 'must-not-be-logged',
        QWENOPS_LOG_LEVEL: 'info',
      },
    });
    const deadline = Date.now() + 120_000;
    while (!worker.output().includes('workers running')) {
      if (worker.child.exitCode !== null) throw new Error(`worker exited:\n${worker.output()}`);
      if (Date.now() > deadline) throw new Error(`worker not ready:\n${worker.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^qwenops_\w+/m);

    const lines = worker
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(lines.length).toBeGreaterThan(0);
    const parsed = lines.map((l) => JSON.parse(l) as { level: string; msg: string; service: string });
    expect(parsed.some((l) => l.msg === 'workers running' && l.service === 'qwenops-worker')).toBe(true);
    expect(worker.output()).not.toContain('must-not-be-logged');

    worker.child.kill('SIGTERM');
    const code = await worker.exited;
    expect(code).toBe(0);
    expect(worker.output()).toContain('workers stopped');
  });
});
