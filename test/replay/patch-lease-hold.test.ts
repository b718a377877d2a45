import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { FakeActivities } from '../support/fake-activities.js';
import { loadGoldenHistories, patchIdsOf, replayAll, variantDir } from '../support/golden-histories.js';
import { fetchRunChain, SCENARIOS, startScenarioWorkers } from '../support/history-scenarios.js';
import { createDevServerEnv } from '../support/temporal.js';
import { recordReplays } from './replay-counts.js';

// The worked example of README "Changing a workflow": the rollout lease hold
// (workflows/rollout.ts, holdRolloutLease) added a step to both rollout workflows, behind
// `patched('rollout-lease-hold')`. A run recorded by the code from before the hold (the
// same code with the hold removed) must replay on today's code, which skips the hold for
// it; without the patch guard the same replay is a DeterminismViolationError.

Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
});

const GUARD = '  if (!patched(LEASE_HOLD_PATCH)) return;\n';

let env: TestWorkflowEnvironment;
const dirs: string[] = [];

/** workflows/ and src/domain/ copied, with rollout.ts's patch guard replaced by `replacement`. */
async function variant(name: string, replacement: string): Promise<string> {
  const root = await variantDir(name);
  dirs.push(root);
  await cp(path.join(repoRoot, 'workflows'), path.join(root, 'workflows'), { recursive: true });
  await cp(path.join(repoRoot, 'src', 'domain'), path.join(root, 'src', 'domain'), { recursive: true });
  const rollout = path.join(root, 'workflows', 'rollout.ts');
  const text = await readFile(rollout, 'utf8');
  expect(text).toContain(GUARD);
  await writeFile(rollout, text.replace(GUARD, replacement));
  return path.join(root, 'workflows', 'index.ts');
}

const activityTypes = (history: temporal.api.history.v1.IHistory) =>
  (history.events ?? []).flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []);

beforeAll(async () => {
  env = await createDevServerEnv();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe("patched('rollout-lease-hold')", () => {
  it('today a promotion records the patch and holds the lease', async () => {
    const promoted = (await loadGoldenHistories()).find(
      (g) => g.entry.file === 'promote-model.promoted.json',
    );
    expect(JSON.stringify(promoted?.json)).toContain('holdServingTarget');
    expect(patchIdsOf(promoted?.json ?? {})).toContain('rollout-lease-hold');
  });

  it("a run from before the hold replays on today's code; without the guard it would not", async ({
    task,
  }) => {
    // The code as it was before the hold: the hold never starts, no patch is recorded.
    const before = await bundleWorkflowCode({
      workflowsPath: await variant('before-lease-hold', '  return;\n'),
      logger: new DefaultLogger('ERROR'),
    });
    const scenario = SCENARIOS.find((s) => s.name === 'promote-model.rolled-back-on-analysis');
    let current = new FakeActivities();
    const workers = await startScenarioWorkers(env, before, () => current);
    let history: temporal.api.history.v1.IHistory | undefined;
    try {
      const handle = await scenario?.run({
        client: env.client,
        workflowId: 'before-lease-hold',
        use: (fake) => {
          current = fake;
          return fake;
        },
      });
      if (!handle) throw new Error('scenario missing');
      history = (await fetchRunChain(env.client, handle))[0]?.history;
    } finally {
      await workers.stop();
    }
    if (!history) throw new Error('no history recorded');
    expect(activityTypes(history)).toContain('rollbackCanary');
    expect(activityTypes(history)).not.toContain('holdServingTarget');
    expect(patchIdsOf(history)).not.toContain('rollout-lease-hold');

    // Today's code: patched() is false for this run, so it skips the hold as the old code did.
    const [today] = await replayAll({ workflowsPath: path.join(repoRoot, 'workflows', 'index.ts') }, [
      { workflowId: 'before-lease-hold', history },
    ]);
    recordReplays(task.meta, { replayed: 1, failures: today?.error ? 1 : 0 });
    expect(today?.error).toBeUndefined();

    // The same change without the guard schedules the hold in the middle of an old run.
    const [unguarded] = await replayAll({ workflowsPath: await variant('lease-hold-unguarded', '') }, [
      { workflowId: 'before-lease-hold', history },
    ]);
    expect(unguarded?.error).toBeInstanceOf(DeterminismViolationError);
    recordReplays(task.meta, { expectedViolations: 1 });
  });
});
