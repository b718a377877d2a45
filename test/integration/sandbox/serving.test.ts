import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCanaryAnalyzer } from '../../../src/analysis/index.js';
import { StoreAuditLog } from '../../../src/audit/audit-log.js';
import { ClusterError } from '../../../src/cluster/port.js';
import { isAlive } from '../../../src/cluster/sandbox/process-group.js';
import { sloSchema } from '../../../src/domain/promotion-spec.js';
import type { ServingRef, ServingRevisionSpec } from '../../../src/domain/serving-revision.js';
import { OpenAiClient } from '../../../src/llm/client.js';
import { ServingService } from '../../../src/services/serving-rollout.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { startSandboxCluster, type TestSandboxCluster } from '../../support/sandbox.js';

let cluster: TestSandboxCluster;

function revision(storageUri: string, env: Record<string, string> = {}): ServingRevisionSpec {
  return {
    storageUri,
    image: 'vllm/vllm-openai:v0.11.0',
    servedModelName: 'qwen-7b-chat',
    vllm: {
      trustRemoteCode: true,
      maxModelLen: 8192,
      gpuMemoryUtilization: 0.92,
      enablePrefixCaching: true,
      dtype: 'auto',
      tensorParallelSize: 1,
      extraArgs: [],
    },
    env,
    minReplicas: 1,
    maxReplicas: 1,
    gpusPerReplica: 1,
    gpuType: 'A10',
    labels: { 'qwenops.io/workflow-id': 'wf-serving-test' },
  };
}

const wait = (ref: ServingRef, canary: number | undefined) =>
  cluster.backend.waitForTraffic(ref, canary, { deadline: Date.now() + 60_000 });

/** Sends `n` chat requests through the service URL; returns the revision that answered each. */
async function send(url: string, n: number, concurrency = 10): Promise<{ revision: string; ms: number }[]> {
  const out: { revision: string; ms: number }[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const started = performance.now();
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ messages: [{ role: 'user', content: '路由' }], max_tokens: 2 }),
      });
      await response.text();
      expect(response.status).toBe(200);
      out.push({
        revision: response.headers.get('x-qwenops-revision') as string,
        ms: performance.now() - started,
      });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

const hits = (answers: { revision: string }[], revision: string | undefined) =>
  answers.filter((a) => a.revision === revision).length;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  cluster = await startSandboxCluster({ extraEnv: { QWENOPS_SIM_TTFT_MS: '2', QWENOPS_SIM_TPOT_MS: '1' } });
});
afterAll(async () => {
  await cluster?.stop();
});

describe('sandbox serving (KServe Serverless canary semantics)', () => {
  const ref: ServingRef = { namespace: 'llm-prod', name: 'qwen-chat', deploymentMode: 'Serverless' };

  it('deploys a stable revision at 100 %, adopts an identical deploy, refuses a different one', async () => {
    const created = await cluster.backend.deployService(ref, revision('file:///models/qwen-7b-chat'));
    expect(created.latestCreatedRevision).toBe('qwen-chat-predictor-00001');
    const ready = await wait(ref, undefined);
    expect(ready.ready).toBe(true);
    expect(ready.traffic).toEqual([
      expect.objectContaining({
        revision: 'qwen-chat-predictor-00001',
        percent: 100,
        storageUri: 'file:///models/qwen-7b-chat',
      }),
    ]);
    expect(ready.conditions.map((c) => `${c.type}=${c.status}`)).toEqual([
      'PredictorReady=True',
      'RoutesReady=True',
      'Ready=True',
    ]);
    expect(ready.latestRolledoutRevision).toBe('qwen-chat-predictor-00001');
    expect(ready.stableStorageUri).toBe('file:///models/qwen-7b-chat');
    const again = await cluster.backend.deployService(ref, revision('file:///models/qwen-7b-chat'));
    expect(again.latestCreatedRevision).toBe('qwen-chat-predictor-00001');
    const conflict = await cluster.backend
      .deployService(ref, revision('file:///models/other'))
      .catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(ClusterError);
    expect(conflict).toMatchObject({ code: 'Conflict', retryable: false });

    const answers = await send(ready.url as string, 20);
    expect(hits(answers, 'qwen-chat-predictor-00001')).toBe(20);
    // The simulator says what it is, through the proxy too.
    const models = await new OpenAiClient({ baseUrl: `${ready.url}/v1` }).models();
    expect(models[0]?.owned_by).toBe('qwenops-simulator');
  });

  it('sends exactly 10 of 100 requests to a 10 % canary, then 50 of 100 at 50 %', async () => {
    const started = await cluster.backend.startCanary(ref, revision('file:///models/qwen-7b-chat-awq'), 10);
    expect(started.latestCreatedRevision).toBe('qwen-chat-predictor-00002');
    const status = await wait(ref, 10);
    expect(status.traffic).toEqual([
      expect.objectContaining({ revision: 'qwen-chat-predictor-00001', percent: 90, tag: 'prev' }),
      expect.objectContaining({ revision: 'qwen-chat-predictor-00002', percent: 10, tag: 'latest' }),
    ]);
    expect(status.canaryStorageUri).toBe('file:///models/qwen-7b-chat-awq');
    // Adopting the identical canary (a retried activity) creates no third revision.
    const adopted = await cluster.backend.startCanary(ref, revision('file:///models/qwen-7b-chat-awq'), 10);
    expect(adopted.latestCreatedRevision).toBe('qwen-chat-predictor-00002');
    const differentCanary = await cluster.backend
      .startCanary(ref, revision('file:///models/x'), 10)
      .catch((e: unknown) => e);
    expect(differentCanary).toMatchObject({ code: 'Conflict' });

    expect(hits(await send(status.url as string, 100), 'qwen-chat-predictor-00002')).toBe(10);
    await cluster.backend.setCanaryTraffic(ref, 50);
    const half = await wait(ref, 50);
    expect(hits(await send(half.url as string, 100), 'qwen-chat-predictor-00002')).toBe(50);
    const view = await cluster.service(ref.namespace, ref.name);
    expect(view?.revisions.map((r) => [r.name, r.weight])).toEqual([
      ['qwen-chat-predictor-00001', 50],
      ['qwen-chat-predictor-00002', 50],
    ]);
    expect(view?.revisions.find((r) => r.name === 'qwen-chat-predictor-00002')?.requests).toBe(60);
  });

  it('rolls back: 100 % to stable, no canary hits, canary process stopped', async () => {
    const canaryPid = (await cluster.service(ref.namespace, ref.name))?.revisions.find(
      (r) => r.role === 'canary',
    )?.pid;
    expect(canaryPid).toBeGreaterThan(0);
    const rolledBack = await cluster.backend.rollbackCanary(ref);
    expect(rolledBack.canaryPercent).toBeUndefined();
    expect(rolledBack.traffic.map((t) => [t.revision, t.percent])).toEqual([
      ['qwen-chat-predictor-00001', 100],
    ]);
    expect(hits(await send(rolledBack.url as string, 100), 'qwen-chat-predictor-00002')).toBe(0);
    await until('the canary process to stop', () => !isAlive(canaryPid as number));
    expect(rolledBack.latestCreatedRevision).toBe('qwen-chat-predictor-00002');
    // Promoting after a rollback is refused; rolling back again is a no-op.
    expect(await cluster.backend.promoteCanary(ref).catch((e: unknown) => e)).toMatchObject({
      code: 'Conflict',
    });
    expect((await cluster.backend.rollbackCanary(ref)).traffic).toHaveLength(1);
  });

  it('promotes a canary: it becomes the stable revision at 100 % and the old process stops', async () => {
    const oldPid = (await cluster.service(ref.namespace, ref.name))?.revisions[0]?.pid as number;
    await cluster.backend.startCanary(ref, revision('file:///models/qwen-7b-chat-awq-v2'), 25);
    await wait(ref, 25);
    const promoted = await cluster.backend.promoteCanary(ref);
    expect(promoted).toMatchObject({
      latestRolledoutRevision: 'qwen-chat-predictor-00003',
      previousRolledoutRevision: 'qwen-chat-predictor-00001',
      stableStorageUri: 'file:///models/qwen-7b-chat-awq-v2',
    });
    expect(promoted.canaryPercent).toBeUndefined();
    expect(promoted.traffic.map((t) => [t.revision, t.percent])).toEqual([
      ['qwen-chat-predictor-00003', 100],
    ]);
    await wait(ref, undefined);
    expect(hits(await send(promoted.url as string, 30), 'qwen-chat-predictor-00003')).toBe(30);
    await until('the old stable process to stop', () => !isAlive(oldPid));
    // A retried promote is success, not an error.
    expect((await cluster.backend.promoteCanary(ref)).latestRolledoutRevision).toBe(
      'qwen-chat-predictor-00003',
    );
    const view = await cluster.service(ref.namespace, ref.name);
    expect(view?.history).toEqual([
      {
        name: 'qwen-chat-predictor-00002',
        storageUri: 'file:///models/qwen-7b-chat-awq',
        outcome: 'rolled-back',
        readySeconds: expect.any(Number),
      },
      {
        name: 'qwen-chat-predictor-00001',
        storageUri: 'file:///models/qwen-7b-chat',
        outcome: 'replaced',
        readySeconds: expect.any(Number),
      },
    ]);
  });

  it('applies QWENOPS_SIM_* per revision: a canary with extra latency is measurably slower', async () => {
    const slowRef: ServingRef = { namespace: 'llm-prod', name: 'latency', deploymentMode: 'Serverless' };
    await cluster.backend.deployService(slowRef, revision('file:///models/a'));
    await wait(slowRef, undefined);
    await cluster.backend.startCanary(
      slowRef,
      revision('file:///models/b', { QWENOPS_SIM_EXTRA_LATENCY_MS: '60' }),
      50,
    );
    const status = await wait(slowRef, 50);
    const answers = await send(status.url as string, 40, 4);
    const stable = answers.filter((a) => a.revision === 'latency-predictor-00001').map((a) => a.ms);
    const canary = answers.filter((a) => a.revision === 'latency-predictor-00002').map((a) => a.ms);
    expect(stable).toHaveLength(20);
    expect(median(canary)).toBeGreaterThan(median(stable));
    // Tag URLs reach one revision only: the canary's own stats saw its 20 requests.
    const canaryUrl = status.traffic.find((t) => t.tag === 'latest')?.url as string;
    const stats = (await (await fetch(`${canaryUrl}/admin/stats`)).json()) as {
      requests: { completed: number };
      revision: string;
    };
    expect(stats).toMatchObject({ revision: 'latency-predictor-00002', requests: { completed: 20 } });
  });

  it('moves weights only once the canary revision is healthy', async () => {
    const slowStart: ServingRef = { namespace: 'llm-prod', name: 'slow-start', deploymentMode: 'Standard' };
    await cluster.backend.deployService(slowStart, revision('file:///models/a'));
    const stable = await wait(slowStart, undefined);
    const started = await cluster.backend.startCanary(
      slowStart,
      revision('file:///models/b', { QWENOPS_SIM_STARTUP_DELAY_MS: '3000' }),
      50,
    );
    // Still loading: the split is not applied and the status says why.
    expect(started.ready).toBe(false);
    expect(started.canaryPercent).toBeUndefined();
    expect(started.conditions.find((c) => c.type === 'RoutesReady')).toMatchObject({
      status: 'False',
      reason: 'TrafficNotApplied',
    });
    expect(hits(await send(stable.url as string, 10), 'slow-start-predictor-00002')).toBe(0);
    const progress: string[] = [];
    const ready = await cluster.backend.waitForTraffic(slowStart, 50, {
      deadline: Date.now() + 60_000,
      onProgress: (m) => progress.push(m),
    });
    expect(progress[0]).toMatch(/ready=false/);
    expect(hits(await send(ready.url as string, 100), 'slow-start-predictor-00002')).toBe(50);
  });

  it('refuses a canary in RawDeployment mode (KServe ignores canaryTrafficPercent there)', async () => {
    const raw: ServingRef = { namespace: 'llm-prod', name: 'raw', deploymentMode: 'RawDeployment' };
    await cluster.backend.deployService(raw, revision('file:///models/a'));
    const refused = await cluster.backend
      .startCanary(raw, revision('file:///models/b'), 10)
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'Unsupported', retryable: false });
  });

  it('streams SSE through the proxy without buffering it away', async () => {
    const status = await wait(ref, undefined);
    const client = new OpenAiClient({ baseUrl: `${status.url}/v1` });
    const chunks = [];
    for await (const chunk of client.chatStream({
      model: 'qwen-7b-chat',
      messages: [{ role: 'user', content: '流式' }],
      max_tokens: 5,
      stream_options: { include_usage: true },
    })) {
      chunks.push(chunk);
    }
    expect(chunks.at(-1)?.usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('leases a service to one owner at a time', async () => {
    expect(await cluster.backend.claimService(ref, 'wf-a')).toEqual({ claimed: true });
    expect(await cluster.backend.claimService(ref, 'wf-a')).toEqual({ claimed: true });
    expect(await cluster.backend.claimService(ref, 'wf-b')).toEqual({ claimed: false, holder: 'wf-a' });
    expect((await cluster.backend.getService(ref))?.owner).toBe('wf-a');
    await cluster.backend.releaseService(ref, 'wf-b'); // not the holder: nothing happens
    expect((await cluster.backend.getService(ref))?.owner).toBe('wf-a');
    await cluster.backend.releaseService(ref, 'wf-a');
    expect(await cluster.backend.claimService(ref, 'wf-b')).toEqual({ claimed: true });
  });

  it('refuses bad traffic values naming the field, and unknown services with NotFound', async () => {
    const bad = await cluster.backend.setCanaryTraffic(ref, 150).catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'Invalid', retryable: false });
    expect((bad as Error).message).toMatch(/percent: must be <= 100/);
    const missing = { ...ref, name: 'nope' };
    expect(await cluster.backend.getService(missing)).toBeUndefined();
    expect(await cluster.backend.setCanaryTraffic(missing, 10).catch((e: unknown) => e)).toMatchObject({
      code: 'NotFound',
    });
  });

  it('injects mesh faults per role on the revision itself: delays and exact shares of errors', async () => {
    const faulty: ServingRef = { namespace: 'llm-prod', name: 'faulty', deploymentMode: 'Serverless' };
    await cluster.backend.deployService(faulty, revision('file:///models/faulty-stable'));
    await cluster.backend.startCanary(faulty, revision('file:///models/faulty-canary'), 50);
    const status = await cluster.backend.waitForTraffic(faulty, 50, { deadline: Date.now() + 60_000 });
    const urlOf = (tag: 'prev' | 'latest') => status.traffic.find((t) => t.tag === tag)?.url as string;
    const bad = await fetch(
      `${cluster.url}/apis/serving.kserve.io/v1beta1/namespaces/llm-prod/inferenceservices/faulty/faults`,
      {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...cluster.authHeaders() },
        body: JSON.stringify({ canary: { delayMs: -5 } }),
      },
    );
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/canary\.delayMs: must be >= 0/);

    await cluster.backend.setFaults(faulty, {
      canary: { delayMs: 1500, delayPercent: 100, abortPercent: 0, abortStatus: 503 },
    });
    const timed = async (url: string) => {
      const t0 = performance.now();
      const response = await fetch(`${url}/v1/models`);
      await response.text();
      return { ms: performance.now() - t0, status: response.status };
    };
    const canary = await timed(urlOf('latest'));
    const stable = await timed(urlOf('prev'));
    expect(canary.status).toBe(200);
    expect(canary.ms).toBeGreaterThanOrEqual(1500); // the delay is a floor, whatever the host does
    expect(stable.ms).toBeLessThan(canary.ms);

    await cluster.backend.setFaults(faulty, {
      canary: { delayMs: 0, delayPercent: 0, abortPercent: 25, abortStatus: 503 },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 20; i++) statuses.push((await timed(urlOf('latest'))).status);
    expect(statuses.filter((s) => s === 503)).toHaveLength(5);
    const view = await cluster.service('llm-prod', 'faulty');
    expect(view?.revisions.find((r) => r.role === 'canary')?.fault).toMatchObject({ abortPercent: 25 });
    expect(view?.revisions.find((r) => r.role === 'stable')?.fault).toBeUndefined();

    await cluster.backend.clearFaults(faulty);
    for (let i = 0; i < 8; i++) expect((await timed(urlOf('latest'))).status).toBe(200);
  });

  it('lists every revision server for Prometheus HTTP service discovery, labelled by revision', async () => {
    const groups = (await (await fetch(`${cluster.url}/prometheus/targets`)).json()) as Array<{
      targets: string[];
      labels: Record<string, string>;
    }>;
    const faulty = groups.filter((g) => g.labels.service === 'faulty');
    expect(faulty.map((g) => g.labels.role).sort()).toEqual(['canary', 'stable']);
    for (const group of faulty) {
      expect(group.labels).toMatchObject({ namespace: 'llm-prod', engine: 'simulator' });
      expect(group.labels.revision).toMatch(/^faulty-predictor-0000[12]$/);
      const metrics = await (await fetch(`http://${group.targets[0]}/metrics`)).text();
      expect(metrics).toContain('vllm:e2e_request_latency_seconds');
    }
  });
});

describe('sandbox serving: a canary with a baseline (KServe Standard mode, spec.canary[] entries)', () => {
  const ref: ServingRef = { namespace: 'llm-prod', name: 'with-baseline', deploymentMode: 'Standard' };
  const service = () => new ServingService(cluster.backend, new StoreAuditLog(auditStore), auditStore);
  let auditStore: FsArtifactStore;

  beforeAll(async () => {
    auditStore = new FsArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'qwenops-baseline-')));
  });

  it('starts a fresh copy of stable beside the canary with the same weight, judges against it, and removes it on promote', async () => {
    await cluster.backend.deployService(ref, revision('file:///models/v1'));
    await wait(ref, undefined);
    const started = await service().shiftCanaryTraffic(ref, revision('file:///models/v2'), 10, {
      workflowId: 'wf-baseline',
      actor: 'test',
      timeoutSeconds: 60,
      baseline: true,
    });
    expect(started.traffic.map((t) => [t.revision, t.percent, t.tag, t.storageUri])).toEqual([
      ['with-baseline-predictor-00001', 80, 'prev', 'file:///models/v1'],
      ['with-baseline-predictor-00003', 10, 'latest', 'file:///models/v2'],
      ['with-baseline-predictor-00002', 10, 'baseline', 'file:///models/v1'],
    ]);
    expect(started.baselinePercent).toBe(10);
    const answers = await send(started.url as string, 100);
    expect(hits(answers, 'with-baseline-predictor-00003')).toBe(10);
    expect(hits(answers, 'with-baseline-predictor-00002')).toBe(10);

    // The analysis compares the canary with the baseline, not with the long-running stable.
    const endpoints = service().endpoints(started);
    expect(endpoints.baseline?.revision).toBe('with-baseline-predictor-00002');
    const result = await createCanaryAnalyzer({ provider: 'probe' }).analyse({
      step: 0,
      canaryPercent: 10,
      model: 'qwen-7b-chat',
      canary: endpoints.canary as { revision: string; baseUrl: string },
      stable: endpoints.baseline,
      comparison: 'baseline',
      windowSeconds: 2,
      minSamples: 20,
      probe: { requestsPerSecond: 20, maxTokens: 4, concurrency: 16 },
      slo: sloSchema.parse({ p99LatencyMs: 10_000, maxLatencyRatioVsStable: 4 }),
    });
    expect(result.comparedWith).toBe('baseline');
    expect(result.stable?.revision).toBe('with-baseline-predictor-00002');
    expect(result.stable?.requests).toBeGreaterThanOrEqual(20);
    expect(result.reasons.join('\n')).toContain('compared with the baseline with-baseline-predictor-00002');

    // Stepping moves both; past 50 % the baseline takes what the stable has left.
    await cluster.backend.setCanaryTraffic(ref, 75);
    const at75 = await wait(ref, 75);
    expect(at75.traffic.map((t) => t.percent)).toEqual([0, 75, 25]);

    const baselinePid = (await cluster.service(ref.namespace, ref.name))?.revisions.find(
      (r) => r.role === 'baseline',
    )?.pid as number;
    expect(baselinePid).toBeGreaterThan(0);
    const promoted = await service().promote(ref, {
      workflowId: 'wf-baseline',
      actor: 'test',
      timeoutSeconds: 60,
    });
    expect(promoted.traffic.map((t) => [t.revision, t.percent])).toEqual([
      ['with-baseline-predictor-00003', 100],
    ]);
    expect(promoted.baselinePercent).toBeUndefined();
    await until('the baseline process to stop', () => !isAlive(baselinePid));
    expect((await cluster.service(ref.namespace, ref.name))?.history.map((h) => [h.name, h.outcome])).toEqual(
      [
        ['with-baseline-predictor-00001', 'replaced'],
        ['with-baseline-predictor-00002', 'baseline-removed'],
      ],
    );
  });

  it('refuses a baseline in Serverless mode, naming the mode it needs', async () => {
    const serverless: ServingRef = { ...ref, name: 'serverless-baseline', deploymentMode: 'Serverless' };
    await cluster.backend.deployService(serverless, revision('file:///models/v1'));
    await wait(serverless, undefined);
    const refused = await cluster.backend
      .startCanary(serverless, revision('file:///models/v2'), 10, { baseline: true })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'Unsupported', message: expect.stringContaining('Standard') });
  });
});
