import path from 'node:path';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { KubernetesBackend, type KubernetesBackendOptions } from '../../../src/cluster/kubernetes/index.js';
import { loadJobTemplates } from '../../../src/cluster/kubernetes/job-manifest.js';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import { type KubeControlPlane, kustomizeBuild, startKubeControlPlane } from '../../support/kube.js';

// One control plane per test file, with qwenops' own namespaces, ServiceAccounts and RBAC
// applied from k8s/ (rendered by kustomize), and the backend running as the worker's
// ServiceAccount: every test in this tier also proves the Roles grant what the code uses.

export const JOB_NAMESPACE = 'qwenops';
export const SERVING_NAMESPACE = 'llm-prod';
export const K8S_DIR = path.join(repoRoot, 'k8s');

const IDENTITY_KINDS = new Set(['Namespace', 'ServiceAccount', 'Role', 'RoleBinding']);

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
