import { rm } from 'node:fs/promises';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import { loadGoldenHistories, replayAll, variantDir, writeFiles } from '../support/golden-histories.js';
import { recordReplays } from './replay-counts.js';

// The negative control: the replay check must be able to fail. A bundle whose workflows
// take one extra step first (a one-second timer, as a careless edit would add) is replayed
// against every golden history, and every replay must end in DeterminismViolationError.

// Quiet: every replay here logs its nondeterminism error on purpose.
Runtime.install({
  logger: new DefaultLogger('ERROR'),
  telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } },
});

let dir: string | undefined;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The current workflows, each with a timer inserted before its first step. */
function extraStepEntry(from: string): string {
  const workflows = path
    .relative(from, path.join(repoRoot, 'workflows', 'index.js'))
    .split(path.sep)
    .join('/');
  const wrap = (name: string) => `
export async function ${name}(...args: Parameters<typeof current.${name}>) {
  await sleep('1 second'); // the inserted step
  return current.${name}(...args);
}`;
  return [
    "import { sleep } from '@temporalio/workflow';",
    `import * as current from '${workflows}';`,
    ...['promoteModel', 'canaryRelease', 'reindexKnowledgeBase', 'loadTest'].map(wrap),
    '',
  ].join('\n');
}

describe('negative control', () => {
  it('a bundle with an inserted step raises DeterminismViolationError on every golden history', async ({
    task,
  }) => {
    const golden = await loadGoldenHistories();
    dir = await variantDir('extra-step');
    await writeFiles(dir, { 'index.ts': extraStepEntry(dir) });
    const results = await replayAll(
      { workflowsPath: path.join(dir, 'index.ts') },
      golden.map((g) => ({ workflowId: g.entry.file, history: g.json })),
    );
    const violations = results.filter((r) => r.error instanceof DeterminismViolationError);
    recordReplays(task.meta, { expectedViolations: violations.length });
    const notCaught = results
      .filter((r) => !(r.error instanceof DeterminismViolationError))
      .map((r) => `${r.workflowId}: ${r.error ? `${r.error.name}: ${r.error.message}` : 'replayed cleanly'}`);
    expect(notCaught).toEqual([]);
    expect(violations).toHaveLength(golden.length);
  });
});
