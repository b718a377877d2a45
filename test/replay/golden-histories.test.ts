import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { type GoldenHistory, loadGoldenHistories, replayAll } from '../support/golden-histories.js';
import { SCENARIOS } from '../support/history-scenarios.js';
import { recordReplays } from './replay-counts.js';

// Every golden history (test/fixtures/histories/, exported with
// `temporal workflow show --output json`) replays against the current workflow code: a
// change that would break a run in flight (a new command, a reordered one, a changed
// activity type) fails here, before it is deployed. See README "Changing a workflow".

Runtime.install({ logger: new DefaultLogger('WARN') });

const workflowsPath = path.join(repoRoot, 'workflows', 'index.ts');
let golden: GoldenHistory[];

beforeAll(async () => {
  golden = await loadGoldenHistories();
});

function failuresOf(results: Array<{ workflowId: string; error?: Error }>): string[] {
  return results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error?.name}: ${r.error?.message}`);
}

describe('golden histories', () => {
  it('cover every workflow and scenario: at least 15 histories, one per scenario', () => {
    expect(golden.length).toBeGreaterThanOrEqual(15);
    const scenarios = new Set(golden.filter((g) => !g.entry.tag).map((g) => g.entry.scenario));
    expect([...scenarios].sort()).toEqual(SCENARIOS.map((s) => s.name).sort());
    const types = new Set(golden.map((g) => g.entry.workflowType));
    expect([...types].sort()).toEqual(['canaryRelease', 'loadTest', 'promoteModel', 'reindexKnowledgeBase']);
    // A continue-as-new chain is kept whole.
    expect(golden.filter((g) => g.entry.run?.endsWith('of 3')).length).toBeGreaterThanOrEqual(3);
  });

  it('replay from the exported JSON files against the current workflow bundle', async ({ task }) => {
    const results = await replayAll(
      { workflowsPath },
      golden.map((g) => ({ workflowId: g.entry.file, history: g.json })),
    );
    const failures = failuresOf(results);
    recordReplays(task.meta, { replayed: results.length, failures: failures.length, golden: golden.length });
    expect(results).toHaveLength(golden.length);
    expect(failures).toEqual([]);
  });

  it('replay as history objects (the proto form the client fetches) against the current bundle', async ({
    task,
  }) => {
    const objects = golden.map((g) => ({ workflowId: g.entry.file, history: historyFromJSON(g.json) }));
    for (const o of objects) expect(o.history.events?.length).toBeGreaterThan(0);
    const results = await replayAll({ workflowsPath }, objects);
    const failures = failuresOf(results);
    recordReplays(task.meta, { replayed: results.length, failures: failures.length });
    expect(failures).toEqual([]);
  });
});
