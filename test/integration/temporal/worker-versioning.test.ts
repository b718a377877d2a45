import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workerDeploymentOptions } from '../../../workers/versioning.js';
import { approveUpdate, TASK_QUEUES } from '../../../workflows/definitions.js';
import { loadTest, promoteModel } from '../../../workflows/index.js';
import { FakeActivities, forwardingActivities } from '../../support/fake-activities.js';
import { fakeLoadTestActivities } from '../../support/history-scenarios.js';
import { waitForStatus } from '../../support/pipeline-status.js';
import { createDevServerEnv, workflowBundle } from '../../support/temporal.js';

// Worker Versioning on the dev server `make setup` installs (Temporal CLI 1.9.1, server
// 1.32): two versions of the workers of one deployment, as a rollout has them for a while.
// A promotion started on version 1 stays there (PINNED) after version 2 becomes current;
// a new promotion runs on version 2; a load test declares AUTO_UPGRADE.

const DEPLOYMENT = 'qwenops-versioning-test';
const V1 = '0.1.0+v1';
const V2 = '0.1.0+v2';

const { VERSIONING_BEHAVIOR_PINNED: PINNED, VERSIONING_BEHAVIOR_AUTO_UPGRADE: AUTO_UPGRADE } =
  temporal.api.enums.v1.VersioningBehavior;

let env: TestWorkflowEnvironment;
const running: Array<{ stop(): Promise<void> }> = [];

/** The workers of one version: every task queue, answering from `fake`. */
async function startVersion(buildId: string, fake: FakeActivities) {
  const { promotion, serving } = forwardingActivities(() => fake);
  const common = {
    connection: env.nativeConnection,
    workerDeploymentOptions: workerDeploymentOptions({ deploymentName: DEPLOYMENT, buildId }),
  };
  const workers = await Promise.all([
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.default,
      workflowBundle: await workflowBundle(),
      activities: promotion,
    }),
    Worker.create({ ...common, taskQueue: TASK_QUEUES.gpuJobs, activities: promotion }),
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.cluster,
      activities: { ...serving, ...fakeLoadTestActivities() },
    }),
  ]);
  const runs = workers.map((w) => w.run());
  const handle = {
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.all(runs);
    },
  };
  running.push(handle);
  return handle;
}

/** What `temporal worker deployment set-current-version` does; retried until the version's pollers are known. */
async function setCurrentVersion(buildId: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await env.client.workflowService.setWorkerDeploymentCurrentVersion({
        namespace: 'default',
        deploymentName: DEPLOYMENT,
        buildId,
        identity: 'worker-versioning-test',
      });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Workflow ids running on a version: the list query of README "Rolling out a new worker version". */
async function runningOn(buildId: string): Promise<string[]> {
  const query = `TemporalWorkerDeploymentVersion = '${DEPLOYMENT}:${buildId}' AND ExecutionStatus = 'Running'`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ids: string[] = [];
    for await (const w of env.client.workflow.list({ query })) ids.push(w.workflowId);
    if (ids.length > 0 || Date.now() > deadline) return ids.sort();
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function versioningOf(handle: WorkflowHandle) {
  const info = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
  return { buildId: info?.deploymentVersion?.buildId, behavior: info?.behavior };
}

beforeAll(async () => {
  env = await createDevServerEnv();
}, 120_000);

afterAll(async () => {
  for (const r of running) await r.stop();
  await env?.teardown();
});

describe('Worker Versioning', () => {
  it('a promotion started on version 1 stays on it after version 2 becomes current; a new one runs on version 2', async () => {
    const v1Fake = new FakeActivities();
    const v2Fake = new FakeActivities();
    const spec = { model: 'qwen/Qwen-7B-Chat', approvals: { beforeCanary: true, beforePromote: false } };

    await startVersion(V1, v1Fake);
    await setCurrentVersion(V1);
    const first = await env.client.workflow.start(promoteModel, {
      args: [spec],
      taskQueue: TASK_QUEUES.default,
      workflowId: 'versioning-first',
    });
    await waitForStatus(first, (s) => s.pendingDecision?.gate === 'before-canary', 'the before-canary gate');
    expect(await versioningOf(first)).toEqual({ buildId: V1, behavior: PINNED });

    // Version 2 is deployed and made current while the first promotion waits for approval.
    await startVersion(V2, v2Fake);
    await setCurrentVersion(V2);
    // What still drains on version 1 (README: "see what still drains on the old one").
    expect(await runningOn(V1)).toEqual(['versioning-first']);

    await first.executeUpdate(approveUpdate, { args: [{ gate: 'before-canary', by: 'tester' }] });
    expect((await first.result()).outcome).toBe('promoted');
    expect(await versioningOf(first)).toEqual({ buildId: V1, behavior: PINNED });
    // Every activity after the approval ran on version 1's workers.
    expect(v1Fake.calls).toContain('promoteCanary');
    expect(v2Fake.calls).toEqual([]);

    const second = await env.client.workflow.start(promoteModel, {
      args: [{ ...spec, approvals: { beforeCanary: false, beforePromote: false } }],
      taskQueue: TASK_QUEUES.default,
      workflowId: 'versioning-second',
    });
    expect((await second.result()).outcome).toBe('promoted');
    expect(await versioningOf(second)).toEqual({ buildId: V2, behavior: PINNED });
    expect(v2Fake.calls).toContain('promoteCanary');

    // Load tests (and re-indexes) follow the current version instead.
    const measured = await env.client.workflow.start(loadTest, {
      args: [{ request: { url: 'http://127.0.0.1:8000', mode: 'closed', concurrency: 1, maxRequests: 5 } }],
      taskQueue: TASK_QUEUES.default,
      workflowId: 'versioning-load-test',
    });
    expect((await measured.result()).passed).toBe(true);
    expect(await versioningOf(measured)).toEqual({ buildId: V2, behavior: AUTO_UPGRADE });
  });
});
