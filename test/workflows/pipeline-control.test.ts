import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type WorkflowHandle, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { describe, expect, it, vi } from 'vitest';
import type { PromotionSpecInput } from '../../src/domain/promotion-spec.js';
import { chunkDocumentAsync } from '../../src/knowledge/chunker.js';
import {
  abortUpdate,
  approveUpdate,
  pauseUpdate,
  rejectUpdate,
  resumeUpdate,
  setTrafficStepUpdate,
  statusQuery,
  TASK_QUEUES,
} from '../../workflows/definitions.js';
import { promoteModel } from '../../workflows/index.js';
import { FakeActivities } from '../support/fake-activities.js';
import { waitForStatus } from '../support/pipeline-status.js';
import { sharedFakeWorkerEnv } from '../support/workflow-workers.js';

// Human control of a running promotion when the input is hostile or arrives at the worst
// moment: malformed signal and update payloads from the UI, a decision meant for another
// gate, an abort or a cancellation while traffic moves or the promote step commits, a pause
// after the last canary step. Production must end on the revision the outcome names.

const shared = sharedFakeWorkerEnv();

const noApprovals = { approvals: { beforeCanary: false, beforePromote: false } };

function start(spec: PromotionSpecInput, workflowId = `control-${randomUUID()}`) {
  return shared.env().client.workflow.start(promoteModel, {
    args: [spec],
    taskQueue: TASK_QUEUES.default,
    workflowId,
  });
}

/** The reason an update was refused: the validator's message. */
async function refusal(update: Promise<unknown>): Promise<string> {
  const err = await update.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  return String((err as WorkflowUpdateFailedError).cause?.message);
}

async function endingOf(handle: WorkflowHandle): Promise<unknown> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause;
}

describe('pipeline control under hostile input', () => {
  it('ignores malformed signals and refuses malformed updates naming the field, then finishes normally', async () => {
    const fake = shared.use(new FakeActivities());
    const handle = await start({ model: 'qwen/Qwen-7B-Chat' });
    await waitForStatus(handle, (s) => s.pendingDecision?.gate === 'before-canary', 'the first gate');

    // What a person can type into the UI's "Send a Signal" box.
    const badSignals: Array<[string, unknown]> = [
      ['abort', { by: { toString: 1 } }],
      ['abort', 'stop it'],
      ['approve', { by: 'alice' }],
      ['approve', [1, 2]],
      ['approve', { gate: 'before-promote', by: 'alice' }],
      ['reject', null],
      ['pause', { by: 5 }],
      ['resume', { by: 'bob', extra: true }],
    ];
    for (const [name, payload] of badSignals) await handle.signal(name, payload);

    expect(await refusal(handle.executeUpdate(approveUpdate, { args: [{ gate: 'nope' as never }] }))).toMatch(
      /gate: must name the gate this decision answers/,
    );
    expect(
      await refusal(handle.executeUpdate(approveUpdate, { args: [{ gate: 'before-promote', by: 'late' }] })),
    ).toMatch(/names gate before-promote, but the pipeline waits at gate before-canary/);
    expect(
      await refusal(handle.executeUpdate(abortUpdate, { args: [{ by: { toString: 1 } as never }] })),
    ).toMatch(/by: .*expected string/);
    expect(await refusal(handle.executeUpdate(setTrafficStepUpdate, { args: [{ percent: -5 }] }))).toMatch(
      /percent: must be 1\.\.100/,
    );
    expect(await refusal(handle.executeUpdate(pauseUpdate, { args: ['now' as never] }))).toMatch(
      /expected a JSON object, got string/,
    );
    expect(
      await refusal(
        handle.executeUpdate(rejectUpdate, { args: [{ gate: 'before-canary', comment: 'x'.repeat(5000) }] }),
      ),
    ).toMatch(/comment: at most 2000 characters/);

    const status = await handle.query(statusQuery);
    expect(status.outcome).toBe('running');
    expect(status.pendingDecision?.gate).toBe('before-canary');
    const ignored = status.ignoredSignals ?? [];
    expect(ignored).toHaveLength(badSignals.length);
    expect(ignored[0]).toMatch(/^ignored signal abort at .*: by: .*expected string/);
    expect(ignored[1]).toMatch(/ignored signal abort .*: \(root\): expected a JSON object, got string/);
    expect(ignored[2]).toMatch(/ignored signal approve .*: gate: must name the gate/);
    expect(ignored[4]).toMatch(/names gate before-promote, but the pipeline waits at gate before-canary/);
    expect(ignored[5]).toMatch(/ignored signal reject .*: \(root\): a JSON object is required/);
    expect(ignored[7]).toMatch(/ignored signal resume .*Unrecognized key: "extra"/);

    // Nothing changed: the right decisions still drive the promotion to its end.
    await handle.signal('approve', { gate: 'before-canary', by: 'alice' });
    await waitForStatus(handle, (s) => s.pendingDecision?.gate === 'before-promote', 'the promote gate');
    await handle.executeUpdate(approveUpdate, { args: [{ gate: 'before-promote', by: 'alice' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('promoted');
    expect(fake.calls).toContain('promoteCanary');
    expect(fake.calls).not.toContain('rollbackCanary');
  });

  it("clears a reason carried into a new run (a reset keeps the old run's attributes)", async () => {
    shared.use(new FakeActivities());
    const handle = await shared.env().client.workflow.start(promoteModel, {
      args: [{ model: 'qwen/Qwen-7B-Chat' }],
      taskQueue: TASK_QUEUES.default,
      workflowId: `control-${randomUUID()}`,
      searchAttributes: { QwenopsReason: ['rolled back: from the run this one replaces'] },
    });
    await waitForStatus(handle, (s) => s.pendingDecision?.gate === 'before-canary', 'the first gate');
    const description = await handle.describe();
    expect((description.searchAttributes.QwenopsReason ?? []).filter(Boolean)).toEqual([]);
    expect(description.searchAttributes.QwenopsOutcome).toEqual(['running']);
    await handle.cancel();
  });

  it('publishes the outcome of a start refused for bad input', async () => {
    shared.use(new FakeActivities());
    const handle = await start({ model: '../etc/passwd' } as PromotionSpecInput);
    const cause = await endingOf(handle);
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('InvalidInput');
    const description = await handle.describe();
    expect(description.searchAttributes.QwenopsOutcome).toEqual(['failed']);
    expect(String(description.searchAttributes.QwenopsReason)).toMatch(/^invalid promotion spec: model:/);
  });
});

describe('pipeline control at the worst moment', () => {
  it('an abort mid-shift waits for the shift to stop, then rolls back and reads the split back', async () => {
    const fake = shared.use(new FakeActivities({ block: ['shiftCanaryTraffic:25'] }));
    const handle = await start({ model: 'qwen/Qwen-7B-Chat', ...noApprovals });
    await fake.callStarted('shiftCanaryTraffic:25');
    await handle.executeUpdate(abortUpdate, { args: [{ by: 'oncall', reason: 'bad deploy' }] });
    const cause = await endingOf(handle);
    expect((cause as ApplicationFailure).type).toBe('Aborted');
    // The rollback ran only after the cancelled shift had stopped.
    const cancelledAt = fake.calls.indexOf('cancelled:shiftCanaryTraffic:25');
    expect(cancelledAt).toBeGreaterThan(0);
    expect(fake.calls.indexOf('rollbackCanary')).toBeGreaterThan(cancelledAt);
    const status = await handle.query(statusQuery);
    expect(status.outcome).toBe('aborted');
    expect(status.traffic.canaryPercent).toBe(0);
    expect(status.traffic.canaryRevision).toBeUndefined();
  });

  it('a cancellation from the client during an activity ends Cancelled, after rolling back', async () => {
    const fake = shared.use(new FakeActivities({ blockAnalysis: true }));
    const handle = await start({ model: 'qwen/Qwen-7B-Chat', ...noApprovals });
    await fake.analysisStarted();
    await handle.cancel(); // what the UI's "Request Cancellation" does
    const cause = await endingOf(handle);
    expect(cause).toBeInstanceOf(CancelledFailure);
    const description = await handle.describe();
    expect(description.status.name).toBe('CANCELLED');
    const status = await handle.query(statusQuery);
    expect(status.outcome).toBe('aborted');
    expect(status.reason).toBe('cancelled through Temporal');
    expect(status.compensations.map((c) => c.name)[0]).toBe('rollbackCanary');
    expect(status.traffic.canaryPercent).toBe(0);
    // The analysis only reads, so the workflow does not wait for it to stop (TRY_CANCEL):
    // the cancellation reaches it with its next heartbeat, which on a loaded host may come
    // after the workflow has closed.
    await vi.waitFor(() => expect(fake.analysisCancelled).toBe(true), { timeout: 60_000, interval: 200 });
    expect(fake.calls).not.toContain('promoteCanary');
  });

  it('refuses an abort while the promote step commits, and ends promoted', async () => {
    const fake = shared.use(new FakeActivities({ block: ['promoteCanary'] }));
    const handle = await start({ model: 'qwen/Qwen-7B-Chat', ...noApprovals });
    await fake.callStarted('promoteCanary');
    expect(
      await refusal(handle.executeUpdate(abortUpdate, { args: [{ by: 'oncall', reason: 'too late' }] })),
    ).toMatch(/cannot abort: the promote step is making the candidate the stable revision/);
    await handle.signal('abort', { by: 'ui-user', reason: 'too late' });
    await waitForStatus(handle, (s) => (s.ignoredSignals?.length ?? 0) === 1, 'the ignored abort');
    fake.releaseCall('promoteCanary');
    const result = await handle.result();
    expect(result.outcome).toBe('promoted');
    expect(result.status.ignoredSignals?.[0]).toMatch(
      /ignored signal abort .*cannot abort: the promote step/,
    );
    expect(fake.calls).not.toContain('rollbackCanary');
    expect(fake.cancelledCalls).toEqual([]);
  });

  it('a cancellation from the client during the promote step lets it finish: promoted', async () => {
    const fake = shared.use(new FakeActivities({ block: ['promoteCanary'] }));
    const handle = await start({ model: 'qwen/Qwen-7B-Chat', ...noApprovals });
    await fake.callStarted('promoteCanary');
    await handle.cancel();
    await fake.releaseCall('promoteCanary');
    const result = await handle.result();
    expect(result.outcome).toBe('promoted');
    expect(result.status.traffic).toMatchObject({ stableRevision: 'svc-predictor-00002', canaryPercent: 0 });
    expect(fake.cancelledCalls).toEqual([]);
    expect(fake.calls).not.toContain('rollbackCanary');
    expect(fake.calls).toContain('releaseServingTarget');
  });

  it('a promote that applied and then failed is read back from the cluster: promoted, nothing undone', async () => {
    const fake = shared.use(new FakeActivities({ promoteFailsAfterApply: true }));
    const handle = await start({ model: 'qwen/Qwen-7B-Chat', ...noApprovals });
    const result = await handle.result();
    expect(result.outcome).toBe('promoted');
    expect(result.revision).toBe('svc-predictor-00002');
    expect(fake.calls).not.toContain('rollbackCanary');
    expect(fake.calls).not.toContain('markCandidateRejected');
  });

  it('a pause after the last canary step holds the promotion until resumed', async () => {
    const fake = shared.use(new FakeActivities({ block: ['runLoadTest'] }));
    const handle = await start({ model: 'qwen/Qwen-7B-Chat', ...noApprovals });
    await fake.callStarted('runLoadTest');
    const paused = await handle.executeUpdate(pauseUpdate, { args: [{ by: 'oncall' }] });
    expect(paused.paused).toBe(true);
    expect(paused.stage).toBe('load-test');
    fake.releaseCall('runLoadTest');
    await waitForStatus(
      handle,
      (s) => s.stages.find((x) => x.name === 'load-test')?.state === 'succeeded',
      'the load test to finish',
    );
    // Parked before the promote step: query twice with time in between.
    await new Promise((r) => setTimeout(r, 300));
    const parked = await handle.query(statusQuery);
    expect(parked.paused).toBe(true);
    expect(fake.calls).not.toContain('promoteCanary');
    await handle.executeUpdate(resumeUpdate, { args: [{ by: 'oncall' }] });
    const result = await handle.result();
    expect(result.outcome).toBe('promoted');
    expect(fake.calls).toContain('promoteCanary');
  });

  it('holds the rollout lease while it runs, and stops without touching the service when it is lost', async () => {
    const fake = shared.use(new FakeActivities({ blockAnalysis: true, leaseLostAfterMs: 300 }));
    const handle = await start({ model: 'qwen/Qwen-7B-Chat', ...noApprovals });
    const cause = await endingOf(handle);
    expect((cause as ApplicationFailure).type).toBe('ServingLeaseLost');
    expect((cause as ApplicationFailure).message).toMatch(
      /^lost the rollout lease: the rollout lease of llm-prod\/svc is held by workflow other-run/,
    );
    expect(fake.calls.indexOf('holdServingTarget')).toBeGreaterThan(fake.calls.indexOf('claimServingTarget'));
    expect(fake.calls).not.toContain('promoteCanary');
    // The service belongs to another workflow now: no rollback, no release of its lease.
    expect(fake.calls).not.toContain('rollbackCanary');
    expect(fake.calls).not.toContain('releaseServingTarget');
    expect(fake.calls).toContain('markCandidateRejected');
    const status = await handle.query(statusQuery);
    expect(status.outcome).toBe('failed');
  });

  it('answers status queries while the same worker process chunks a 20 MB single-line document', async () => {
    shared.use(new FakeActivities());
    const handle = await start({ model: 'qwen/Qwen-7B-Chat' });
    await waitForStatus(handle, (s) => s.pendingDecision?.gate === 'before-canary', 'the first gate');
    const sentence = '员工应当遵守公司的各项规章制度并按时完成工作任务 and follow the rules carefully ';
    const text = sentence.repeat(Math.ceil((20 * 1024 * 1024) / Buffer.byteLength(sentence)));
    const document = { title: 'big', blocks: [{ kind: 'text' as const, text }] };

    // Queries reach this workflow through this process's worker, whose event loop the
    // chunker shares (as in a knowledge worker that also runs workflows).
    const latencies: number[] = [];
    let chunking = true;
    const querying = (async () => {
      while (chunking) {
        const sent = performance.now();
        await handle.query(statusQuery);
        latencies.push(performance.now() - sent);
      }
    })();
    const started = performance.now();
    const chunks = await chunkDocumentAsync(document, undefined, { maxChars: 64 * 1024 * 1024 });
    const total = performance.now() - started;
    chunking = false;
    await querying;
    await handle.cancel();

    expect(chunks.length).toBeGreaterThan(1000);
    // Several queries were answered while it chunked, none waiting for the chunking to end
    // (a chunker that never yields makes one query wait for all of it). Relative to the
    // chunking time, so a busy host cannot turn it into a latency test.
    expect(latencies.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...latencies)).toBeLessThan(total / 2);
  });
});
