import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadJobTemplates } from '../../../src/cluster/kubernetes/job-manifest.js';
import { checkWorkerQueues, type Manifest, PODMONITOR_CRD_FILE } from '../../support/k8s-manifests.js';
import {
  applyObject,
  type KubeControlPlane,
  kustomizeBuild,
  readYamlDocuments,
  startKubeControlPlane,
} from '../../support/kube.js';
import { K8S_DIR } from './environment.js';

// Every manifest in k8s/ (both overlays rendered by kustomize, plus the Job and
// InferenceService templates that are not kustomize resources) is sent to a real
// kube-apiserver as a server-side dry run, exactly as written (fieldValidation=Strict:
// unknown or misspelt fields are errors), and must draw no warnings (deprecated APIs, Pod
// Security "would violate restricted" notices).

let plane: KubeControlPlane;

beforeAll(async () => {
  plane = await startKubeControlPlane();
  // k8s/ ships a PodMonitor (the revision label of the canary analysis): the Prometheus
  // Operator's real CRD, so the dry run checks it against the real schema.
  await plane.apply(readYamlDocuments(PODMONITOR_CRD_FILE));
});

afterAll(async () => {
  await plane?.stop();
});

/**
 * Server-side apply, dry run, for every object (`kubectl apply --server-side --dry-run=server`).
 * Namespaced objects need their namespace to exist (admission checks it), so namespaces
 * are dry-run and then applied for real first.
 */
async function dryRunAll(objects: KubernetesObject[]): Promise<string[]> {
  const warnings: string[] = [];
  const note = (object: KubernetesObject, found: string[]) =>
    warnings.push(...found.map((w) => `${object.kind}/${object.metadata?.name}: ${w}`));
  for (const ns of objects.filter((o) => o.kind === 'Namespace')) {
    note(ns, (await applyObject(plane, ns, { dryRun: true })).warnings);
    await applyObject(plane, ns);
  }
  for (const object of objects.filter((o) => o.kind !== 'Namespace')) {
    note(object, (await applyObject(plane, object, { dryRun: true })).warnings);
  }
  return warnings;
}

const EXPECTED_KINDS = {
  // qwenops, llm-prod, and llm-validation (the safety gate's private services).
  Namespace: 3,
  ServiceAccount: 3,
  Role: 3,
  RoleBinding: 3,
  ConfigMap: 2,
  // One worker per task queue: default, gpu-jobs, cluster, knowledge.
  Deployment: 4,
  PodDisruptionBudget: 4,
  HorizontalPodAutoscaler: 4,
  NetworkPolicy: 3,
  ServingRuntime: 1,
  PodMonitor: 1,
};

describe('k8s/ manifests on kube-apiserver (server-side dry run)', () => {
  for (const overlay of ['dev', 'prod']) {
    it(`accepts every object of the ${overlay} overlay`, async () => {
      const objects = await kustomizeBuild(path.join(K8S_DIR, 'overlays', overlay));
      const kinds: Record<string, number> = {};
      for (const o of objects) kinds[o.kind as string] = (kinds[o.kind as string] ?? 0) + 1;
      expect(kinds).toEqual(EXPECTED_KINDS);
      expect(await dryRunAll(objects)).toEqual([]);
      // Every task queue (from the code) has its worker, HPA and PDB, as rendered.
      expect(checkWorkerQueues(objects as Manifest[]).problems).toEqual([]);

      // What the overlay changed is in the rendered objects.
      const deployments = objects.filter((o) => o.kind === 'Deployment') as Array<
        KubernetesObject & { spec: { replicas: number } }
      >;
      expect(new Set(deployments.map((d) => d.spec.replicas))).toEqual(new Set([overlay === 'dev' ? 1 : 3]));
      for (const o of objects) expect(o.metadata?.labels?.['qwenops.io/environment']).toBe(overlay);
    });
  }

  it('ships the Job templates in the ConfigMap the gpu-jobs worker mounts, unchanged', async () => {
    const objects = await kustomizeBuild(path.join(K8S_DIR, 'overlays', 'prod'));
    const configMap = objects.find(
      (o) => o.kind === 'ConfigMap' && o.metadata?.name?.startsWith('qwenops-job-templates-'),
    ) as (KubernetesObject & { data: Record<string, string> }) | undefined;
    expect(configMap).toBeDefined();
    const dir = path.join(K8S_DIR, 'base', 'job-templates');
    for (const file of readdirSync(dir)) {
      expect(configMap?.data[file]).toBe(readFileSync(path.join(dir, file), 'utf8'));
    }
    const worker = objects.find((o) => o.metadata?.name === 'qwenops-worker-gpu-jobs') as unknown as {
      spec: { template: { spec: { volumes: Array<{ name: string; configMap?: { name: string } }> } } };
    };
    // kustomize rewired the volume to the hashed ConfigMap name.
    expect(worker.spec.template.spec.volumes).toContainEqual({
      name: 'job-templates',
      configMap: { name: configMap?.metadata?.name },
    });
    // The worker's loader accepts them.
    expect(Object.keys(loadJobTemplates(dir)).sort()).toEqual(['download', 'evaluate', 'quantize']);
  });

  it('accepts the Job templates and the Qwen-7B-Chat-AWQ InferenceService template', async () => {
    const files = [
      ...readdirSync(path.join(K8S_DIR, 'base', 'job-templates')).map((f) =>
        path.join(K8S_DIR, 'base', 'job-templates', f),
      ),
      path.join(K8S_DIR, 'base', 'serving', 'qwen-7b-chat-awq.inferenceservice.yaml'),
    ];
    const objects = files.flatMap((f) => readYamlDocuments(f));
    expect(objects.map((o) => o.kind)).toEqual(['Job', 'Job', 'Job', 'InferenceService']);
    // Namespaces come from the base.
    const base = await kustomizeBuild(path.join(K8S_DIR, 'base'));
    await dryRunAll(base.filter((o) => o.kind === 'Namespace'));
    expect(await dryRunAll(objects)).toEqual([]);
  });

  it('is not a vacuous check: a misspelt field is refused, a host-network pod is flagged', async () => {
    const [template] = readYamlDocuments(path.join(K8S_DIR, 'base', 'job-templates', 'quantize.yaml'));
    const typo = YAML.parse(JSON.stringify(template));
    typo.spec.backofLimit = 3;
    await expect(applyObject(plane, typo, { dryRun: true })).rejects.toThrow(
      /\.spec\.backofLimit: field not declared in schema/,
    );
    const hostNetwork = YAML.parse(JSON.stringify(template));
    hostNetwork.spec.template.spec.hostNetwork = true;
    const response = await applyObject(plane, hostNetwork, { dryRun: true });
    expect(response.warnings.join('\n')).toMatch(/would violate PodSecurity \\"restricted/);
    // The PodMonitor is checked against the Prometheus Operator's schema too.
    const [podMonitor] = readYamlDocuments(path.join(K8S_DIR, 'base', 'serving', 'vllm-podmonitor.yaml'));
    const misspelt = YAML.parse(JSON.stringify(podMonitor));
    misspelt.spec.podMetricsEndpoints[0].relabelings[0].target_label = 'revision';
    await expect(applyObject(plane, misspelt, { dryRun: true })).rejects.toThrow(/target_label/);
  });
});
