import path from 'node:path';
import {
  AuthorizationV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubernetesObject,
  RbacAuthorizationV1Api,
  type RequestContext,
  type ResponseContext,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KubernetesBackend } from '../../../src/cluster/kubernetes/index.js';
import type { GpuJobSpec } from '../../../src/cluster/port.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { buildRevisionSpec } from '../../../src/domain/serving-revision.js';
import { readYamlDocuments } from '../../support/kube.js';
import { FakeKServeController, JobControllerActions } from '../../support/kube-controllers.js';
import {
  JOB_NAMESPACE,
  K8S_DIR,
  type K8sTestEnvironment,
  SERVING_NAMESPACE,
  startK8sEnvironment,
  VALIDATION_NAMESPACE,
} from './environment.js';

// Least privilege, proven on a real apiserver: under the worker ServiceAccount's token the
// backend's operations succeed, the Roles in k8s/base/rbac.yaml grant exactly the
// (verb, resource) pairs those operations send, and everything else is denied.

let env: K8sTestEnvironment;
const requests: Array<{ method: string; url: string }> = [];
let backend: KubernetesBackend;

beforeAll(async () => {
  env = await startK8sEnvironment();
  backend = env.backend({
    middleware: [
      {
        async pre(context: RequestContext) {
          requests.push({ method: context.getHttpMethod(), url: context.getUrl() });
          return context;
        },
        async post(context: ResponseContext) {
          return context;
        },
      },
    ],
  });
});

afterAll(async () => {
  await env?.stop();
});

/** (verb, resource, namespace) of one API request, as RBAC sees it. */
function rbacRequest(method: string, url: string): string {
  const { pathname, searchParams } = new URL(url);
  const m = /^\/apis?\/(?:([^/]+)\/)?v[^/]+\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(
    pathname,
  );
  if (!m) throw new Error(`unexpected path ${pathname}`);
  const [, group = '', namespace, resource, name, sub] = m;
  const verb =
    method === 'GET'
      ? searchParams.get('watch') === 'true'
        ? 'watch'
        : name
          ? 'get'
          : 'list'
      : ({ POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as Record<string, string>)[
          method
        ];
  const qualified = `${resource}${sub ? `/${sub}` : ''}${group && group !== 'v1' ? `.${group}` : ''}`;
  return `${verb} ${qualified} ${namespace}`;
}

/** The (verb, resource, namespace) triples the Roles in k8s/base/rbac.yaml grant. */
function grantedByRoles(): Set<string> {
  const granted = new Set<string>();
  for (const doc of readYamlDocuments(path.join(K8S_DIR, 'base', 'rbac.yaml'))) {
    if (doc.kind !== 'Role') continue;
    const role = doc as KubernetesObject & {
      rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    };
    for (const rule of role.rules) {
      for (const group of rule.apiGroups) {
        for (const resource of rule.resources) {
          for (const verb of rule.verbs) {
            granted.add(`${verb} ${resource}${group ? `.${group}` : ''} ${role.metadata?.namespace}`);
          }
        }
      }
    }
  }
  return granted;
}

describe('RBAC for the worker ServiceAccount', () => {
  it('lets the backend do all it does, and grants nothing it does not use', async () => {
    const jobs = new JobControllerActions(env.plane.admin);
    const kserve = new FakeKServeController(env.plane.admin);
    await kserve.start();
    try {
      const job: GpuJobSpec = {
        namespace: JOB_NAMESPACE,
        name: 'rbac-quantize',
        template: 'quantize',
        workflowId: 'wf-rbac',
        stage: 'quantize',
        args: ['--input-uri', 's3://b/in'],
        env: {},
        secretEnv: [],
        gpus: 1,
        gpuType: 'A10',
        activeDeadlineSeconds: 600,
        backoffLimit: 0,
        ttlSecondsAfterFinished: 60,
        labels: {},
      };
      await backend.createJob(job);
      await backend.getJob(JOB_NAMESPACE, job.name);
      const pod = await jobs.startPod(JOB_NAMESPACE, job.name);
      // Wait first, so the wait goes through list and then watch.
      const jobWait = backend.waitForJob(JOB_NAMESPACE, job.name, { deadline: Date.now() + 30_000 });
      await expect.poll(() => backend.watchStats.watches).toBe(1);
      await jobs.fail(JOB_NAMESPACE, job.name, { pod: pod.metadata?.name, terminationMessage: 'boom' });
      await jobWait;
      // The fake kubelet is not running here: the log request reaches the apiserver (RBAC
      // allows it) and fails at the node; the termination message answers instead.
      expect(await backend.jobLogs(JOB_NAMESPACE, job.name, 10)).toContain('boom');
      await backend.deleteJob(JOB_NAMESPACE, job.name);

      const spec = parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat' });
      const ref = { namespace: SERVING_NAMESPACE, name: 'rbac-svc', deploymentMode: 'Serverless' as const };
      const rev = (uri: string) => buildRevisionSpec(spec.serving, uri, { quantized: true, labels: {} });
      await backend.claimService(ref, 'wf-rbac');
      await backend.renewService(ref, 'wf-rbac');
      await backend.deployService(ref, rev('s3://b/v1'));
      await backend.waitForTraffic(ref, undefined, { deadline: Date.now() + 30_000 });
      await backend.startCanary(ref, rev('s3://b/v2'), 10);
      kserve.pause();
      await backend.setCanaryTraffic(ref, 50);
      const trafficWait = backend.waitForTraffic(ref, 50, { deadline: Date.now() + 30_000 });
      await expect.poll(() => backend.watchStats.watches).toBeGreaterThan(1);
      await kserve.resume();
      await trafficWait;
      await backend.promoteCanary(ref);
      await backend.startCanary(ref, rev('s3://b/v3'), 10);
      await backend.rollbackCanary(ref);
      await backend.getService(ref);
      await backend.releaseService(ref, 'wf-rbac');

      // The safety gate's private copy: created, waited for, read and deleted in its own namespace.
      const validation = { ...ref, namespace: VALIDATION_NAMESPACE, name: 'rbac-safety' };
      await backend.deployService(validation, rev('s3://b/v2'));
      await backend.waitForTraffic(validation, undefined, { deadline: Date.now() + 30_000 });
      await backend.getService(validation);
      expect(await backend.deleteService(validation)).toBe(true);
    } finally {
      kserve.stop();
    }

    const used = new Set(requests.map((r) => rbacRequest(r.method, r.url)));
    // Watches go through client-node's Watch (not the request middleware); both waits used one.
    used.add(`watch jobs.batch ${JOB_NAMESPACE}`);
    used.add(`watch inferenceservices.serving.kserve.io ${SERVING_NAMESPACE}`);
    used.add(`watch inferenceservices.serving.kserve.io ${VALIDATION_NAMESPACE}`);
    expect([...used].sort()).toEqual([...grantedByRoles()].sort());
  });

  it('denies what the worker has no business doing', async () => {
    const core = env.worker.makeApiClient(CoreV1Api);
    const batch = env.worker.makeApiClient(BatchV1Api);
    const custom = env.worker.makeApiClient(CustomObjectsApi);
    const rbac = env.worker.makeApiClient(RbacAuthorizationV1Api);
    const denied = [
      ['read a Secret', () => core.readNamespacedSecret({ namespace: JOB_NAMESPACE, name: 'qwenops-s3' })],
      ['list Secrets', () => core.listNamespacedSecret({ namespace: SERVING_NAMESPACE })],
      ['delete a namespace', () => core.deleteNamespace({ name: JOB_NAMESPACE })],
      [
        'create a pod directly',
        () =>
          core.createNamespacedPod({
            namespace: JOB_NAMESPACE,
            body: { metadata: { name: 'x' }, spec: { containers: [{ name: 'x', image: 'busybox' }] } },
          }),
      ],
      [
        'exec-style pod access (get pods)',
        () => core.readNamespacedPod({ namespace: JOB_NAMESPACE, name: 'x' }),
      ],
      [
        'create a Job in the serving namespace',
        () => batch.createNamespacedJob({ namespace: SERVING_NAMESPACE, body: { metadata: { name: 'x' } } }),
      ],
      ['patch a Job', () => batch.patchNamespacedJob({ namespace: JOB_NAMESPACE, name: 'x', body: {} })],
      [
        'delete an InferenceService',
        () =>
          custom.deleteNamespacedCustomObject({
            group: 'serving.kserve.io',
            version: 'v1beta1',
            namespace: SERVING_NAMESPACE,
            plural: 'inferenceservices',
            name: 'rbac-svc',
          }),
      ],
      [
        'list InferenceServices in another namespace',
        () =>
          custom.listNamespacedCustomObject({
            group: 'serving.kserve.io',
            version: 'v1beta1',
            namespace: 'default',
            plural: 'inferenceservices',
          }),
      ],
      [
        'grant itself a Role',
        () =>
          rbac.createNamespacedRole({
            namespace: JOB_NAMESPACE,
            body: { metadata: { name: 'x' }, rules: [] },
          }),
      ],
    ] as const;
    for (const [what, call] of denied) {
      const error = await (call as () => Promise<unknown>)().then(
        () => undefined,
        (err: { code?: number }) => err,
      );
      expect({ what, code: (error as { code?: number } | undefined)?.code }).toEqual({ what, code: 403 });
    }
    // And the apiserver's own answer agrees (SelfSubjectAccessReview as the worker).
    const review = await env.worker.makeApiClient(AuthorizationV1Api).createSelfSubjectAccessReview({
      body: { spec: { resourceAttributes: { namespace: JOB_NAMESPACE, verb: 'get', resource: 'secrets' } } },
    });
    expect(review.status?.allowed).toBe(false);
  });
});
