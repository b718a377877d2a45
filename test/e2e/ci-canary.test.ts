import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WorkflowExecutionStatusName } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parseDocument } from 'htmlparser2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT } from '../../src/cli/exit-codes.js';
import { releaseWorkflowId } from '../../src/cli/pipeline-client.js';
import { loadConfig } from '../../src/config/config.js';
import type { ServingRef } from '../../src/domain/serving-revision.js';
import { nodeEntrypoint } from '../../src/runtime/entrypoints.js';
import { deployStableRevision, packCli } from '../support/ci-release.js';
import { type PipelineStack, startInProcessWorkers } from '../support/pipeline-stack.js';
import { startSandboxCluster, type TestSandboxCluster } from '../support/sandbox.js';
import { createDevServerEnv } from '../support/temporal.js';

// `qwenops canary` the way CI runs it, against the real stack (dev server, workers, sandbox
// cluster): idempotent starts (attach to a running release of the same id, report a finished
// one without starting it again), the service lease refusing another release and naming its
// holder, SIGTERM/SIGINT (detach, or abort with --abort-on-cancel) with their exit codes,
// JUnit and Markdown reports, and the package `npm pack` makes, installed in a scratch
// directory and run from there to the end of a release.

const exec = promisify(execFile);
const SERVICE = { namespace: 'llm-prod', name: 'qwen-ci' };
const ref: ServingRef = { ...SERVICE, deploymentMode: 'Serverless' };

let stack: Stack;
let workers: { stop(): Promise<void> };
let scratch: string;

/** What these tests need of a stack: no hub, no MinIO (the artifact store is a directory). */
interface Stack {
  temporal: TestWorkflowEnvironment;
  sandbox: TestSandboxCluster;
  env: Record<string, string>;
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'qwenops-ci-'));
  const storeDir = path.join(scratch, 'store');
  const [temporal, sandbox] = await Promise.all([
    createDevServerEnv(),
    startSandboxCluster({ storeDir, extraEnv: { QWENOPS_ENGINE: 'simulator' } }),
  ]);
  const env: Record<string, string> = {
    QWENOPS_STORE: 'fs',
    QWENOPS_STORE_DIR: storeDir,
    QWENOPS_STATE_DIR: path.join(scratch, 'state'),
    QWENOPS_TEMPORAL_ADDRESS: temporal.address,
    QWENOPS_CLUSTER: 'sandbox',
    QWENOPS_SANDBOX_URL: sandbox.url,
    QWENOPS_SANDBOX_TOKEN_FILE: sandbox.tokenFile,
    QWENOPS_METRICS_ADDRESS: '',
    QWENOPS_LOG_LEVEL: process.env.QWENOPS_TEST_LOG_LEVEL ?? 'warn',
  };
  stack = { temporal, sandbox, env };
  workers = await startInProcessWorkers({ temporal } as PipelineStack, loadConfig({ env }));
  // The stable revision the releases canary against.
  await deployStableRevision(stack.sandbox, ref, 'file:///models/qwen-ci-stable');
});

afterAll(async () => {
  await workers?.stop();
  await stack?.sandbox.stop().catch(() => undefined);
  await stack?.temporal.teardown().catch(() => undefined);
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

interface Cli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }>;
  /** Resolves once stderr matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

function run(argv: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Cli {
  const [cmd, ...args] = argv;
  const started = Date.now();
  const child = spawn(cmd as string, args, {
    env: options.env ?? { ...process.env, ...stack.env, USER: 'e2e', CI: 'true' },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
    for (const w of [...waiters]) {
      if (w.pattern.test(stderr)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string; seconds: number }>(
    (resolve) =>
      child.on('exit', (code) => resolve({ code, stdout, stderr, seconds: (Date.now() - started) / 1000 })),
  );
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    done,
    waitFor(pattern, timeoutMs = 120_000) {
      if (pattern.test(stderr)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern} in:\n${stderr}\n${stdout}`)),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        void done.then(() => {
          clearTimeout(timer);
          if (!pattern.test(stderr)) reject(new Error(`exited before ${pattern}:\n${stderr}\n${stdout}`));
        });
      });
    },
  };
}

function qwenops(args: string[]): Cli {
  return run([...nodeEntrypoint('src/cli/main'), ...args]);
}

// A short plan with a small probe and wide SLOs (two busy cores): these tests are about what
// the CLI does, not about the judge.
const plan = (steps: string, windowSeconds: number) => [
  ...['--set', `canary.steps=${steps}`],
  ...['--set', `canary.analysisWindowSeconds=${windowSeconds}`],
  ...['--set', 'canary.minSamples=8'],
  ...['--set', 'canary.probe={"requestsPerSecond":10,"maxTokens":8,"concurrency":8}'],
  // No fault is injected here: a 3x minimum effect keeps host noise from failing a canary.
  ...['--set', 'canary.slo={"p99LatencyMs":1500,"maxLatencyRatioVsStable":20,"minLatencyEffectRatio":3}'],
];

const canary = (release: string, storage: string, ...more: string[]) => [
  'canary',
  ...['--service', `${SERVICE.namespace}/${SERVICE.name}`],
  ...['--storage-uri', `file:///models/${storage}`],
  ...['--release', release],
  ...more,
];

async function describeRun(workflowId: string): Promise<WorkflowExecutionStatusName> {
  const d = await stack.temporal.client.workflow.getHandle(workflowId).describe();
  return d.status.name;
}

async function runsOf(workflowId: string): Promise<number> {
  let n = 0;
  for await (const _ of stack.temporal.client.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
    n += 1;
  return n;
}

describe('qwenops canary in CI', () => {
  const r1 = releaseWorkflowId(SERVICE, 'r1');

  it('attaches a second start of the same release, refuses another release of the service naming the holder, and writes the reports', async () => {
    const junit = path.join(scratch, 'r1', 'junit.xml');
    const summary = path.join(scratch, 'r1', 'summary.md');
    await mkdir(path.dirname(summary), { recursive: true });
    await writeFile(summary, '# earlier step\n');
    const first = qwenops(
      canary('r1', 'qwen-ci-v2', ...plan('[20,50,100]', 3), '--wait', '--junit', junit, '--summary', summary),
    );
    await first.waitFor(new RegExp(`started ${r1}`));
    await first.waitFor(/\] canary /);

    const again = qwenops(canary('r1', 'qwen-ci-v2', ...plan('[20,50,100]', 3), '--wait'));
    const other = qwenops(canary('r2', 'qwen-ci-v3', ...plan('[50,100]', 2), '--wait'));
    const [a, b, c] = await Promise.all([first.done, again.done, other.done]);

    expect(a.code, `${a.stdout}\n${a.stderr}`).toBe(0);
    expect(a.stdout).toContain(`${r1}: promoted`);
    expect(b.code, `${b.stdout}\n${b.stderr}`).toBe(0);
    expect(b.stderr).toContain(`${r1} is already running: attaching to it`);
    expect(b.stdout).toContain(`${r1}: promoted`);
    expect(await runsOf(r1)).toBe(1);

    const r2 = releaseWorkflowId(SERVICE, 'r2');
    expect(c.code, `${c.stdout}\n${c.stderr}`).toBe(EXIT.serviceBusy);
    expect(c.stdout).toContain(`service llm-prod/qwen-ci is being rolled out by workflow ${r1}`);
    expect(c.stdout).toContain(`refused: another release, ${r1}, holds the lease on this service`);
    expect(await describeRun(r2)).toBe('FAILED');

    // JUnit: a case per analysis step (3) and per gate; all passing.
    const xml = await readFile(junit, 'utf8');
    expect(parseDocument(xml, { xmlMode: true }).children.length).toBeGreaterThan(0);
    const cases = xml.match(/<testcase /g) ?? [];
    expect(cases.length).toBeGreaterThanOrEqual(3 + 4);
    expect(xml).not.toContain('<failure');
    expect(xml).toContain('analysis step 3 at 100% canary traffic');
    const md = await readFile(summary, 'utf8');
    expect(md.startsWith('# earlier step\n')).toBe(true);
    expect(md).toContain('Canary release of `llm-prod/qwen-ci`: promoted');
    expect(md).toMatch(/\| 3 \| 100% \| ✅ pass \|/);
    expect(md).toMatch(/mann-whitney-u \| [\d.]+ \| [\de.-]+ \|/);
  });

  it('reports a finished release again, with its exit code, without starting it again', async () => {
    const json = qwenops(['--json', ...canary('r1', 'qwen-ci-v2', '--wait')]);
    const done = await json.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stderr).toContain(`${r1} has already finished: not starting it again`);
    const parsed = JSON.parse(done.stdout) as { startState: string; outcome: string; exitCode: number };
    expect(parsed).toMatchObject({ startState: 'finished', outcome: 'promoted', exitCode: 0 });
    expect(await runsOf(r1)).toBe(1);

    // The refused release too: it stays refused (exit 4), it is not started again.
    const r2 = releaseWorkflowId(SERVICE, 'r2');
    const refused = await qwenops(canary('r2', 'qwen-ci-v3', '--wait')).done;
    expect(refused.code).toBe(EXIT.serviceBusy);
    expect(await runsOf(r2)).toBe(1);
  });

  it('detaches on SIGTERM (the release goes on), and aborts on SIGINT with --abort-on-cancel', async () => {
    const r3 = releaseWorkflowId(SERVICE, 'r3');
    const summary = path.join(scratch, 'r3', 'summary.md');
    const first = qwenops(
      canary(
        'r3',
        'qwen-ci-v4',
        ...plan('[10,20,50,100]', 6),
        '--wait',
        '--progress-every',
        '1',
        '--summary',
        summary,
      ),
    );
    await first.waitFor(/\] canary /);
    // Nothing changes during an analysis window: the progress line is repeated anyway.
    await first.waitFor(/no change for \d+ s/, 60_000);
    first.child.kill('SIGTERM');
    const detached = await first.done;
    expect(detached.code, detached.stderr).toBe(EXIT.cancelledDetached);
    expect(detached.stderr).toMatch(/SIGTERM: detached from canary-llm-prod-qwen-ci-r3: the release goes on/);
    expect(await describeRun(r3)).toBe('RUNNING');
    expect(await readFile(summary, 'utf8')).toContain('the CLI detached, the release goes on');

    const second = qwenops(
      canary('r3', 'qwen-ci-v4', ...plan('[10,20,50,100]', 6), '--wait', '--abort-on-cancel'),
    );
    await second.waitFor(/is already running: attaching to it/);
    await second.waitFor(/\] canary /);
    const signalledAt = Date.now();
    second.child.kill('SIGINT');
    const aborted = await second.done;
    expect(aborted.code, aborted.stderr).toBe(EXIT.cancelledAborted);
    expect(Date.now() - signalledAt).toBeLessThan(8_000);
    expect(aborted.stderr).toMatch(/abort accepted by canary-llm-prod-qwen-ci-r3/);

    // The release rolls back with the CI's reason, and the CLI reports that when asked again.
    const after = await qwenops(canary('r3', 'qwen-ci-v4', '--wait')).done;
    expect(after.code).toBe(EXIT.error);
    expect(after.stdout).toMatch(/canary-llm-prod-qwen-ci-r3: aborted — .*CI job cancelled/);
  });
});

describe('the installable package', () => {
  it('packs, installs into a scratch directory and runs canary --wait from there to the end', async () => {
    const dest = path.join(scratch, 'pack');
    const app = path.join(scratch, 'app');
    await mkdir(dest, { recursive: true });
    await mkdir(app, { recursive: true });
    // prepack builds dist/ (tsc), then the files list decides what goes in.
    const info = await packCli(dest);
    const files = info.files;
    expect(files).toContain('bin/qwenops.js');
    expect(files).toContain('dist/src/cli/main.js');
    expect(files.filter((f) => /^(src|test|workflows|activities|workers)\/|\.ts$|\.map$/.test(f))).toEqual(
      [],
    );
    const tarball = info.tarball;

    await writeFile(path.join(app, 'package.json'), '{"name":"ci-scratch","private":true}\n');
    const t = Date.now();
    await exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], {
      cwd: app,
      maxBuffer: 64 * 1024 * 1024,
    });
    const installSeconds = (Date.now() - t) / 1000;
    const bin = path.join(app, 'node_modules', '.bin', 'qwenops');
    expect((await stat(bin)).isFile()).toBe(true);
    process.stderr.write(
      `package: ${info.filename} ${info.size / 1000} kB packed, ${info.unpackedSize / 1000} kB unpacked, ${files.length} files; npm pack ${info.seconds.toFixed(0)} s, install ${installSeconds.toFixed(0)} s\n`,
    );

    // Only what CI has: PATH, HOME and the standard TEMPORAL_* variables; no repository.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TEMPORAL_ADDRESS: stack.temporal.address,
      TEMPORAL_NAMESPACE: 'default',
      CI: 'true',
    };
    const junit = path.join(app, 'reports', 'junit.xml');
    const cli = run(
      [bin, '--json', ...canary('pkg', 'qwen-ci-v5', ...plan('[50,100]', 2), '--wait', '--junit', junit)],
      { env, cwd: app },
    );
    const done = await cli.done;
    expect(done.code, `${done.stdout}\n${done.stderr}`).toBe(0);
    const result = JSON.parse(done.stdout) as { workflowId: string; outcome: string; exitCode: number };
    expect(result).toMatchObject({
      workflowId: releaseWorkflowId(SERVICE, 'pkg'),
      outcome: 'promoted',
      exitCode: 0,
    });
    expect(await readFile(junit, 'utf8')).toContain('<testsuites');
  });
});
