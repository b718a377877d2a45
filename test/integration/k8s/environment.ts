import path from 'node:path';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { KubernetesBackend, type KubernetesBackendOptions } from '../../../src/cluster/kubernetes/index.js';
import { loadJobTemplates } from '../../../src/cluster/kubernetes/job-manifest.js';
import { rolloutLeaseName } from '../../../src/cluster/kubernetes/rollout-lease.js';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import { type KubeControlPlane, kustomizeBuild, startKubeControlPlane } from '../../support/kube.js';

// One control plane per test file, with qwenops' own namespaces, ServiceAccounts and RBAC
// applied from k8s/ (rendered by kustomize), and the backend running as the worker's
// ServiceAccount: every test in this tier also proves the Roles grant what the code uses.

export const JOB_NAMESPACE = 'qwenops';
export const SERVING_NAMESPACE = 'llm-prod';
/** Where the safety gate serves candidates (config cluster.validationNamespace's default). */
export const VALIDATION_NAMESPACE = 'llm-validation';
export const K8S_DIR = path.join(repoRoot, 'k8s');

const IDENTITY_KINDS = new Set(['Namespace', 'ServiceAccount', 'Role', 'RoleBinding']);

/**
 * Services the tests roll out besides the one k8s/base ships (qwen-7b-chat). The worker's
 * Role names every rollout Lease it may touch (RBAC has no name wildcards), so the tests
 * enrol theirs the way an operator's overlay does: by appending to that rule's resourceNames.
 */
export const TEST_SERVICES = [
  'qwen-std',
  'qwen-raw',
  'qwen-base',
  'qwen-base-sl',
  'rbac-svc',
  'lease-expiry',
  'lease-renewed',
  'lease-race',
  'lease-break',
];

/** Appends the rollout Lease names of `services` to the serving Role's lease rule. */
export function enrolServices(objects: KubernetesObject[], services: string[]): void {
  for (const object of objects) {
    if (object.kind !== 'Role' || object.metadata?.name !== 'qwenops-worker-serving') continue;
    const rules = (
      object as KubernetesObject & { rules: Array<{ resources: string[]; resourceNames?: string[] }> }
    ).rules;
    const rule = rules.find((r) => r.resources.includes('leases') && r.resourceNames);
    if (!rule?.resourceNames) throw new Error('the serving Role has no lease rule with resourceNames');
    rule.resourceNames.push(...services.map(rolloutLeaseName));
    return;
  }
  throw new Error('no Role qwenops-worker-serving in the rendered manifests');
}

export interface K8sTestEnvironment {
  plane: KubeControlPlane;
  worker: KubeConfig;
  workerKubeconfigPath: string;
  backend(options?: Partial<KubernetesBackendOptions>): KubernetesBackend;
  stop(): Promise<void>;
}

export async function startK8sEnvironment(): Promise<K8sTestEnvironment> {
  const plane = await startKubeControlPlane();
  try {
    const rendered: KubernetesObject[] = await kustomizeBuild(path.join(K8S_DIR, 'overlays', 'dev'));
    enrolServices(rendered, TEST_SERVICES);
    await plane.apply(rendered.filter((o) => IDENTITY_KINDS.has(o.kind ?? '')));
    const { kubeConfig: worker, path: workerKubeconfigPath } = await plane.serviceAccountKubeConfig(
      JOB_NAMESPACE,
      'qwenops-worker',
    );
    const templates = loadJobTemplates(path.join(K8S_DIR, 'base', 'job-templates'));
    return {
      plane,
      worker,
      workerKubeconfigPath,
      backend: (options = {}) =>
        new KubernetesBackend({
          kubeConfig: worker,
          jobTemplates: templates,
          // Short server-side watch timeouts so resumption is exercised in every wait.
          watchTimeoutSeconds: 5,
          keepAliveMs: 1_000,
          retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 1_000 },
          ...options,
        }),
      stop: () => plane.stop(),
    };
  } catch (err) {
    await plane.stop();
    throw err;
  }
}
