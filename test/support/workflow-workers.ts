import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { TASK_QUEUES } from '../../workflows/definitions.js';
import { type FakeActivities, forwardingActivities } from './fake-activities.js';
import { workflowBundle } from './temporal.js';

/** Workers on all three task queues for a test file, running until stop(). */
export async function startFakeWorkers(env: TestWorkflowEnvironment, current: () => FakeActivities) {
  const bundle = await workflowBundle();
  const { promotion, serving } = forwardingActivities(current);
  const common = { connection: env.nativeConnection, workflowBundle: bundle };
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
