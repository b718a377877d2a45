// Records the golden workflow histories (test/fixtures/histories/): every scenario of
// test/support/history-scenarios.ts runs to its end on a Temporal dev server (the binary
// `make setup` installs under .tools/bin) with scripted activities, and each run's history
// is exported with `temporal workflow show --output json`, the same form an operator gets
// from a production namespace. manifest.json names the code version that made each file.
//
//   npx tsx scripts/record-histories.ts                      every scenario
//   npx tsx scripts/record-histories.ts --only promote-model.aborted,load-test.passed
//   npx tsx scripts/record-histories.ts --only promote-model.promoted --tag before-x --note "..."
//     (a tagged copy: <name>.<tag>.json, kept next to the current one; the note says what
//     code made it)
//
// Existing files of other scenarios are kept: a golden history stays until no worker
// version that could run such a history remains (README, "Changing a workflow").

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { repoRoot } from '../src/runtime/entrypoints.js';
import { FakeActivities } from '../test/support/fake-activities.js';
import {
  exportHistoryJson,
  HISTORIES_DIR,
  type HistoryManifest,
  type ManifestEntry,
  readManifest,
} from '../test/support/golden-histories.js';
import { fetchRunChain, SCENARIOS, startScenarioWorkers } from '../test/support/history-scenarios.js';
import { toolPath } from '../test/support/tools.js';
import { SEARCH_ATTRIBUTES } from '../workflows/definitions.js';

const exec = promisify(execFile);

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function git(...args: string[]): Promise<string> {
  return (await exec('git', args, { cwd: repoRoot })).stdout.trim();
}

async function codeVersion(): Promise<HistoryManifest['recordings'][number]> {
  const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const sdk = JSON.parse(
    await readFile(path.join(repoRoot, 'node_modules/@temporalio/worker/package.json'), 'utf8'),
  ) as { version: string };
  const codePaths = ['workflows', 'src/domain', 'activities'];
  const dirty = await git('status', '--porcelain', '--', ...codePaths);
  // The workflow code exactly as it was (the commit alone does not say it when files are uncommitted).
  const files = (await git('ls-files', '--cached', '--others', '--exclude-standard', '--', ...codePaths))
    .split('\n')
    .filter((f) => f.endsWith('.ts') && existsSync(path.join(repoRoot, f)))
    .sort();
  const hash = createHash('sha256');
  for (const file of files) hash.update(`${file}\0${await readFile(path.join(repoRoot, file), 'utf8')}\0`);
  const server = (await exec(toolPath('temporal'), ['--version'])).stdout.trim();
  return {
    commit: await git('rev-parse', '--short', 'HEAD'),
    packageVersion: pkg.version,
    uncommittedWorkflowChanges: dirty.split('\n').filter(Boolean).length,
    workflowCodeSha256: hash.digest('hex'),
    ...(argValue('--note') ? { note: argValue('--note') } : {}),
    sdkVersion: sdk.version,
    server,
    recordedAt: new Date().toISOString(),
  };
}

async function main(): Promise<void> {
  const only = argValue('--only')?.split(',');
  const tag = argValue('--tag');
  const unknown = only?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
  if (unknown.length > 0) throw new Error(`no such scenario: ${unknown.join(', ')}`);
  const scenarios = SCENARIOS.filter((s) => !only || only.includes(s.name));

  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const version = await codeVersion();
  const manifest = await readManifest();
  const recording = manifest.recordings.length;
  manifest.recordings.push(version);

  // test/support/temporal.ts's helpers, inlined: that module cannot load under plain Node ESM.
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: toolPath('temporal') },
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      ui: false,
      extraArgs: ['--log-level', 'error'],
    },
  });
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(repoRoot, 'workflows', 'index.ts'),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never,
  });
  let current = new FakeActivities();
  const workers = await startScenarioWorkers(env, bundle, () => current);
  // Everything is written at the end, once it replays: a failed recording changes nothing.
  const recorded: Array<{ file: string; text: string; entry: ManifestEntry }> = [];
  try {
    for (const scenario of scenarios) {
      const workflowId = `golden-${scenario.name}${tag ? `-${tag}` : ''}`;
      const t0 = Date.now();
      const handle = await scenario.run({
        client: env.client,
        workflowId,
        use: (fake) => {
          current = fake;
          return fake;
        },
      });
      const chain = await fetchRunChain(env.client, handle);
      for (const [index, run] of chain.entries()) {
        const stem = `${scenario.name}${chain.length > 1 ? `.run-${index + 1}` : ''}${tag ? `.${tag}` : ''}`;
        const file = `${stem}.json`;
        // The operator's export, byte for byte what `temporal workflow show` prints.
        const exported = await exportHistoryJson(env.address, run);
        const events = run.history.events?.length ?? 0;
        if (exported.events.length !== events) {
          throw new Error(`${file}: the CLI exported ${exported.events.length} events, the client ${events}`);
        }
        const entry: ManifestEntry = {
          file,
          workflowType: scenario.workflowType,
          scenario: scenario.name,
          ending: scenario.ending,
          ...(tag ? { tag } : {}),
          run: chain.length > 1 ? `${index + 1} of ${chain.length}` : undefined,
          workflowId: run.workflowId,
          runId: run.runId,
          events,
          recording,
        };
        recorded.push({ file, text: `${JSON.stringify(exported, null, 2)}\n`, entry });
      }
      console.log(`[record] ${scenario.name}: ${chain.length} run(s) in ${Date.now() - t0} ms`);
    }
  } catch (err) {
    console.error('[record] failed; nothing was written');
    throw err;
  } finally {
    await workers.stop();
    await env.teardown();
  }

  // What was just recorded must replay against the code that recorded it.
  const histories = recorded.map((r) => ({ workflowId: r.file, history: JSON.parse(r.text) }));
  const failures: string[] = [];
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
    if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
  }
  if (failures.length > 0) throw new Error(`recorded histories do not replay:\n${failures.join('\n')}`);
  for (const { file, text, entry } of recorded) {
    await writeFile(path.join(HISTORIES_DIR, file), text);
    manifest.histories = manifest.histories.filter((h) => h.file !== file);
    manifest.histories.push(entry);
  }

  // Forget deleted files, then keep only the recordings some history still points at.
  manifest.histories = manifest.histories.filter((h) => existsSync(path.join(HISTORIES_DIR, h.file)));
  const used = new Set(manifest.histories.map((h) => h.recording));
  const renumber = new Map<number, number>();
  manifest.recordings = manifest.recordings.filter((_, i) => {
    if (!used.has(i)) return false;
    renumber.set(i, renumber.size);
    return true;
  });
  for (const h of manifest.histories) h.recording = renumber.get(h.recording) as number;
  manifest.histories.sort((a, b) => a.file.localeCompare(b.file));
  await writeFile(path.join(HISTORIES_DIR, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`[record] ${recorded.length} histories written to ${path.relative(repoRoot, HISTORIES_DIR)}`);
}

await main();
