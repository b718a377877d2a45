import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeActivities } from '../support/fake-activities.js';
import { exportHistoryJson, replayAll } from '../support/golden-histories.js';
import {
  fetchRunChain,
  type RecordedRun,
  SCENARIOS,
  startScenarioWorkers,
} from '../support/history-scenarios.js';
import { createDevServerEnv, workflowBundle } from '../support/temporal.js';
import { recordReplays } from './replay-counts.js';

// Every scenario of the golden histories, run now on the dev server with the current code,
// then replayed twice: from the history objects the client fetches, and from what
// `temporal workflow show --output json` exports for the same runs (the operator's way to
// take a history out of production; it needs one protobufjs in node_modules to load).

Runtime.install({ logger: new DefaultLogger('ERROR') });

let env: TestWorkflowEnvironment;
let workers: { stop(): Promise<void> } | undefined;
let current = new FakeActivities();
const runs: Array<RecordedRun & { scenario: string }> = [];

beforeAll(async () => {
  env = await createDevServerEnv();
  workers = await startScenarioWorkers(env, await workflowBundle(), () => current);
}, 120_000);

afterAll(async () => {
  await workers?.stop();
  await env?.teardown();
});

describe('live histories', () => {
  it('every scenario runs to its end on the dev server', async () => {
    for (const scenario of SCENARIOS) {
      const handle = await scenario.run({
        client: env.client,
        workflowId: `live-${scenario.name}-${randomUUID()}`,
        use: (fake) => {
          current = fake;
          return fake;
        },
      });
      for (const run of await fetchRunChain(env.client, handle))
        runs.push({ ...run, scenario: scenario.name });
    }
    // The reindex scenarios continue as new: more runs than scenarios.
    expect(runs.length).toBeGreaterThan(SCENARIOS.length);
  });

  it("replay from the client's history objects", async ({ task }) => {
    expect(runs.length).toBeGreaterThan(0);
    const results = await replayAll(
      { workflowBundle: await workflowBundle() },
      runs.map((r) => ({ workflowId: r.workflowId, history: r.history })),
    );
    const failures = results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error?.message}`);
    recordReplays(task.meta, { replayed: results.length, failures: failures.length });
    expect(failures).toEqual([]);
  });

  it('replay from `temporal workflow show --output json` exports of the same runs', async ({ task }) => {
    expect(runs.length).toBeGreaterThan(0);
    const exported = await Promise.all(
      runs.map(async (r) => ({
        workflowId: r.workflowId,
        history: await exportHistoryJson(env.address, r),
        events: r.history.events,
      })),
    );
    for (const e of exported) expect(e.history.events).toHaveLength(e.events?.length ?? -1);
    const results = await replayAll({ workflowBundle: await workflowBundle() }, exported);
    const failures = results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error?.message}`);
    recordReplays(task.meta, { replayed: results.length, failures: failures.length });
    expect(failures).toEqual([]);
  });
});
