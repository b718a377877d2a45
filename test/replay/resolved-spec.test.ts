import { randomUUID } from 'node:crypto';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SpecActivities } from '../../activities/spec.js';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { approveUpdate, statusQuery, TASK_QUEUES } from '../../workflows/definitions.js';
import { promoteModel } from '../../workflows/index.js';
import { FakeActivities, forwardingActivities } from '../support/fake-activities.js';
import { loadGoldenHistories, replayAll, variantDir } from '../support/golden-histories.js';
import { waitForStatus } from '../support/pipeline-status.js';
import { createDevServerEnv, workflowBundle } from '../support/temporal.js';
import { recordReplays } from './replay-counts.js';

// A spec is resolved once, where replay cannot change it (workflows/resolve-spec.ts). The
// test changes one default the way a later release would, in a copy of the code (the
// before-promote approval becomes opt-in: approvals.beforePromote defaults to false), and
// shows that
//  - every promoteModel golden history still replays against that code, and a run started
//    under the old default keeps it (it still stops at the before-promote gate) when the
//    new code takes it over, while a new run gets the new default;
//  - without the resolution (a history from before it, whose spec was parsed inside the
//    workflow), the same change is a DeterminismViolationError.

Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
});

const OLD_DEFAULT = 'beforePromote: z.boolean().default(true)';
const NEW_DEFAULT = 'beforePromote: z.boolean().default(false)';

let dir: string;
let variantBundlePath: string;

/** workflows/, src/domain/ and the spec activities, copied, with approvals.beforePromote defaulting to false. */
async function changedDefaultCopy(): Promise<string> {
  const root = await variantDir('changed-default');
  await cp(path.join(repoRoot, 'workflows'), path.join(root, 'workflows'), { recursive: true });
  await cp(path.join(repoRoot, 'src', 'domain'), path.join(root, 'src', 'domain'), { recursive: true });
  await cp(path.join(repoRoot, 'activities', 'spec.ts'), path.join(root, 'activities', 'spec.ts'));
  const specFile = path.join(root, 'src', 'domain', 'promotion-spec.ts');
  const text = await readFile(specFile, 'utf8');
  expect(text).toContain(OLD_DEFAULT);
  await writeFile(specFile, text.replace(OLD_DEFAULT, NEW_DEFAULT));
  return root;
}

beforeAll(async () => {
  dir = await changedDefaultCopy();
  variantBundlePath = path.join(dir, 'workflows', 'index.ts');
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a default changed after a run started', () => {
  it('the changed code still replays every promoteModel history; a history from before the resolution does not', async ({
    task,
  }) => {
    const golden = (await loadGoldenHistories()).filter((g) => g.entry.workflowType === 'promoteModel');
    const current = golden.filter((g) => !g.entry.tag);
    const beforeResolution = golden.filter((g) => g.entry.tag === 'before-resolve-spec');
    expect(current.length).toBeGreaterThanOrEqual(8);
    expect(beforeResolution.map((g) => g.entry.scenario)).toContain('promote-model.promoted');

    const results = await replayAll(
      { workflowsPath: variantBundlePath },
      current.map((g) => ({ workflowId: g.entry.file, history: g.json })),
    );
    const failures = results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error?.message}`);
    recordReplays(task.meta, { replayed: results.length, failures: failures.length });
    expect(failures).toEqual([]);

    // The control: the same change breaks a run that parsed its spec in the workflow.
    const legacy = beforeResolution.find((g) => g.entry.scenario === 'promote-model.promoted');
    const [broken] = await replayAll({ workflowsPath: variantBundlePath }, [
      { workflowId: legacy?.entry.file ?? '', history: legacy?.json },
    ]);
    expect(broken?.error).toBeInstanceOf(DeterminismViolationError);
    recordReplays(task.meta, { expectedViolations: 1 });
  });

  describe('live: a promotion started before the change, taken over by the changed code', () => {
    let env: TestWorkflowEnvironment;
    const fake = new FakeActivities();
    const { promotion, serving } = forwardingActivities(() => fake);
    let activityWorkers: Worker[] = [];
    let activityRuns: Promise<void>[] = [];

    beforeAll(async () => {
      env = await createDevServerEnv();
      activityWorkers = await Promise.all([
        Worker.create({
          connection: env.nativeConnection,
          taskQueue: TASK_QUEUES.gpuJobs,
          activities: promotion,
        }),
        Worker.create({
          connection: env.nativeConnection,
          taskQueue: TASK_QUEUES.cluster,
          activities: serving,
        }),
      ]);
      activityRuns = activityWorkers.map((w) => w.run());
    }, 120_000);

    afterAll(async () => {
      for (const w of activityWorkers) w.shutdown();
      await Promise.all(activityRuns);
      await env?.teardown();
    });

    it('keeps the default it started with; a new run gets the new one', async () => {
      const input = { model: 'qwen/Qwen-7B-Chat', approvals: { beforeCanary: true } };
      const workflowId = `resolved-spec-${randomUUID()}`;

      // Version 1: today's code. The run resolves its spec (before-promote gate on) and
      // waits at the before-canary gate.
      const v1 = await Worker.create({
        connection: env.nativeConnection,
        taskQueue: TASK_QUEUES.default,
        workflowBundle: await workflowBundle(),
        activities: promotion,
        stickyQueueScheduleToStartTimeout: '1s',
      });
      const v1Run = v1.run();
      const handle = await env.client.workflow.start(promoteModel, {
        args: [input],
        taskQueue: TASK_QUEUES.default,
        workflowId,
      });
      await waitForStatus(
        handle,
        (s) => s.pendingDecision?.gate === 'before-canary',
        'the before-canary gate',
      );
      v1.shutdown();
      await v1Run;

      // Version 2: the changed default, in the bundle and in the spec resolution.
      const changed = (await import(path.join(dir, 'activities', 'spec.ts'))) as {
        specActivities: SpecActivities;
      };
      const v2 = await Worker.create({
        connection: env.nativeConnection,
        taskQueue: TASK_QUEUES.default,
        workflowBundle: await bundleWorkflowCode({
          workflowsPath: variantBundlePath,
          logger: new DefaultLogger('ERROR'),
        }),
        // The changed spec resolution replaces today's (same activity names).
        activities: { ...promotion, ...changed.specActivities },
      });
      await v2.runUntil(async () => {
        // The old run, replayed from its history by version 2: still asks before promoting.
        await handle.executeUpdate(approveUpdate, { args: [{ gate: 'before-canary', by: 'tester' }] });
        const atPromote = await waitForStatus(
          handle,
          (s) => s.pendingDecision?.gate === 'before-promote',
          'the before-promote gate of the run started under the old default',
        );
        expect(atPromote.stages.find((s) => s.name === 'approve-promote')?.state).toBe('waiting');
        await handle.executeUpdate(approveUpdate, { args: [{ gate: 'before-promote', by: 'tester' }] });
        expect((await handle.result()).outcome).toBe('promoted');

        // A new run with the same input, on version 2: no before-promote gate any more.
        const fresh = await env.client.workflow.start(promoteModel, {
          args: [input],
          taskQueue: TASK_QUEUES.default,
          workflowId: `${workflowId}-new`,
        });
        await waitForStatus(
          fresh,
          (s) => s.pendingDecision?.gate === 'before-canary',
          'the before-canary gate',
        );
        await fresh.executeUpdate(approveUpdate, { args: [{ gate: 'before-canary', by: 'tester' }] });
        const result = await fresh.result();
        expect(result.outcome).toBe('promoted');
        const stage = (await fresh.query(statusQuery)).stages.find((s) => s.name === 'approve-promote');
        expect(stage).toMatchObject({ state: 'skipped', detail: 'no approval required by the spec' });
      });
    });
  });
});
