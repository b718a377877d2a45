import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll } from 'vitest';
import { MAX_HEARTBEAT_THROTTLE_INTERVAL } from '../../workers/heartbeat-throttle.js';
import { TASK_QUEUES } from '../../workflows/definitions.js';
import { type FakeActivities, forwardingActivities } from './fake-activities.js';
import { createTimeSkippingEnv, workflowBundle } from './temporal.js';

/** Workers on all three task queues for a test file, running until stop(). */
export async function startFakeWorkers(env: TestWorkflowEnvironment, current: () => FakeActivities) {
  const bundle = await workflowBundle();
  const { promotion, serving } = forwardingActivities(current);
  const common = {
    connection: env.nativeConnection,
    workflowBundle: bundle,
    maxHeartbeatThrottleInterval: MAX_HEARTBEAT_THROTTLE_INTERVAL,
  };
  const workers = await Promise.all([
    Worker.create({ ...common, taskQueue: TASK_QUEUES.default, activities: promotion }),
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.gpuJobs,
      activities: promotion,
      workflowBundle: undefined,
    }),
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.cluster,
      activities: serving,
      workflowBundle: undefined,
    }),
  ]);
  const running = workers.map((w) => w.run());
  return {
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
    },
  };
}

/**
 * One time-skipping server and one set of fake workers for a whole test file; `use(fake)`
 * makes `fake` answer every activity from then on.
 */
export function sharedFakeWorkerEnv(): {
  env: () => TestWorkflowEnvironment;
  use: (fake: FakeActivities) => FakeActivities;
} {
  let env: TestWorkflowEnvironment | undefined;
  let workers: { stop(): Promise<void> } | undefined;
  let current: FakeActivities | undefined;
  beforeAll(async () => {
    env = await createTimeSkippingEnv();
    workers = await startFakeWorkers(env, () => current as FakeActivities);
  });
  afterAll(async () => {
    await workers?.stop();
    await env?.teardown();
  });
  return {
    env: () => env as TestWorkflowEnvironment,
    use: (fake) => {
      current = fake;
      return fake;
    },
  };
}
