import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BatchV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { CancelledFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InferenceService } from '../../src/cluster/kubernetes/inference-service.js';
import { loadConfig } from '../../src/config/config.js';
import { writeFixtureModel } from '../../src/hub/fixture-model.js';
import { createLogger } from '../../src/observability/logger.js';
import { nodeEntrypoint } from '../../src/runtime/entrypoints.js';
import { type Composition, compose } from '../../workers/compose.js';
import { abortUpdate, FAILURE_TYPES, statusQuery, TASK_QUEUES } from '../../workflows/definitions.js';
import {
  JOB_NAMESPACE,
  type K8sTestEnvironment,
  SERVING_NAMESPACE,
  startK8sEnvironment,
  VALIDATION_NAMESPACE,
} from '../integration/k8s/environment.js';
import {
  FakeKServeController,
  type FakeKubelet,
  JobRunner,
  startFakeKubelet,
} from '../support/kube-controllers.js';
import { type RunningMinio, startMinio } from '../support/minio.js';
import { startSimulator, type TestSimulator } from '../support/simulator.js';
import { createDevServerEnv, workflowBundle } from '../support/temporal.js';

// promoteModel end to end with the Kubernetes backend: real Temporal dev server, real
// kube-apiserver (worker ServiceAccount, RBAC from k8s/), real MinIO as the object store.
// The test plays the cluster's controllers: JobRunner runs each GPU Job's work with the
// sandbox's simulated entrypoints (no GPU here; results say simulated: true), the fake
// KServe controller writes InferenceService status, and the serving simulators answer the
// canary analysis behind per-revision URLs, as KServe's tag routing would.

let temporal: TestWorkflowEnvironment;
let minio: RunningMinio;
let k8s: K8sTestEnvironment;
let kubelet: FakeKubelet;
let kserve: FakeKServeController;
let jobs: JobRunner;
let composition: Composition;
let stable: TestSimulator;
let canary: TestSimulator;
const proxies: http.Server[] = [];
let mirrorDir: string;
let stateDir: string;

/** KServe's vLLM runtime serves the OpenAI API under /openai/v1; the simulator under /v1. */
async function openAiPrefixProxy(target: string): Promise<string> {
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').replace(/^\/openai\/v1\//, '/v1/');
    const upstream = http.request(
      `${target}${url}`,
      { method: req.method, headers: req.headers },
      (reply) => {
        res.writeHead(reply.statusCode ?? 502, reply.headers);
        reply.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxies.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  [temporal, minio, k8s] = await Promise.all([createDevServerEnv(), startMinio(), startK8sEnvironment()]);
  kubelet = await startFakeKubelet(k8s.plane);
  // The operator's Secret for the object store (Jobs reference it by name).
  await k8s.plane.admin.makeApiClient(CoreV1Api).createNamespacedSecret({
    namespace: JOB_NAMESPACE,
    body: {
      metadata: { name: 'qwenops-s3' },
      stringData: { AWS_ACCESS_KEY_ID: minio.accessKey, AWS_SECRET_ACCESS_KEY: minio.secretKey },
    },
  });
  mirrorDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-mirror-'));
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-state-'));
  await writeFixtureModel(mirrorDir, 'qwen/Qwen-7B-Chat', 'master');

  [stable, canary] = await Promise.all([
    startSimulator({ revision: 'stable', ttftMs: 20, tpotMs: 2, meanOutputTokens: 8 }),
    startSimulator({ revision: 'canary', ttftMs: 20, tpotMs: 2, meanOutputTokens: 8 }),
  ]);
  const [stableUrl, canaryUrl] = await Promise.all([
    openAiPrefixProxy(stable.url),
    openAiPrefixProxy(canary.url),
  ]);
  kserve = new FakeKServeController(k8s.plane.admin, {
    urlFor: (_isvc, _revision, tag) => (tag === 'latest' ? canaryUrl : stableUrl),
  });
  await kserve.start();
  jobs = new JobRunner(k8s.plane.admin, {
    namespace: JOB_NAMESPACE,
    command: (template) => nodeEntrypoint(`src/cluster/sandbox/simulated-jobs/${template}`),
    // The Python entrypoints' --log-format (from the template) is not part of the Job contract
    // the simulated entrypoints implement.
    args: (_template, args) => (args[0] === '--log-format' ? args.slice(2) : args),
    envFilter: (name) => name.startsWith('QWENOPS_'),
    extraEnv: { QWENOPS_SIM_JOB_SECONDS: '0.5', QWENOPS_LOG_LEVEL: 'warn' },
    kubelet,
  });
  jobs.start();

  const config = loadConfig({
    env: {},
    overrides: {
      stateDir,
      'temporal.address': temporal.address,
      'cluster.kind': 'kubernetes',
      'cluster.kubeconfig': k8s.workerKubeconfigPath,
      'cluster.jobNamespace': JOB_NAMESPACE,
      'store.kind': 'minio',
      'store.endpoint': minio.endpoint,
      'store.bucket': minio.bucket,
      'store.accessKey': minio.accessKey,
      'store.secretKey': minio.secretKey,
      'hub.kind': 'local',
      'hub.mirrorDir': mirrorDir,
      'analysis.provider': 'probe',
      'metrics.address': '',
      'log.level': 'warn',
    },
  });
  composition = await compose(config, createLogger('e2e-k8s', process.env.QWENOPS_TEST_LOG_LEVEL ?? 'warn'));
});

afterAll(async () => {
  jobs?.stop();
  kserve?.stop();
  await composition?.close();
  await Promise.all(proxies.map((p) => new Promise((r) => p.close(r))));
  await Promise.all([stable?.close(), canary?.close(), kubelet?.stop()]);
  await Promise.all([k8s?.stop(), minio?.stop(), temporal?.teardown()]);
  await Promise.all(
    [mirrorDir, stateDir].filter(Boolean).map((d) => rm(d, { recursive: true, force: true })),
  );
});

async function withWorkers<T>(body: () => Promise<T>): Promise<T> {
  const bundle = await workflowBundle();
  const common = { connection: temporal.nativeConnection, namespace: 'default' };
  const workers = await Promise.all([
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.default,
      workflowBundle: bundle,
      activities: composition.activitiesFor('default'),
    }),
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.gpuJobs,
      activities: composition.activitiesFor('gpuJobs'),
    }),
    Worker.create({
      ...common,
      taskQueue: TASK_QUEUES.cluster,
      activities: composition.activitiesFor('cluster'),
    }),
  ]);
  const running = workers.map((w) => w.run());
  try {
    return await body();
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.all(running);
  }
}

function promotionSpec() {
  return {
    model: 'qwen/Qwen-7B-Chat',
    hub: { provider: 'local' },
    approvals: { beforeCanary: false, beforePromote: false },
    canary: {
      steps: [50, 100],
      analysisWindowSeconds: 2,
      minSamples: 3,
      probe: { requestsPerSecond: 10, maxTokens: 4, concurrency: 4 },
      shiftTimeoutSeconds: 60,
    },
    loadTest: { enabled: false },
    execution: { heartbeatTimeoutSeconds: 30, gpuJobTimeoutSeconds: 120 },
    requestedBy: 'e2e',
  };
}

describe('promoteModel on Kubernetes + KServe (kube-apiserver, tests as controllers)', () => {
  it('downloads, quantizes and evaluates on Jobs, canaries on the InferenceService and promotes', async () => {
    const result = await withWorkers(() =>
      temporal.client.workflow.execute('promoteModel', {
        taskQueue: TASK_QUEUES.default,
        workflowId: 'promote-qwen-7b-chat-k8s',
        args: [promotionSpec()],
      }),
    );

    expect(result.outcome).toBe('promoted');
    expect(result.service).toEqual({ namespace: SERVING_NAMESPACE, name: 'qwen-7b-chat' });
    // The safety gate's private InferenceService came and went in its own namespace.
    const validation = (await k8s.plane.admin.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
      group: 'serving.kserve.io',
      version: 'v1beta1',
      namespace: VALIDATION_NAMESPACE,
      plural: 'inferenceservices',
    })) as { items: unknown[] };
    expect(validation.items).toEqual([]);

    // The GPU Jobs ran on the cluster, from the templates, one per stage.
    expect(jobs.runs.map((r) => [r.template, r.exitCode])).toEqual([
      ['quantize', 0],
      ['evaluate', 0],
    ]);
    const batch = k8s.plane.admin.makeApiClient(BatchV1Api);
    const created = await batch.listNamespacedJob({ namespace: JOB_NAMESPACE });
    for (const job of created.items) {
      expect(job.metadata?.labels?.['qwenops.io/workflow-id']).toBe('promote-qwen-7b-chat-k8s');
      expect(job.spec?.template.spec?.nodeSelector).toEqual({ 'gpu-type': 'A10' });
      expect(job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')).toBe(true);
    }

    // The InferenceService serves the AWQ candidate at 100 %, promoted from a canary.
    const isvc = await readInferenceService();
    const candidateUri = result.status.artifacts.candidate as string;
    expect(candidateUri).toMatch(/^s3:\/\//);
    expect(isvc.spec.predictor.model.storageUri).toBe(candidateUri);
    expect(isvc.spec.predictor.canaryTrafficPercent).toBeUndefined();
    expect(isvc.metadata.annotations?.['qwenops.io/stable-storage-uri']).toBe(candidateUri);
    expect(isvc.status?.components?.predictor?.latestRolledoutRevision).toBe('qwen-7b-chat-predictor-00002');
    expect(isvc.status?.components?.predictor?.previousRolledoutRevision).toBe(
      'qwen-7b-chat-predictor-00001',
    );
    expect(result.revision).toBe('qwen-7b-chat-predictor-00002');
    // The canary was analysed with live probe traffic on both revisions.
    expect(canary.stats().requests.total).toBeGreaterThan(0);
    expect(stable.stats().requests.total).toBeGreaterThan(0);
    // The rollout lease was released.
    await expect(
      k8s.plane.admin
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ namespace: SERVING_NAMESPACE, name: 'qwenops-rollout-qwen-7b-chat' }),
    ).rejects.toMatchObject({ code: 404 });
  });

  it('rolls a failing canary back to the stable revision and deletes its Jobs (saga)', async () => {
    canary.setFaults({ errorRatePct: 60, errorStatus: 500 });
    const runsBefore = jobs.runs.length;
    const error = await withWorkers(() =>
      temporal.client.workflow.execute('promoteModel', {
        taskQueue: TASK_QUEUES.default,
        workflowId: 'promote-qwen-7b-chat-k8s-bad',
        args: [promotionSpec()],
      }),
    ).then(
      () => undefined,
      (err: unknown) => err,
    );
    canary.clearFaults();
    const failure = (error as { cause?: { type?: string; message?: string } } | undefined)?.cause;
    expect(failure?.type).toBe(FAILURE_TYPES.rolledBack);
    expect(failure?.message).toMatch(/canary analysis failed at 50% traffic/);
    expect(jobs.runs.slice(runsBefore).map((r) => r.template)).toEqual(['quantize', 'evaluate']);

    // KServe's rollback: canaryTrafficPercent 0, all traffic on the revision promoted before.
    const isvc = await readInferenceService();
    expect(isvc.spec.predictor.canaryTrafficPercent).toBe(0);
    const traffic = isvc.status?.components?.predictor?.traffic ?? [];
    expect(traffic.find((t) => t.percent === 100)?.revisionName).toBe('qwen-7b-chat-predictor-00002');
    // Compensation deleted this run's GPU Jobs; the first run's are untouched.
    const left = await k8s.plane.admin
      .makeApiClient(BatchV1Api)
      .listNamespacedJob({ namespace: JOB_NAMESPACE });
    expect(left.items.map((j) => j.metadata?.labels?.['qwenops.io/workflow-id'])).not.toContain(
      'promote-qwen-7b-chat-k8s-bad',
    );
    expect(left.items).toHaveLength(2);
  });

  // Abort and cancellation while a traffic shift waits for KServe (reconciliation held):
  // afterwards the InferenceService itself sends everything to the stable revision.
  for (const ending of ['abort', 'cancel'] as const) {
    it(`${ending} while a traffic shift waits: the InferenceService ends on the stable revision only`, async () => {
      const stableRevision = (await readInferenceService()).status?.components?.predictor?.traffic?.find(
        (t) => t.percent === 100,
      )?.revisionName;
      expect(stableRevision).toBeDefined();
      // Held in production only: the safety gate's validation copy must still come up.
      kserve.pause(SERVING_NAMESPACE);
      const { cause, status } = await withWorkers(async () => {
        const handle = await temporal.client.workflow.start('promoteModel', {
          taskQueue: TASK_QUEUES.default,
          workflowId: `promote-qwen-7b-chat-k8s-${ending}-mid-shift`,
          args: [promotionSpec()],
        });
        try {
          const deadline = Date.now() + 120_000;
          while ((await readInferenceService()).spec.predictor.canaryTrafficPercent !== 50) {
            if (Date.now() > deadline) throw new Error('the canary shift never reached the apiserver');
            await new Promise((r) => setTimeout(r, 200));
          }
          if (ending === 'abort') {
            await handle.executeUpdate(abortUpdate, { args: [{ by: 'oncall', reason: 'wrong build' }] });
          } else {
            await handle.cancel();
          }
        } finally {
          await kserve.resume();
        }
        const err = await handle.result().then(
          () => undefined,
          (e: unknown) => e,
        );
        return {
          cause: (err as { cause?: unknown } | undefined)?.cause,
          status: await handle.query(statusQuery),
        };
      });
      if (ending === 'abort') expect((cause as { type?: string }).type).toBe(FAILURE_TYPES.aborted);
      else expect(cause).toBeInstanceOf(CancelledFailure);
      expect(status.outcome).toBe('aborted');
      expect(status.analyses).toBe(0);
      expect(status.compensations[0]).toEqual({ name: 'rollbackCanary', state: 'succeeded' });
      expect(status.traffic).toMatchObject({ stableRevision, canaryPercent: 0 });

      const isvc = await readInferenceService();
      expect(isvc.spec.predictor.canaryTrafficPercent).toBe(0);
      const traffic = isvc.status?.components?.predictor?.traffic ?? [];
      expect(traffic.filter((t) => (t.percent ?? 0) > 0).map((t) => [t.revisionName, t.percent])).toEqual([
        [stableRevision, 100],
      ]);
    });
  }
});

async function readInferenceService(): Promise<InferenceService> {
  return (await k8s.plane.admin.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
    group: 'serving.kserve.io',
    version: 'v1beta1',
    namespace: SERVING_NAMESPACE,
    plural: 'inferenceservices',
    name: 'qwen-7b-chat',
  })) as InferenceService;
}
