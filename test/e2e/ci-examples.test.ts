import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseDocument } from 'htmlparser2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { EXIT } from '../../src/cli/exit-codes.js';
import { releaseWorkflowId } from '../../src/cli/pipeline-client.js';
import type { ServingRef } from '../../src/domain/serving-revision.js';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import {
  githubStepSummaryOf,
  type JobResult,
  type RunOptions,
  runGithubJob,
  runGitlabJob,
} from '../support/ci-example-runner.js';
import { deployStableRevision, type PackedCli, packCli } from '../support/ci-release.js';
import { type PipelineStack, startInProcessWorkers, startPipelineStack } from '../support/pipeline-stack.js';

// The CI examples (examples/ci), run: each example's shell steps, in order, as its platform
// runs them (test/support/ci-example-runner.ts), against the real stack (Temporal dev server,
// in-process workers, MinIO as the cluster's object store, the sandbox cluster with simulated
// serving), with the secrets and variables those steps read set to the stack's values, so
// the examples cannot rot. A good release runs every step green and keeps the reports; a
// faulty one (its serving config makes the canary revision fail half its requests) fails the
// canary step with exit 2, and the example's failure handling (fetch and keep the report)
// still runs. One stack for the whole file; the releases run one after another, as the
// examples' per-service concurrency group makes them.
//
// Substituted, and only this: the runner provisioning (GitLab's `apt-get install jq awscli`;
// this host must have jq and aws, as GitHub's ubuntu runners do), the tarball URL
// (QWENOPS_CLI_TARBALL is the package `npm pack` makes here), and where `npm install
// --global` installs (npm_config_prefix: a fresh directory per job, first on PATH, dependencies
// from npm's cache). The checkout is a directory holding the release spec the commit changes.

const exec = promisify(execFile);
const EXAMPLES = path.join(repoRoot, 'examples', 'ci');
const GITHUB = path.join(EXAMPLES, 'github-actions.yml');
const GITLAB = path.join(EXAMPLES, 'gitlab-ci.yml');

/** The service both examples release (they must agree: one stable revision is deployed for it). */
const serviceName = (() => {
  const gh = parse(readFileSync(GITHUB, 'utf8')) as {
    jobs: { canary: { strategy: { matrix: { service: string[] } } } };
  };
  const gl = parse(readFileSync(GITLAB, 'utf8')) as { canary: { variables: { QWENOPS_SERVICE: string } } };
  const fromGithub = gh.jobs.canary.strategy.matrix.service[0] as string;
  if (fromGithub !== gl.canary.variables.QWENOPS_SERVICE) {
    throw new Error(
      `the examples release different services: ${fromGithub}, ${gl.canary.variables.QWENOPS_SERVICE}`,
    );
  }
  return fromGithub;
})();
const [namespace, name] = serviceName.split('/') as [string, string];
const SERVICE = { namespace, name };
const ref: ServingRef = { ...SERVICE, deploymentMode: 'Serverless' };

/** Runner provisioning the test does not do (the host has the tools). */
const GITLAB_PROVISIONING = [/^apt-get update\b.*apt-get install\b.*\bjq\b.*\bawscli\b/];

let stack: PipelineStack;
let workers: { stop(): Promise<void> };
let packed: PackedCli;
let scratch: string;
let jobCount = 0;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'qwenops-ci-examples-'));
  await mkdir(path.join(scratch, 'pack'));
  // The tools the examples' steps call that a CI runner image has (and make setup does not install).
  for (const tool of ['bash', 'jq', 'aws']) {
    await exec('bash', ['-c', `command -v ${tool}`]).catch(() => {
      throw new Error(`${tool} is not on PATH: the CI examples' steps need it (as a CI runner image has it)`);
    });
  }
  [stack, packed] = await Promise.all([startPipelineStack(), packCli(path.join(scratch, 'pack'))]);
  workers = await startInProcessWorkers(stack);
  await deployStableRevision(stack.sandbox, ref, `s3://models/${serviceName}/stable`);
});

afterAll(async () => {
  await workers?.stop();
  await stack?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/**
 * The checked-in release spec of a commit: a short plan with a small probe and wide latency
 * SLOs (two busy cores: the judge must not fail a good canary on host noise). The faulty
 * commit's serving config makes the simulated engine fail half its requests, which the
 * error-rate check catches whatever the host's speed.
 */
function releaseSpec(faulty: boolean): Record<string, unknown> {
  return {
    reason: faulty ? 'a serving config that breaks the engine' : 'a good serving config',
    quantized: false,
    serving: {
      minReplicas: 1,
      maxReplicas: 1,
      env: faulty ? { QWENOPS_SIM_ERROR_RATE_PCT: '50' } : {},
    },
    canary: {
      steps: [50, 100],
      analysisWindowSeconds: 3,
      minSamples: 8,
      probe: { requestsPerSecond: 10, maxTokens: 8, concurrency: 8 },
      slo: { p99LatencyMs: 1500, maxLatencyRatioVsStable: 20, minLatencyEffectRatio: 3 },
      // An inconclusive analysis would wait an hour for a human: roll back instead, so the
      // test fails on it (exit 2) rather than hanging.
      inconclusiveDecisionTimeoutSeconds: 120,
    },
  };
}

/** A fresh runner: checkout (the spec), the CI secrets pointing at the stack, its own npm prefix. */
async function job(faulty: boolean): Promise<{ workspace: string; sha: string; options: RunOptions }> {
  jobCount += 1;
  const sha = createHash('sha1')
    .update(`${faulty ? 'faulty' : 'good'} release ${jobCount}`)
    .digest('hex');
  const workspace = path.join(scratch, `job${jobCount}`, 'checkout');
  await mkdir(path.join(workspace, 'serving', namespace, name), { recursive: true });
  await writeFile(
    path.join(workspace, 'serving', namespace, name, 'canary.yaml'),
    stringify(releaseSpec(faulty)),
  );
  const prefix = path.join(scratch, `job${jobCount}`, 'npm-global');
  return {
    workspace,
    sha,
    options: {
      workspace,
      sha,
      secrets: {
        TEMPORAL_ADDRESS: stack.temporal.address,
        TEMPORAL_NAMESPACE: 'default',
        // Unset, as for a self-hosted server without TLS: the CLI treats empty as unset.
        TEMPORAL_API_KEY: '',
        QWENOPS_CODEC_KEY: '',
        MODELS_S3_ENDPOINT: stack.minio.endpoint,
        MODELS_S3_ACCESS_KEY: stack.minio.accessKey,
        MODELS_S3_SECRET_KEY: stack.minio.secretKey,
        QWENOPS_CLI_TARBALL: packed.tarball,
      },
      env: {
        PATH: `${path.join(prefix, 'bin')}${path.delimiter}${process.env.PATH ?? ''}`,
        npm_config_prefix: prefix,
        npm_config_prefer_offline: 'true',
        npm_config_update_notifier: 'false',
      },
      timeoutMs: 540_000,
    },
  };
}

function show(result: JobResult): string {
  return result.steps
    .map(
      (s) =>
        `--- ${s.name}: exit ${s.exitCode} (${s.seconds.toFixed(0)} s)\n${s.stderr.slice(-4000)}\n${s.stdout.slice(-2000)}`,
    )
    .join('\n');
}

function logTimings(label: string, result: JobResult): void {
  process.stderr.write(
    `${label}: ${result.steps.map((s) => `${s.name} ${s.exitCode} in ${s.seconds.toFixed(0)} s`).join('; ')}\n`,
  );
}

interface CanaryJson {
  workflowId: string;
  outcome: string;
  exitCode: number;
  startState: string;
  status?: { reportUri?: string };
}

async function expectReports(workspace: string, sha: string, faulty: boolean): Promise<CanaryJson> {
  const reports = path.join(workspace, 'reports');
  const json = JSON.parse(await readFile(path.join(reports, 'canary.json'), 'utf8')) as CanaryJson;
  expect(json).toMatchObject({
    workflowId: releaseWorkflowId(SERVICE, sha),
    startState: 'started',
    exitCode: faulty ? EXIT.rolledBack : EXIT.ok,
  });
  expect(json.outcome).toBe(faulty ? 'rolled_back' : 'promoted');
  const xml = await readFile(path.join(reports, 'canary-junit.xml'), 'utf8');
  expect(parseDocument(xml, { xmlMode: true }).children.length).toBeGreaterThan(0);
  expect(xml).toContain('<testcase ');
  if (faulty) expect(xml).toContain('<failure');
  else expect(xml).not.toContain('<failure');
  // The release report, fetched from the object store by the example's own step.
  expect(json.status?.reportUri).toMatch(/^s3:\/\//);
  const fetched = path.join(reports, path.basename(json.status?.reportUri as string));
  expect(existsSync(fetched), `${fetched} (from ${json.status?.reportUri})`).toBe(true);
  expect(JSON.parse(await readFile(fetched, 'utf8'))).toBeTypeOf('object');
  return json;
}

async function expectStable(storageUri: string): Promise<void> {
  const view = await stack.sandbox.service(namespace, name);
  const stable = view?.revisions.find((r) => r.role === 'stable');
  expect(stable?.storageUri, JSON.stringify(view)).toBe(storageUri);
  expect(view?.revisions.some((r) => r.role === 'canary')).toBe(false);
}

describe('examples/ci/github-actions.yml', () => {
  const runJob = (options: RunOptions) => runGithubJob(GITHUB, 'canary', options);

  it('runs green for a good release: installs the packed CLI, promotes, keeps JUnit, summary and report', async () => {
    const { workspace, sha, options } = await job(false);
    const result = await runJob(options);
    logTimings('github good', result);
    expect(result.passed, show(result)).toBe(true);
    expect(result.steps.map((s) => [s.name, s.exitCode])).toEqual([
      ['Install the qwenops CLI', 0],
      ['Canary release', 0],
      ['Fetch the release report', 0],
    ]);
    expect(result.actions).toEqual([
      'actions/checkout@v4',
      'actions/setup-node@v4',
      'actions/upload-artifact@v4',
    ]);
    expect(existsSync(path.join(options.env?.npm_config_prefix as string, 'bin', 'qwenops'))).toBe(true);
    await expectReports(workspace, sha, false);
    const summary = await readFile(githubStepSummaryOf(workspace), 'utf8');
    expect(summary).toContain(`Canary release of \`${serviceName}\`: promoted`);
    for (const artifact of result.artifactPaths)
      expect(await readdir(path.join(workspace, artifact))).not.toEqual([]);
    await expectStable(`s3://models/${serviceName}/${sha}`);
  });

  it('fails a faulty release with exit 2, and still fetches and uploads the report', async () => {
    const before = (await stack.sandbox.service(namespace, name))?.revisions.find((r) => r.role === 'stable');
    const { workspace, sha, options } = await job(true);
    const result = await runJob(options);
    logTimings('github faulty', result);
    expect(result.passed, show(result)).toBe(false);
    expect(
      result.steps.map((s) => [s.name, s.exitCode]),
      show(result),
    ).toEqual([
      ['Install the qwenops CLI', 0],
      ['Canary release', EXIT.rolledBack],
      ['Fetch the release report', 0],
    ]);
    expect(result.actions).toEqual([
      'actions/checkout@v4',
      'actions/setup-node@v4',
      'actions/upload-artifact@v4',
    ]);
    await expectReports(workspace, sha, true);
    const summary = await readFile(githubStepSummaryOf(workspace), 'utf8');
    expect(summary).toContain(`Canary release of \`${serviceName}\`: rolled back`);
    await expectStable(before?.storageUri as string);
  });
});

describe('examples/ci/gitlab-ci.yml', () => {
  const runJob = (options: RunOptions) =>
    runGitlabJob(GITLAB, 'canary', { ...options, skipLines: GITLAB_PROVISIONING });

  it('runs green for a good release: script and after_script, JUnit report and artifacts kept', async () => {
    const { workspace, sha, options } = await job(false);
    const result = await runJob(options);
    logTimings('gitlab good', result);
    expect(result.passed, show(result)).toBe(true);
    expect(
      result.steps.map((s) => [s.name, s.exitCode]),
      show(result),
    ).toEqual([
      ['script', 0],
      ['after_script', 0],
    ]);
    expect(result.skipped).toHaveLength(1);
    await expectReports(workspace, sha, false);
    expect(existsSync(path.join(workspace, result.junitReport as string))).toBe(true);
    const summary = await readFile(path.join(workspace, 'reports', 'canary-summary.md'), 'utf8');
    expect(summary).toContain(`Canary release of \`${serviceName}\`: promoted`);
    for (const artifact of result.artifactPaths)
      expect(await readdir(path.join(workspace, artifact))).not.toEqual([]);
    await expectStable(`s3://models/${serviceName}/${sha}`);
  });

  it('fails a faulty release with exit 2, and after_script still fetches the report', async () => {
    const before = (await stack.sandbox.service(namespace, name))?.revisions.find((r) => r.role === 'stable');
    const { workspace, sha, options } = await job(true);
    const result = await runJob(options);
    logTimings('gitlab faulty', result);
    expect(result.passed, show(result)).toBe(false);
    expect(
      result.steps.map((s) => [s.name, s.exitCode]),
      show(result),
    ).toEqual([
      ['script', EXIT.rolledBack],
      ['after_script', 0],
    ]);
    await expectReports(workspace, sha, true);
    expect(existsSync(path.join(workspace, result.junitReport as string))).toBe(true);
    await expectStable(before?.storageUri as string);
  });
});
