import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure, TimeoutFailure, TimeoutType } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusQuery, TASK_QUEUES } from '../../../workflows/definitions.js';
import { promoteModel } from '../../../workflows/index.js';
import { FakeActivities, forwardingActivities } from '../../support/fake-activities.js';
import { createDevServerEnv, workflowBundle } from '../../support/temporal.js';

// A task queue nobody polls (a worker Deployment missing or scaled to zero) must fail the
// stage visibly instead of waiting forever: every activity has a schedule-to-start timeout.
// Here only the default queue has a worker; the download runs on the unserved gpu-jobs queue.

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
const fake = new FakeActivities();

beforeAll(async () => {
  // The dev server: the time-skipping server does not skip time while an activity task waits.
  env = await createDevServerEnv();
  worker = await Worker.create({
    connection: env.nativeConnection,
    workflowBundle: await workflowBundle(),
    taskQueue: TASK_QUEUES.default,
    activities: forwardingActivities(() => fake).promotion,
  });
  running = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await running;
  await env?.teardown();
});

describe('an unserved task queue', () => {
  it('fails the stage with a schedule-to-start timeout naming the activity', async () => {
    const handle = await env.client.workflow.start(promoteModel, {
      args: [{ model: 'qwen/Qwen-7B-Chat', execution: { queueWaitTimeoutSeconds: 3 } }],
      taskQueue: TASK_QUEUES.default,
      workflowId: `unserved-${randomUUID()}`,
    });
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause as ApplicationFailure;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    const activity = failure.cause as ActivityFailure;
    expect(activity).toBeInstanceOf(ActivityFailure);
    expect(activity.activityType).toBe('downloadModel');
    const timeout = activity.cause as TimeoutFailure;
    expect(timeout).toBeInstanceOf(TimeoutFailure);
    expect(timeout.timeoutType).toBe(TimeoutType.SCHEDULE_TO_START);
    const status = await handle.query(statusQuery);
    expect(status.outcome).toBe('failed');
    expect(status.stages.find((s) => s.name === 'download')?.state).toBe('failed');
    expect(fake.calls).toContain('resolveModel');
    expect(fake.calls).not.toContain('downloadModel');
  });
});
