import {
  CustomObjectsApi,
  type RequestContext,
  ResponseContext,
  SelfDecodingBody,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubernetesBackend } from '../../../src/cluster/kubernetes/index.js';
import type { InferenceService } from '../../../src/cluster/kubernetes/inference-service.js';
import { ClusterError } from '../../../src/cluster/port.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import {
  buildRevisionSpec,
  type DeploymentMode,
  promotionLabels,
  type ServingRef,
  type ServingRevisionSpec,
} from '../../../src/domain/serving-revision.js';
import { FakeKServeController } from '../../support/kube-controllers.js';
import { type K8sTestEnvironment, SERVING_NAMESPACE, startK8sEnvironment } from './environment.js';

// InferenceService rollouts against a real kube-apiserver with the KServe CRD installed,
// the backend running as the worker's ServiceAccount, the test playing KServe's controller.

let env: K8sTestEnvironment;
let backend: KubernetesBackend;
let kserve: FakeKServeController;
let custom: CustomObjectsApi;

const spec = parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat' });
const soon = () => ({ deadline: Date.now() + 30_000 });

function revision(storageUri: string, workflowId = 'wf-1'): ServingRevisionSpec {
  return buildRevisionSpec(spec.serving, storageUri, {
    quantized: true,
    labels: promotionLabels(spec, workflowId, 'canary'),
  });
}

function ref(name: string, deploymentMode: DeploymentMode = 'Serverless'): ServingRef {
  return { namespace: SERVING_NAMESPACE, name, deploymentMode };
}

async function read(name: string): Promise<InferenceService> {
  return (await custom.getNamespacedCustomObject({
    group: 'serving.kserve.io',
    version: 'v1beta1',
    namespace: SERVING_NAMESPACE,
    plural: 'inferenceservices',
    name,
  })) as InferenceService;
}

const V1 = 's3://qwenops/models/qwen/Qwen-7B-Chat/v1/awq-w4-g128';
const V2 = 's3://qwenops/models/qwen/Qwen-7B-Chat/v2/awq-w4-g128';
const V3 = 's3://qwenops/models/qwen/Qwen-7B-Chat/v3/awq-w4-g128';
const V4 = 's3://qwenops/models/qwen/Qwen-7B-Chat/v4/awq-w4-g128';
const BROKEN = 's3://qwenops/models/broken';

beforeAll(async () => {
  env = await startK8sEnvironment();
  backend = env.backend();
  custom = env.plane.admin.makeApiClient(CustomObjectsApi);
  kserve = new FakeKServeController(env.plane.admin, { failingStorageUris: new Set([BROKEN]) });
  await kserve.start();
});

afterAll(async () => {
  kserve?.stop();
  await env?.stop();
});

describe('InferenceService, Serverless (Knative) canary API', () => {
  const svc = ref('qwen-7b-chat');

  it('deploys the stable revision with the seed vLLM settings and waits for it to be Ready', async () => {
    await backend.deployService(svc, revision(V1));
    const status = await backend.waitForTraffic(svc, undefined, soon());
    expect(status.ready).toBe(true);
    expect(status.traffic).toEqual([
      expect.objectContaining({ revision: 'qwen-7b-chat-predictor-00001', percent: 100, storageUri: V1 }),
    ]);
    expect(status.canaryPercent).toBeUndefined();
    expect(status.stableStorageUri).toBe(V1);

    const isvc = await read('qwen-7b-chat');
    expect(isvc.metadata.annotations?.['serving.kserve.io/deploymentMode']).toBe('Serverless');
    const predictor = isvc.spec.predictor;
    expect(predictor).toMatchObject({ minReplicas: 3, maxReplicas: 15, nodeSelector: { 'gpu-type': 'A10' } });
    expect(predictor.model.args).toEqual(
      expect.arrayContaining([
        '--trust-remote-code',
        '--max-model-len=8192',
        '--gpu-memory-utilization=0.92',
        '--enable-prefix-caching',
      ]),
    );
    expect(predictor.model.args?.some((a) => a.startsWith('--quantization'))).toBe(false);
    expect(predictor.annotations).toEqual({ 'qwenops.io/quantization': 'awq' });
    expect(predictor.model.env).toContainEqual({ name: 'VLLM_ATTENTION_BACKEND', value: 'FLASH_ATTN' });
    expect(predictor.model.livenessProbe).toMatchObject({ httpGet: { path: '/health', port: 8080 } });
    expect(predictor.model.resources?.limits?.['nvidia.com/gpu']).toBe('1');
  });

  it('adopts an identical deployment and refuses to redeploy a different model in place', async () => {
    const before = await read('qwen-7b-chat');
    await backend.deployService(svc, revision(V1, 'wf-retry'));
    expect((await read('qwen-7b-chat')).metadata.generation).toBe(before.metadata.generation);
    await expect(backend.deployService(svc, revision(V2))).rejects.toMatchObject({
      code: 'Conflict',
      retryable: false,
    });
  });

  it('steps a canary through the plan, each step visible in the traffic split', async () => {
    await backend.startCanary(svc, revision(V2), 10);
    let status = await backend.waitForTraffic(svc, 10, soon());
    expect(status.traffic).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          revision: 'qwen-7b-chat-predictor-00002',
          percent: 10,
          tag: 'latest',
          storageUri: V2,
        }),
        expect.objectContaining({
          revision: 'qwen-7b-chat-predictor-00001',
          percent: 90,
          tag: 'prev',
          storageUri: V1,
        }),
      ]),
    );
    expect(status).toMatchObject({ canaryPercent: 10, canaryStorageUri: V2, stableStorageUri: V1 });
    expect((await read('qwen-7b-chat')).spec.predictor.canaryTrafficPercent).toBe(10);

    // A retried start (same revision, same step) changes nothing.
    const generation = (await read('qwen-7b-chat')).metadata.generation;
    await backend.startCanary(svc, revision(V2, 'wf-1'), 10);
    expect((await read('qwen-7b-chat')).metadata.generation).toBe(generation);

    for (const step of [25, 50]) {
      await backend.setCanaryTraffic(svc, step);
      status = await backend.waitForTraffic(svc, step, soon());
      expect(status.canaryPercent).toBe(step);
      expect(status.traffic.find((t) => t.tag === 'prev')?.percent).toBe(100 - step);
    }
  });

  it('waits until the controller has applied the change', async () => {
    kserve.pause();
    await backend.setCanaryTraffic(svc, 75);
    let settled = false;
    const waiting = backend.waitForTraffic(svc, 75, soon()).then((s) => {
      settled = true;
      return s;
    });
    // The old split (50 %) is still what KServe reports: the wait must not resolve on it.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(settled).toBe(false);
    await kserve.resume();
    await expect(waiting).resolves.toMatchObject({ canaryPercent: 75 });
  });

  it('promotes by dropping canaryTrafficPercent: the canary becomes the rolled-out revision', async () => {
    // At 100 % KServe books the canary as rolled out; until promotion it is still the canary.
    await backend.setCanaryTraffic(svc, 100);
    const full = await backend.waitForTraffic(svc, 100, soon());
    expect(full).toMatchObject({
      canaryPercent: 100,
      latestRolledoutRevision: 'qwen-7b-chat-predictor-00001',
    });
    expect(full.traffic).toEqual([
      expect.objectContaining({ revision: 'qwen-7b-chat-predictor-00002', percent: 100, tag: 'latest' }),
    ]);
    await backend.promoteCanary(svc);
    const status = await backend.waitForTraffic(svc, undefined, soon());
    expect(status.traffic).toEqual([
      expect.objectContaining({ revision: 'qwen-7b-chat-predictor-00002', percent: 100 }),
    ]);
    expect(status).toMatchObject({
      latestRolledoutRevision: 'qwen-7b-chat-predictor-00002',
      previousRolledoutRevision: 'qwen-7b-chat-predictor-00001',
      stableStorageUri: V2,
      canaryPercent: undefined,
    });
    const isvc = await read('qwen-7b-chat');
    expect(isvc.spec.predictor.canaryTrafficPercent).toBeUndefined();
    // A retried promote is a no-op.
    await backend.promoteCanary(svc);
    expect((await read('qwen-7b-chat')).metadata.generation).toBe(isvc.metadata.generation);
  });

  it('rolls back by pinning 0 %: all traffic returns to the previous rolled-out revision', async () => {
    await backend.startCanary(svc, revision(V3), 10);
    await backend.waitForTraffic(svc, 10, soon());
    await backend.rollbackCanary(svc);
    const status = await backend.waitForTraffic(svc, undefined, soon());
    expect(status.canaryPercent).toBeUndefined();
    expect(status.stableStorageUri).toBe(V2);
    expect(status.traffic).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ revision: 'qwen-7b-chat-predictor-00002', percent: 100, storageUri: V2 }),
        expect.objectContaining({ revision: 'qwen-7b-chat-predictor-00003', percent: 0, storageUri: V3 }),
      ]),
    );
    expect((await read('qwen-7b-chat')).spec.predictor.canaryTrafficPercent).toBe(0);
    // The next canary splits against the same stable revision.
    await backend.startCanary(svc, revision(V4), 10);
    const next = await backend.waitForTraffic(svc, 10, soon());
    expect(next.traffic).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ revision: 'qwen-7b-chat-predictor-00004', percent: 10, storageUri: V4 }),
        expect.objectContaining({ revision: 'qwen-7b-chat-predictor-00002', percent: 90, storageUri: V2 }),
      ]),
    );
    await backend.rollbackCanary(svc);
    await backend.waitForTraffic(svc, undefined, soon());
  });

  it('re-reads and re-applies a change when the object changed underneath (409 Conflict)', async () => {
    const admin = env.plane.admin.makeApiClient(CustomObjectsApi);
    let interfered = false;
    let updates = 0;
    const racing = env.backend({
      middleware: [
        {
          async pre(context: RequestContext) {
            if (
              context.getHttpMethod() === 'PUT' &&
              context.getUrl().includes('/inferenceservices/qwen-7b-chat')
            ) {
              updates++;
              if (!interfered) {
                interfered = true;
                // Someone else (a human with kubectl, KServe) writes between our read and write.
                const current = (await read('qwen-7b-chat')) as InferenceService;
                current.metadata.labels = {
                  ...current.metadata.labels,
                  'team.example.com/owner': 'ml-platform',
                };
                await admin.replaceNamespacedCustomObject({
                  group: 'serving.kserve.io',
                  version: 'v1beta1',
                  namespace: SERVING_NAMESPACE,
                  plural: 'inferenceservices',
                  name: 'qwen-7b-chat',
                  body: current,
                });
              }
            }
            return context;
          },
          async post(context: ResponseContext) {
            return context;
          },
        },
      ],
    });
    await racing.startCanary(svc, revision(V3), 20);
    expect(updates).toBe(2);
    expect(racing.serving.conflictRetries).toBe(1);
    const isvc = await read('qwen-7b-chat');
    expect(isvc.spec.predictor.canaryTrafficPercent).toBe(20);
    expect(isvc.spec.predictor.model.storageUri).toBe(V3);
    // The other writer's change survived: re-applied on top, not overwritten.
    expect(isvc.metadata.labels?.['team.example.com/owner']).toBe('ml-platform');
    await racing.rollbackCanary(svc);
  });

  it('fails a wait at once when KServe reports the new revision failed', async () => {
    await backend.startCanary(svc, { ...revision(BROKEN) }, 10);
    const error = await backend.waitForTraffic(svc, 10, soon()).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ClusterError);
    expect(error).toMatchObject({ retryable: false });
    expect((error as Error).message).toContain('RevisionFailed');
    await backend.rollbackCanary(svc);
  });

  it('holds a rollout lease per service', async () => {
    await expect(backend.claimService(svc, 'wf-a')).resolves.toEqual({ claimed: true });
    await expect(backend.claimService(svc, 'wf-a')).resolves.toEqual({ claimed: true });
    await expect(backend.claimService(svc, 'wf-b')).resolves.toEqual({ claimed: false, holder: 'wf-a' });
    expect((await backend.getService(svc))?.owner).toBe('wf-a');
    await backend.releaseService(svc, 'wf-b'); // not the holder: no effect
    await expect(backend.claimService(svc, 'wf-b')).resolves.toEqual({ claimed: false, holder: 'wf-a' });
    await backend.releaseService(svc, 'wf-a');
    await expect(backend.claimService(svc, 'wf-b')).resolves.toEqual({ claimed: true });
    await backend.releaseService(svc, 'wf-b');
  });
});

describe('InferenceService, Standard mode canary API (KServe >= 0.20)', () => {
  const svc = ref('qwen-std', 'Standard');

  it('canaries with spec.canary[], promotes by renaming the predictor, rolls back by removing the entry', async () => {
    await backend.deployService(svc, revision(V1));
    await backend.waitForTraffic(svc, undefined, soon());

    await backend.startCanary(svc, revision(V2), 20);
    let status = await backend.waitForTraffic(svc, 20, soon());
    let isvc = await read('qwen-std');
    const canaryName = isvc.spec.canary?.[0]?.predictor.name as string;
    expect(canaryName).toMatch(/^r-[0-9a-f]{10}$/);
    expect(isvc.spec.canary?.[0]).toMatchObject({
      trafficPercent: 20,
      predictor: { model: { storageUri: V2 } },
    });
    expect(isvc.spec.predictor.canaryTrafficPercent).toBeUndefined();
    expect(status).toMatchObject({ canaryPercent: 20, canaryStorageUri: V2, stableStorageUri: V1 });
    expect(status.conditions).toContainEqual(
      expect.objectContaining({ type: 'CanaryPredictorReady', status: 'True' }),
    );

    await backend.setCanaryTraffic(svc, 50);
    status = await backend.waitForTraffic(svc, 50, soon());
    expect(status.traffic.map((t) => [t.tag, t.percent])).toEqual([
      ['prev', 50],
      ['latest', 50],
    ]);

    await backend.promoteCanary(svc);
    status = await backend.waitForTraffic(svc, undefined, soon());
    isvc = await read('qwen-std');
    expect(isvc.spec.canary).toBeUndefined();
    expect(isvc.spec.predictor.name).toBe(canaryName);
    expect(isvc.spec.predictor.model.storageUri).toBe(V2);
    expect(status).toMatchObject({ stableStorageUri: V2, canaryPercent: undefined });
    expect(status.latestRolledoutRevision).toBe(`qwen-std-${canaryName}-predictor`);

    await backend.startCanary(svc, revision(V3), 10);
    await backend.waitForTraffic(svc, 10, soon());
    await backend.rollbackCanary(svc);
    status = await backend.waitForTraffic(svc, undefined, soon());
    isvc = await read('qwen-std');
    expect(isvc.spec.canary).toBeUndefined();
    expect(isvc.spec.predictor.model.storageUri).toBe(V2);
    expect(status.conditions.some((c) => c.type === 'CanaryPredictorReady')).toBe(false);
  });
});

describe('InferenceService, Standard mode: a canary with a baseline (two spec.canary[] entries)', () => {
  const svc = ref('qwen-base', 'Standard');

  it('adds a copy of the stable predictor with the canary weight, steps both, and drops both on promote', async () => {
    await backend.deployService(svc, revision(V1));
    await backend.waitForTraffic(svc, undefined, soon());
    const stablePredictor = (await read('qwen-base')).spec.predictor;

    await backend.startCanary(svc, revision(V2), 10, { baseline: true });
    let status = await backend.waitForTraffic(svc, 10, soon());
    let isvc = await read('qwen-base');
    expect(isvc.spec.canary?.map((c) => [c.predictor.name?.slice(0, 2), c.trafficPercent])).toEqual([
      ['r-', 10],
      ['b-', 10],
    ]);
    expect(isvc.spec.canary?.[1]?.predictor.model).toEqual(stablePredictor.model);
    expect(status.traffic.map((t) => [t.tag, t.percent, t.storageUri])).toEqual([
      ['prev', 80, V1],
      ['latest', 10, V2],
      ['baseline', 10, V1],
    ]);
    expect(status).toMatchObject({ canaryPercent: 10, baselinePercent: 10 });
    // A retried start (the activity again after a crash) adopts both entries.
    const version = isvc.metadata.resourceVersion;
    await backend.startCanary(svc, revision(V2), 10, { baseline: true });
    expect((await read('qwen-base')).metadata.resourceVersion).toBe(version);

    await backend.setCanaryTraffic(svc, 75);
    status = await backend.waitForTraffic(svc, 75, soon());
    expect(status.traffic.map((t) => t.percent)).toEqual([0, 75, 25]);

    await backend.promoteCanary(svc);
    status = await backend.waitForTraffic(svc, undefined, soon());
    isvc = await read('qwen-base');
    expect(isvc.spec.canary).toBeUndefined();
    expect(isvc.spec.predictor.model.storageUri).toBe(V2);
    expect(status.baselinePercent).toBeUndefined();
    expect(status.traffic.map((t) => [t.tag, t.percent])).toEqual([['prev', 100]]);
  });

  it('refuses a baseline on a Serverless service without writing anything', async () => {
    const serverless = ref('qwen-base-sl', 'Serverless');
    await backend.deployService(serverless, revision(V1));
    await backend.waitForTraffic(serverless, undefined, soon());
    const before = await read('qwen-base-sl');
    await expect(backend.startCanary(serverless, revision(V2), 10, { baseline: true })).rejects.toMatchObject(
      {
        code: 'Unsupported',
        retryable: false,
      },
    );
    expect((await read('qwen-base-sl')).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });
});

describe('InferenceService, RawDeployment mode of KServe < 0.20', () => {
  const svc = ref('qwen-raw', 'RawDeployment');

  it('deploys, but refuses a canary the controller would silently ignore', async () => {
    await backend.deployService(svc, revision(V1));
    await backend.waitForTraffic(svc, undefined, soon());
    const before = await read('qwen-raw');
    const error = await backend.startCanary(svc, revision(V2), 10).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'Unsupported', retryable: false });
    expect((error as Error).message).toContain('silently ignore spec.predictor.canaryTrafficPercent');
    expect((await read('qwen-raw')).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    // Asking for Serverless canary semantics on a service that runs RawDeployment is caught too.
    await expect(backend.startCanary(ref('qwen-raw', 'Serverless'), revision(V2), 10)).rejects.toMatchObject({
      code: 'Invalid',
    });
  });
});

describe('API failures', () => {
  it('403 is non-retryable and names the missing RBAC verb', async () => {
    const error = await backend
      .getService({ namespace: 'default', name: 'anything', deploymentMode: 'Serverless' })
      .catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'Forbidden', retryable: false });
    expect((error as Error).message).toContain(
      'verb "get" on inferenceservices.serving.kserve.io in namespace "default"',
    );
  });

  it('429 and 5xx are retried with backoff, honouring Retry-After', async () => {
    const statuses = [503, 429];
    let requests = 0;
    const flaky = env.backend({
      retry: { attempts: 4, baseDelayMs: 50, maxDelayMs: 2_000 },
      middleware: [
        {
          async pre(context: RequestContext) {
            return context;
          },
          async post(context: ResponseContext) {
            requests++;
            const injected = statuses.shift();
            if (injected === undefined) return context;
            // Replace the apiserver's answer with an overload response.
            const body = JSON.stringify({
              kind: 'Status',
              status: 'Failure',
              code: injected,
              message: 'injected',
            });
            return new ResponseContext(
              injected,
              { 'content-type': 'application/json', ...(injected === 429 ? { 'retry-after': '1' } : {}) },
              new SelfDecodingBody(Promise.resolve(Buffer.from(body))),
            );
          },
        },
      ],
    });
    const started = Date.now();
    await expect(flaky.getService(ref('qwen-7b-chat'))).resolves.toMatchObject({ name: 'qwen-7b-chat' });
    expect(requests).toBeGreaterThanOrEqual(3);
    // Retry-After: 1 was honoured (a behaviour, not a timing claim: at least the server's ask).
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);

    const down = env.backend({
      retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 10 },
      middleware: [
        {
          async pre(context: RequestContext) {
            return context;
          },
          async post() {
            return new ResponseContext(
              500,
              { 'content-type': 'application/json' },
              new SelfDecodingBody(Promise.resolve(Buffer.from('{"message":"boom"}'))),
            );
          },
        },
      ],
    });
    await expect(down.getService(ref('qwen-7b-chat'))).rejects.toMatchObject({
      code: 'Unavailable',
      retryable: true,
    });
  });
});
