import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import {
  applyObject,
  type KubeControlPlane,
  readYamlDocuments,
  startKubeControlPlane,
} from '../../support/kube.js';
import { toolPath } from '../../support/tools.js';

// What charts/qwen-vllm-kservice renders (defaults, 72B and MoE examples) sent to a real
// kube-apiserver with KServe's CRDs as a server-side dry run (fieldValidation=Strict):
// unknown or misspelt fields, wrong types and deprecated APIs are errors or warnings.

const run = promisify(execFile);
const CHART = path.join(repoRoot, 'charts', 'qwen-vllm-kservice');

let plane: KubeControlPlane;

beforeAll(async () => {
  plane = await startKubeControlPlane({ installKServeCrds: true });
  await applyObject(plane, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'llm-prod' } });
});

afterAll(async () => {
  await plane?.stop();
});

async function rendered(...extra: string[]): Promise<KubernetesObject[]> {
  const { stdout } = await run(toolPath('helm'), [
    'template',
    'qwen',
    CHART,
    '--namespace',
    'llm-prod',
    ...extra,
  ]);
  return readYamlDocuments(stdout, true);
}

describe('charts/qwen-vllm-kservice on kube-apiserver (server-side dry run)', () => {
  it.each([
    ['defaults', []],
    ['72B example', ['--values', path.join(CHART, 'examples', 'qwen-72b-chat.values.yaml')]],
    ['MoE example', ['--values', path.join(CHART, 'examples', 'qwen2-57b-a14b-moe.values.yaml')]],
  ])('%s: every object is accepted without warnings', async (_name, extra) => {
    const objects = await rendered(...(extra as string[]));
    expect(objects.map((o) => o.kind).sort()).toEqual(['HorizontalPodAutoscaler', 'InferenceService']);
    for (const object of objects) {
      const response = await applyObject(plane, object, { dryRun: true });
      expect(response.warnings, `${object.kind}: ${response.warnings.join('; ')}`).toEqual([]);
    }
  });

  it('the dry run is not vacuous: a misspelt field in the InferenceService is refused', async () => {
    const [isvc] = (await rendered()).filter((o) => o.kind === 'InferenceService');
    const spec = (isvc as KubernetesObject & { spec: { predictor: { model: Record<string, unknown> } } })
      .spec;
    spec.predictor.model.storageURI = 's3://typo';
    await expect(applyObject(plane, isvc as KubernetesObject, { dryRun: true })).rejects.toThrow(
      /storageURI/,
    );
  });
});
