import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoadTestActivities } from '../../activities/loadtest.js';
import { specActivities } from '../../activities/spec.js';
import { ProbeCanaryAnalyzer } from '../../src/analysis/probe.js';
import type { LoadTestRequestInput } from '../../src/domain/load-test.js';
import type { LoadTestReport } from '../../src/loadtest/report.js';
import { FsArtifactStore } from '../../src/storage/fs.js';
import { TASK_QUEUES } from '../../workflows/definitions.js';
import { loadTest } from '../../workflows/index.js';
import type { LoadTestWorkflowInput, LoadTestWorkflowResult } from '../../workflows/load-test.js';
import { freePort } from '../support/ports.js';
import { startSimulator, type TestSimulator } from '../support/simulator.js';
import { createTimeSkippingEnv, workflowBundle } from '../support/temporal.js';

// The loadTest workflow on the time-skipping server, with the real activities: the load
// generator against the serving simulator, reports into a filesystem artifact store.

let env: TestWorkflowEnvironment;
let sim: TestSimulator;
let storeDir: string;
let store: FsArtifactStore;
/** The worker's only prompt root in this file. */
let promptDir: string;
let stopWorkers: () => Promise<void>;

beforeAll(async () => {
  env = await createTimeSkippingEnv();
  sim = await startSimulator({ ttftMs: 20, tpotMs: 4, jitterSigma: 0.1 });
  storeDir = await mkdtemp(path.join(tmpdir(), 'qwenops-loadtest-store-'));
  store = new FsArtifactStore(storeDir);
  promptDir = await mkdtemp(path.join(tmpdir(), 'qwenops-loadtest-prompts-'));
  const activities = createLoadTestActivities({
    store,
    analyzer: new ProbeCanaryAnalyzer(),
    confinement: { promptRoots: [promptDir], loadTestTargets: ['127.0.0.1', 'localhost'] },
  });
  const common = { connection: env.nativeConnection };
  const workers = await Promise.all([
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.default,
      workflowBundle: await workflowBundle(),
      activities: specActivities,
    }),
    Worker.create({ ...common, taskQueue: TASK_QUEUES.cluster, activities }),
  ]);
  const running = workers.map((w) => w.run());
  stopWorkers = async () => {
    for (const w of workers) w.shutdown();
    await Promise.all(running);
  };
});

afterAll(async () => {
  await stopWorkers?.();
  await env?.teardown();
  await sim?.close();
  if (storeDir) await rm(storeDir, { recursive: true, force: true });
  if (promptDir) await rm(promptDir, { recursive: true, force: true });
});

function start(input: LoadTestWorkflowInput, workflowId = `loadtest-${randomUUID()}`) {
  return env.client.workflow.start(loadTest, { args: [input], taskQueue: TASK_QUEUES.default, workflowId });
}

async function failureOf(promise: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

const request = (extra: Record<string, unknown> = {}): LoadTestRequestInput =>
  ({
    url: sim.baseUrl,
    mode: 'closed',
    concurrency: 2,
    maxRequests: 20,
    maxTokens: 8,
    ...extra,
  }) as LoadTestRequestInput;

describe('loadTest workflow', () => {
  it('runs the load, stores JSON and HTML reports, and returns the verdict', async () => {
    const workflowId = `loadtest-pass-${randomUUID()}`;
    const input: LoadTestWorkflowInput = {
      request: request({ slo: { p99E2eMs: 10_000, maxErrorRatePct: 0 } }),
    };
    const result = await (await start(input, workflowId)).result();
    expect(result.passed).toBe(true);
    expect(result.workflowId).toBe(workflowId);
    expect(result.summary).toMatchObject({ requests: 20, ok: 20, errorRatePct: 0 });
    expect(result.description).toMatch(/20 requests .*closed loop/);
    expect(result.slo.map((s) => s.met)).toEqual([true, true]);
    const report = await store.getJson<LoadTestReport>(store.keyFromUri(result.reportJsonUri));
    expect(report).toMatchObject({ kind: 'qwenops.loadtest', id: workflowId, results: { requests: 20 } });
    expect(store.keyFromUri(result.reportJsonUri)).toMatch(
      /^runs\/loadtest-pass-[a-z0-9-]+\/load-test\/report\.json$/,
    );
    const html = (await store.getBuffer(store.keyFromUri(result.reportHtmlUri))).toString('utf8');
    expect(html).toContain('<canvas id="cdf">');
    expect(result.reportUri).toBe(result.reportHtmlUri);
  });

  it('fails with LoadTestSloMissed, saying which SLO, unless told not to', async () => {
    const missed = request({ slo: { p50E2eMs: 1 } });
    const failure = await failureOf((await start({ request: missed })).result());
    expect(failure.type).toBe('LoadTestSloMissed');
    expect(failure.message).toMatch(
      /load test missed its SLOs: p50 E2E [\d.]+ ms misses SLO <= 1 ms \(report file:\/\//,
    );
    const tolerated = (await (
      await start({ request: missed, failOnSloMiss: false })
    ).result()) as LoadTestWorkflowResult;
    expect(tolerated.passed).toBe(false);
    expect(tolerated.reasons[0]).toMatch(/p50 E2E/);
  });

  it('refuses bad input at start, naming every field, without loading anything', async () => {
    const before = sim.stats().requests.total;
    const failure = await failureOf(
      (await start({ request: { url: 'localhost', requestsPerSecond: 0, concurrency: 1e9 } })).result(),
    );
    expect(failure.type).toBe('InvalidInput');
    expect(failure.message).toMatch(/url: must be an absolute http\(s\) URL/);
    expect(failure.message).toMatch(/requestsPerSecond: must be > 0/);
    expect(failure.message).toMatch(/concurrency: must be <= 10000/);
    expect(sim.stats().requests.total).toBe(before);
    // Deliberately outside the input type: what a Temporal UI start form can send.
    const noRequest = await failureOf((await start({} as LoadTestWorkflowInput)).result());
    expect(noRequest.message).toMatch(/invalid load test request: \(root\): expected a JSON object/);
  });

  it('retries an unreachable endpoint, then fails saying it cannot reach it', async () => {
    const port = await freePort();
    const err = await (await start({ request: { url: `http://127.0.0.1:${port}/v1`, maxRequests: 1 } }))
      .result()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const activityFailure = (err as WorkflowFailedError).cause;
    const cause = (activityFailure as { cause?: ApplicationFailure }).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause?.type).toBe('LoadTargetUnreachable');
    expect(cause?.message).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+: cannot connect: ECONNREFUSED/);
  });

  it('stops the load when the workflow is cancelled', async () => {
    sim.resetStats();
    // A short heartbeat timeout: the SDK heartbeats (and so learns of a cancellation) at 80 % of it.
    const handle = await start({
      request: request({
        mode: 'open',
        requestsPerSecond: 20,
        maxRequests: undefined,
        durationSeconds: 120,
        maxTokens: 200,
        ignoreEos: true,
      }),
      heartbeatTimeoutSeconds: 2,
    });
    // Wait until the load is flowing, then cancel.
    const deadline = Date.now() + 20_000;
    while (sim.stats().requests.total < 5 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(sim.stats().requests.total).toBeGreaterThanOrEqual(5);
    await handle.cancel();
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    // The activity learns of the cancellation on its next heartbeat and aborts its requests.
    const until = Date.now() + 15_000;
    while ((sim.stats().running > 0 || sim.stats().requests.aborted === 0) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sim.stats().requests.aborted).toBeGreaterThan(0);
    expect(sim.stats().running).toBe(0);
    const total = sim.stats().requests.total;
    await new Promise((r) => setTimeout(r, 500));
    expect(sim.stats().requests.total).toBe(total); // no new requests after the stop
  });
});

describe('loadTest workflow confinement (prompt roots, target allowlist)', () => {
  /** Runs a test that must be refused: InvalidInput, not retried, nothing sent to the server. */
  async function refused(input: LoadTestWorkflowInput): Promise<ApplicationFailure> {
    const before = sim.stats().requests.total;
    const err = await (await start(input)).result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    let cause: unknown = (err as WorkflowFailedError).cause;
    // Refused in the activity: the ActivityFailure wraps the non-retryable ApplicationFailure.
    if (!(cause instanceof ApplicationFailure)) cause = (cause as { cause?: unknown }).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    const failure = cause as ApplicationFailure;
    expect(failure.type).toBe('InvalidInput');
    expect(failure.nonRetryable).toBe(true);
    expect(sim.stats().requests.total).toBe(before);
    return failure;
  }

  it('refuses a prompt file outside the prompt roots (/etc/passwd, /etc/shadow) without echoing it', async () => {
    for (const file of ['/etc/passwd', '/etc/shadow']) {
      const failure = await refused({ request: request({ prompts: { kind: 'jsonl', path: file } }) });
      expect(failure.message).toMatch(/prompts\.path: .* is outside the allowed prompt file roots/);
      expect(failure.message).toMatch(/confinement\.promptRoots, QWENOPS_PROMPT_ROOTS/);
      expect(failure.message).not.toMatch(/root:|nologin|\/bin\/(ba)?sh/);
    }
  });

  it('refuses a symlink inside a prompt root that points outside it', async () => {
    const link = path.join(promptDir, 'innocent.jsonl');
    await symlink('/etc/passwd', link);
    const failure = await refused({ request: request({ prompts: { kind: 'jsonl', path: link } }) });
    expect(failure.message).toMatch(/prompts\.path: .* resolves \(through a symlink\) outside the allowed/);
    expect(failure.message).not.toMatch(/root:|nologin/);
  });

  it('refuses "../" traversal at start, naming the field', async () => {
    const failure = await failureOf(
      (
        await start({
          request: request({ prompts: { kind: 'jsonl', path: `${promptDir}/../../etc/passwd` } }),
        })
      ).result(),
    );
    expect(failure.type).toBe('InvalidInput');
    expect(failure.message).toMatch(/prompts\.path: must not contain "\.\." segments/);
  });

  it('refuses a target URL outside the allowlist', async () => {
    for (const url of [
      'http://10.0.0.1:8000/v1',
      'http://169.254.169.254/latest',
      'http://127.0.0.1@example.com/v1',
    ]) {
      const failure = await refused({ request: request({ url }) });
      expect(failure.message).toMatch(
        /url: .* is not an allowed load-test target \(confinement\.loadTestTargets/,
      );
    }
  });

  it('still runs a prompt file inside a prompt root against an allowed target', async () => {
    const file = path.join(promptDir, 'prompts.jsonl');
    await writeFile(file, '{"prompt":"你好"}\n{"messages":[{"role":"user","content":"介绍一下你自己"}]}\n');
    const result = (await (
      await start({ request: request({ prompts: { kind: 'jsonl', path: file }, maxRequests: 4 }) })
    ).result()) as LoadTestWorkflowResult;
    expect(result.summary).toMatchObject({ requests: 4, ok: 4 });
  });
});
