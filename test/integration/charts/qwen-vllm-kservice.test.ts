import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { modelShapeFromConfig, planCapacity } from '../../../src/planning/index.js';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import { toolPath } from '../../support/tools.js';

// charts/qwen-vllm-kservice with the real helm (scripts/setup/52-helm.sh): lint and render
// with the defaults and the 72B / MoE example values, and the refusals of values.schema.json
// and the templates. A missing helm fails the test (toolPath throws); it never skips.
// The server-side dry run of what it renders is in qwen-vllm-kservice.apiserver.test.ts.

const run = promisify(execFile);
const CHART = path.join(repoRoot, 'charts', 'qwen-vllm-kservice');
const EXAMPLE_72B = path.join(CHART, 'examples', 'qwen-72b-chat.values.yaml');
const EXAMPLE_MOE = path.join(CHART, 'examples', 'qwen2-57b-a14b-moe.values.yaml');

let helm: string;
beforeAll(() => {
  helm = toolPath('helm');
});

async function helmRun(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run(helm, args, { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field
type Obj = Record<string, any>;

async function render(...extra: string[]): Promise<{ isvc: Obj; hpa?: Obj }> {
  const { code, out } = await helmRun('template', 'qwen', CHART, '--namespace', 'llm-prod', ...extra);
  expect(code, out).toBe(0);
  const docs = YAML.parseAllDocuments(out)
    .map((d) => d.toJS() as Obj | null)
    .filter((d): d is Obj => d !== null);
  const isvc = docs.find((d) => d.kind === 'InferenceService');
  if (!isvc) throw new Error(`no InferenceService rendered:\n${out}`);
  return { isvc, hpa: docs.find((d) => d.kind === 'HorizontalPodAutoscaler') };
}

const planFor = (id: string, gpu: 'A100-80G', maxModelLen: number, qps: number) => {
  const file = path.join(repoRoot, 'test/fixtures/model-configs', `${id.replace('/', '__')}.json`);
  const shape = modelShapeFromConfig(JSON.parse(readFileSync(file, 'utf8')), file);
  return planCapacity(id, shape, { model: id, gpu, maxModelLen, qps });
};

describe('charts/qwen-vllm-kservice', () => {
  it.each([
    ['defaults', []],
    ['72B example', ['--values', EXAMPLE_72B]],
    ['MoE example', ['--values', EXAMPLE_MOE]],
  ])('helm lint passes with %s', async (_name, extra) => {
    const { code, out } = await helmRun('lint', '--strict', CHART, ...(extra as string[]));
    expect(code, out).toBe(0);
    expect(out).toContain('0 chart(s) failed');
  });

  it("renders the plan's 7B AWQ InferenceService and its HPA with the defaults", async () => {
    const { isvc, hpa } = await render();
    expect(isvc.apiVersion).toBe('serving.kserve.io/v1beta1');
    expect(isvc.metadata.annotations).toMatchObject({
      'serving.kserve.io/deploymentMode': 'RawDeployment',
      'serving.kserve.io/autoscalerClass': 'external',
    });
    const predictor = isvc.spec.predictor;
    expect([predictor.minReplicas, predictor.maxReplicas]).toEqual([3, 15]);
    expect(predictor.nodeSelector).toEqual({ 'gpu-type': 'A10' });
    const model = predictor.model;
    expect(model.args).toEqual(
      expect.arrayContaining([
        '--max-model-len=8192',
        '--gpu-memory-utilization=0.92',
        '--tensor-parallel-size=1',
        '--trust-remote-code',
        '--enable-prefix-caching',
      ]),
    );
    expect(model.resources.limits['nvidia.com/gpu']).toBe('1');
    expect(model.livenessProbe).toMatchObject({
      httpGet: { path: '/health', port: 8080 },
      initialDelaySeconds: 120,
    });
    expect(model.readinessProbe.initialDelaySeconds).toBe(120);
    expect(model.storageUri).toBe('s3://qwenops/models/qwen/Qwen-7B-Chat/master/awq-w4-g128');
    expect(model.volumeMounts).toBeUndefined();
    expect(hpa?.spec).toMatchObject({
      scaleTargetRef: { kind: 'Deployment', name: 'qwen-predictor' },
      minReplicas: 3,
      maxReplicas: 15,
    });
  });

  it('renders the 72B example: TP=2 on two A100 80G, weights from the PVC, shared memory for NCCL (as `qwenops plan` says)', async () => {
    const { isvc } = await render('--values', EXAMPLE_72B);
    const model = isvc.spec.predictor.model;
    expect(model.args).toContain('--tensor-parallel-size=2');
    expect(model.resources.limits['nvidia.com/gpu']).toBe('2');
    expect(model.storageUri).toBe('pvc://pvc-nfs-qwen-models/qwen/Qwen-72B-Chat');
    expect(model.volumeMounts).toEqual([{ name: 'dshm', mountPath: '/dev/shm' }]);
    expect(isvc.spec.predictor.volumes[0].emptyDir).toEqual({ medium: 'Memory', sizeLimit: '16Gi' });
    expect(planFor('qwen/Qwen-72B-Chat', 'A100-80G', 2048, 10).tensorParallelSize).toBe(2);
  });

  it('renders the MoE example: TP=4 with a 32K context (as `qwenops plan` chooses under load)', async () => {
    const { isvc } = await render('--values', EXAMPLE_MOE);
    const model = isvc.spec.predictor.model;
    expect(model.args).toEqual(expect.arrayContaining(['--tensor-parallel-size=4', '--max-model-len=32768']));
    expect(model.resources.requests['nvidia.com/gpu']).toBe('4');
    expect(planFor('qwen/Qwen2-57B-A14B-Instruct', 'A100-80G', 32768, 500).tensorParallelSize).toBe(4);
  });

  it('Serverless mode renders no HPA when it is turned off, and refuses one that is on', async () => {
    const { isvc, hpa } = await render(
      '--set',
      'deploymentMode=Serverless',
      '--set',
      'autoscaling.hpa.enabled=false',
    );
    expect(isvc.metadata.annotations['serving.kserve.io/autoscalerClass']).toBeUndefined();
    expect(hpa).toBeUndefined();
    const refused = await helmRun('template', 'qwen', CHART, '--set', 'deploymentMode=Serverless');
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain('Serverless scales with Knative');
  });

  it('refuses values the schema or the templates rule out', async () => {
    const badTp = await helmRun('template', 'qwen', CHART, '--set', 'vllm.tensorParallelSize=3');
    expect(badTp.code).not.toBe(0);
    expect(badTp.out).toMatch(/tensorParallelSize/);
    const mismatch = await helmRun('template', 'qwen', CHART, '--set', 'vllm.tensorParallelSize=2');
    expect(mismatch.code).not.toBe(0);
    expect(mismatch.out).toContain('resources.gpus (1) must equal vllm.tensorParallelSize (2)');
    const unknown = await helmRun('template', 'qwen', CHART, '--set', 'replicaz.min=1');
    expect(unknown.code).not.toBe(0);
    expect(unknown.out).toMatch(/replicaz/);
    const inverted = await helmRun('template', 'qwen', CHART, '--set', 'replicas.min=16');
    expect(inverted.code).not.toBe(0);
    expect(inverted.out).toContain('replicas.min must be <= replicas.max');
  });
});
