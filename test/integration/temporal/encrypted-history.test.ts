import { randomBytes, randomUUID } from 'node:crypto';
import { Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modulePath } from '../../../src/runtime/entrypoints.js';
import { createDataConverter, workflowInterceptorModules } from '../../../src/temporal/data-converter.js';
import { SEARCH_ATTRIBUTES, TASK_QUEUES } from '../../../workflows/definitions.js';
import { canaryRelease } from '../../../workflows/index.js';
import { FakeActivities, forwardingActivities } from '../../support/fake-activities.js';
import { createDevServerEnv } from '../../support/temporal.js';

// With QWENOPS_CODEC_KEY, nothing a failure says reaches Temporal in clear: not the failure
// message or stack (DefaultFailureConverter with encodeCommonAttributes, encrypted by the
// codec), not the QwenopsReason search attribute (reduced to a summary by the workflows).
// The workers are configured exactly as workers/run.ts configures them.

const KEY = randomBytes(32).toString('base64');
const MARKER = `leaky-${randomUUID()}`;
const dataConverter = createDataConverter(KEY);

let env: TestWorkflowEnvironment;
let codecClient: Client;
let rawClient: Client;
let workers: Worker[] = [];
let running: Promise<void>[] = [];

beforeAll(async () => {
  env = await createDevServerEnv();
  const fake = new FakeActivities();
  const { promotion, serving } = forwardingActivities(() => fake);
  // A GPU Job style failure whose text (log tail) carries the marker.
  serving.claimServingTarget = async () => {
    throw ApplicationFailure.create({
      type: 'GpuJobFailed',
      message: `Job qwenops-quantize failed; last log lines:\nTraceback ...\nRuntimeError: token ${MARKER}`,
      nonRetryable: true,
    });
  };
  const common = { connection: env.nativeConnection, dataConverter };
  workers = await Promise.all([
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.default,
      activities: promotion,
      workflowsPath: modulePath('workflows/index'),
      interceptors: { workflowModules: workflowInterceptorModules(KEY) },
    }),
    Worker.create({ ...common, taskQueue: TASK_QUEUES.gpuJobs, activities: promotion }),
    Worker.create({ ...common, taskQueue: TASK_QUEUES.cluster, activities: serving }),
  ]);
  running = workers.map((w) => w.run());
  codecClient = new Client({ connection: env.connection, dataConverter });
  rawClient = new Client({ connection: env.connection });
});

afterAll(async () => {
  for (const w of workers) w.shutdown();
  await Promise.all(running);
  await env?.teardown();
});

/** The whole history as the server stores it, in protobuf bytes. */
async function rawHistory(workflowId: string): Promise<Buffer> {
  const history = await rawClient.workflow.getHandle(workflowId).fetchHistory();
  return Buffer.from(temporal.api.history.v1.History.encode(history).finish());
}

async function failureOf(workflowId: string): Promise<Error> {
  const err = await codecClient.workflow
    .getHandle(workflowId)
    .result()
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as Error;
}

const spec = { serving: { namespace: 'llm-prod', name: 'qwen-7b-chat' }, storageUri: 's3://models/q/v2/awq' };

describe('encrypted history (QWENOPS_CODEC_KEY)', () => {
  it('keeps an activity failure text (Job log) out of history and QwenopsReason', async () => {
    const workflowId = `canary-${randomUUID()}`;
    await codecClient.workflow.start(canaryRelease, {
      args: [spec],
      taskQueue: TASK_QUEUES.default,
      workflowId,
    });
    // The client with the codec sees the whole message.
    const failure = await failureOf(workflowId);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure.message).toContain(MARKER);
    expect((failure as ApplicationFailure).type).toBe('GpuJobFailed');

    const raw = await rawHistory(workflowId);
    expect(raw.includes(MARKER)).toBe(false);
    // The check can see plain text: the service name is a (plain) search attribute.
    expect(raw.includes('llm-prod/qwen-7b-chat')).toBe(true);

    // What is stored instead: an opaque "Encoded failure" with encrypted attributes.
    const history = await rawClient.workflow.getHandle(workflowId).fetchHistory();
    const failed = history.events?.find((e) => e.workflowExecutionFailedEventAttributes)
      ?.workflowExecutionFailedEventAttributes?.failure;
    expect(failed?.message).toBe('Encoded failure');
    expect(failed?.stackTrace ?? '').toBe('');
    expect(Buffer.from(failed?.encodedAttributes?.metadata?.encoding ?? []).toString()).toBe(
      'binary/encrypted',
    );

    const described = await rawClient.workflow.getHandle(workflowId).describe();
    expect(described.typedSearchAttributes.get(SEARCH_ATTRIBUTES.outcome)).toBe('failed');
    expect(described.typedSearchAttributes.get(SEARCH_ATTRIBUTES.reason)).toBe(
      'failed in stage claim (details encrypted)',
    );
    expect(JSON.stringify(described.raw)).not.toContain(MARKER);
  });

  it('keeps invalid input text out of history and QwenopsReason', async () => {
    const workflowId = `canary-${randomUUID()}`;
    await codecClient.workflow.start(canaryRelease, {
      args: [{ ...spec, [MARKER]: 'unexpected field' }],
      taskQueue: TASK_QUEUES.default,
      workflowId,
    });
    const failure = await failureOf(workflowId);
    expect((failure as ApplicationFailure).type).toBe('InvalidInput');
    expect(failure.message).toContain(MARKER);

    expect((await rawHistory(workflowId)).includes(MARKER)).toBe(false);
    const described = await rawClient.workflow.getHandle(workflowId).describe();
    expect(described.typedSearchAttributes.get(SEARCH_ATTRIBUTES.reason)).toBe(
      'InvalidInput (details encrypted)',
    );
  });
});
