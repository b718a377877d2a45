import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { CanaryReleaseSpecInput } from '../../src/domain/canary.js';
import { abortUpdate, statusQuery, TASK_QUEUES } from '../../workflows/definitions.js';
import { canaryRelease } from '../../workflows/index.js';
import { FakeActivities } from '../support/fake-activities.js';
import { sharedFakeWorkerEnv } from '../support/workflow-workers.js';

const workers = sharedFakeWorkerEnv();
let current = workers.use(new FakeActivities());

const spec = (overrides: Partial<CanaryReleaseSpecInput> = {}): CanaryReleaseSpecInput => ({
  serving: { namespace: 'llm-prod', name: 'qwen-7b-chat' },
  storageUri: 's3://models/qwen/Qwen-7B-Chat/v2/awq',
  ...overrides,
});

function start(input: unknown) {
  return workers.env().client.workflow.start(canaryRelease, {
    args: [input],
    taskQueue: TASK_QUEUES.default,
    workflowId: `canary-${randomUUID()}`,
  });
}

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect((err as WorkflowFailedError).cause).toBeInstanceOf(ApplicationFailure);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}

describe('canaryRelease', () => {
  it('steps the canary to 100 % and promotes it, unattended by default', async () => {
    current = workers.use(new FakeActivities());
    const handle = await start(spec());
    const result = await handle.result();
    expect(result.outcome).toBe('promoted');
    expect(result.revision).toBe('svc-predictor-00002');
    expect(current.calls.filter((c) => c.startsWith('shiftCanaryTraffic'))).toHaveLength(4);
    expect(current.calls).toContain('promoteCanary');
    expect(current.calls).not.toContain('runLoadTest');
    const status = await handle.query(statusQuery);
    expect(status.kind).toBe('canary');
    expect(status.stages.find((s) => s.name === 'load-test')?.state).toBe('skipped');
  });

  it('asks for a baseline beside the canary at every step when the plan has one', async () => {
    current = workers.use(new FakeActivities());
    const handle = await start(
      spec({
        serving: { namespace: 'llm-prod', name: 'qwen-7b-chat', deploymentMode: 'Standard' },
        canary: { baseline: true },
      }),
    );
    expect((await handle.result()).outcome).toBe('promoted');
    expect(current.calls.filter((c) => c.startsWith('shiftCanaryTraffic'))).toEqual([
      'shiftCanaryTraffic:10+baseline',
      'shiftCanaryTraffic:25+baseline',
      'shiftCanaryTraffic:50+baseline',
      'shiftCanaryTraffic:100+baseline',
    ]);
  });

  it('rolls back on a breach with the reason in the failure (CI exits 2 on this type)', async () => {
    current = workers.use(new FakeActivities({ verdicts: ['pass', 'fail'] }));
    const handle = await start(spec());
    const f = await failure(handle.result());
    expect(f.type).toBe('RolledBack');
    expect(f.message).toContain('canary analysis failed at 25% traffic');
    expect(current.calls).toContain('rollbackCanary');
    expect((await handle.query(statusQuery)).outcome).toBe('rolled_back');
  });

  it('refuses to canary a service that does not exist', async () => {
    current = workers.use(new FakeActivities({ serviceExists: false }));
    const f = await failure((await start(spec())).result());
    expect(f.type).toBe('InvalidInput');
    expect(f.message).toContain('does not exist');
    expect(current.calls).not.toContain('shiftCanaryTraffic:10');
    expect(current.calls).toContain('releaseServingTarget');
  });

  it('aborts: rollback without analysis, reason visible', async () => {
    current = workers.use(new FakeActivities({ blockAnalysis: true }));
    const handle = await start(spec());
    await current.analysisStarted();
    await handle.executeUpdate(abortUpdate, { args: [{ by: 'ci', reason: 'pipeline cancelled' }] });
    const f = await failure(handle.result());
    expect(f.type).toBe('Aborted');
    expect(f.message).toBe('aborted by ci: pipeline cancelled');
    expect(current.calls.filter((c) => c === 'rollbackCanary')).toHaveLength(1);
  });

  it.each([
    [
      'path traversal in the storage URI',
      spec({ storageUri: 's3://models/../secrets' }),
      /storageUri: must not contain "\.\." segments/,
    ],
    [
      'an unknown URI scheme',
      spec({ storageUri: 'ftp://host/model' }),
      /storageUri: must be a URI with scheme/,
    ],
    [
      'a non-DNS service name',
      spec({ serving: { namespace: 'llm-prod', name: 'Bad_Name' } }),
      /serving\.name: must be a DNS-1123 label/,
    ],
    [
      'a negative failure limit',
      spec({ canary: { failureLimit: -1 } }),
      /canary\.failureLimit: must be >= 0/,
    ],
  ])('refuses %s', async (_what, input, message) => {
    current = workers.use(new FakeActivities());
    const f = await failure((await start(input)).result());
    expect(f.type).toBe('InvalidInput');
    expect(f.message).toMatch(message);
    expect(current.calls).toEqual([]);
  });
});
