import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputValidationError } from '../../../src/domain/validation.js';
import {
  type CapacityPlan,
  countParameters,
  GiB,
  kvBytesPerToken,
  ModelConfigError,
  modelShapeFromConfig,
  PlanDoesNotFitError,
  type PlanInput,
  planCapacity,
} from '../../../src/planning/index.js';
import { runCli } from '../cli/run-cli.js';

// The production plan's resource table (seed, section 3), reproduced from the models'
// config.json shapes. Memory figures are compared in GiB and GB: the plan does not say
// which, and 7B bf16 (15.44e9 bytes = 14.38 GiB) reads as "14 GB" either way.

const CONFIGS = path.resolve('test/fixtures/model-configs');
const shapeOf = (id: string) => {
  const file = path.join(CONFIGS, `${id.replace('/', '__')}.json`);
  return modelShapeFromConfig(JSON.parse(readFileSync(file, 'utf8')), file);
};
const plan = (id: string, input: Omit<PlanInput, 'model'>): CapacityPlan =>
  planCapacity(id, shapeOf(id), { model: id, ...input });

describe('parameter counts from config.json', () => {
  it.each([
    ['qwen/Qwen-1_8B-Chat', 1.8, 1.9, 1.8, 1.9],
    ['qwen/Qwen-7B-Chat', 7.6, 7.8, 7.6, 7.8],
    ['qwen/Qwen-72B-Chat', 72, 72.5, 72, 72.5],
    ['qwen/Qwen2-57B-A14B-Instruct', 57, 58, 13.5, 14.5],
    ['qwen/Qwen1.5-MoE-A2.7B-Chat', 14, 14.5, 2.4, 2.9],
  ])('%s: total and active parameters match the published size', (id, lo, hi, activeLo, activeHi) => {
    const counts = countParameters(shapeOf(id));
    expect(counts.total / 1e9).toBeGreaterThanOrEqual(lo);
    expect(counts.total / 1e9).toBeLessThanOrEqual(hi);
    expect(counts.active / 1e9).toBeGreaterThanOrEqual(activeLo);
    expect(counts.active / 1e9).toBeLessThanOrEqual(activeHi);
  });

  it('KV bytes per token: 2 x layers x KV heads x head dim x 2 bytes (GQA counts KV heads only)', () => {
    expect(kvBytesPerToken(shapeOf('qwen/Qwen-7B-Chat'))).toBe(2 * 32 * 32 * 128 * 2);
    expect(kvBytesPerToken(shapeOf('qwen/Qwen2-57B-A14B-Instruct'))).toBe(2 * 28 * 4 * 128 * 2);
  });

  it('a tied lm_head is not counted twice', () => {
    const config = JSON.parse(readFileSync(path.join(CONFIGS, 'qwen__Qwen-7B-Chat.json'), 'utf8'));
    const untied = countParameters(modelShapeFromConfig(config, 'untied'));
    const tied = countParameters(modelShapeFromConfig({ ...config, tie_word_embeddings: true }, 'tied'));
    expect(untied.total - tied.total).toBe(151936 * 4096);
  });

  it('refuses a config without the shape fields, naming the file', () => {
    expect(() => modelShapeFromConfig({ model_type: 'qwen2' }, 'x/config.json')).toThrow(ModelConfigError);
    expect(() => modelShapeFromConfig({ model_type: 'qwen2' }, 'x/config.json')).toThrow(/x\/config\.json/);
  });
});

describe("the plan's resource table", () => {
  it('Qwen-1.8B on one T4 (plan: 6 GB): one full 8K sequence fits in 6 GB +- 1 GiB, float16 (no bf16 on Turing)', () => {
    const p = plan('qwen/Qwen-1_8B-Chat', { gpu: 'T4', quant: 'none', maxModelLen: 8192 });
    expect(p.tensorParallelSize).toBe(1);
    expect(p.weightsGiB).toBeGreaterThan(3.2);
    expect(p.weightsGiB).toBeLessThan(3.8);
    expect(Math.abs(p.minimumGiB - 6)).toBeLessThanOrEqual(1);
    expect(p.serving.vllm.dtype).toBe('half');
    expect(p.serving.env).toEqual({});
  });

  it('Qwen-7B-Chat bf16 on one A10 (plan: 14 GB): weights 14-15.5 (GiB and GB)', () => {
    const p = plan('qwen/Qwen-7B-Chat', { gpu: 'A10', quant: 'none', maxModelLen: 8192 });
    expect(p.tensorParallelSize).toBe(1);
    for (const weights of [p.weightsGiB, p.weightsGB]) {
      expect(weights).toBeGreaterThanOrEqual(14);
      expect(weights).toBeLessThanOrEqual(15.5);
    }
    expect(p.serving.vllm.dtype).toBe('bfloat16');
    expect(p.chosen.concurrency).toBeGreaterThanOrEqual(1);
  });

  it('Qwen-7B-Chat AWQ on one A10 (plan: 9.6 GB): weights + runtime reserve within 9.6 GB, at most 30 % under it', () => {
    const awq = plan('qwen/Qwen-7B-Chat', { gpu: 'A10', quant: 'awq', maxModelLen: 8192 });
    const bf16 = plan('qwen/Qwen-7B-Chat', { gpu: 'A10', quant: 'none', maxModelLen: 8192 });
    const staticGB = (awq.staticGiB * GiB) / 1e9;
    expect(staticGB).toBeLessThanOrEqual(9.6);
    expect(staticGB).toBeGreaterThanOrEqual(9.6 * 0.7);
    expect(awq.tensorParallelSize).toBe(1);
    expect(awq.serving.vllm.dtype).toBe('half');
    // The freed memory goes to the KV cache: more concurrent sequences than bf16.
    expect(awq.chosen.concurrency).toBeGreaterThan(bf16.chosen.concurrency);
  });

  it('Qwen-72B-Chat on A100 80G (plan: 140 GB, TP=2): weights within 140 GB +- 5 %, TP=2 at a 2K context', () => {
    const p = plan('qwen/Qwen-72B-Chat', { gpu: 'A100-80G', quant: 'none', maxModelLen: 2048 });
    expect(p.tensorParallelSize).toBe(2);
    expect(p.serving.gpusPerReplica).toBe(2);
    expect(p.serving.vllm.tensorParallelSize).toBe(2);
    for (const weights of [p.weightsGiB, p.weightsGB])
      expect(Math.abs(weights / 140 - 1)).toBeLessThanOrEqual(0.05);
    // An 8K context does not leave room for one sequence's KV cache on two cards.
    expect(plan('qwen/Qwen-72B-Chat', { gpu: 'A100-80G', maxModelLen: 8192 }).minimumTensorParallelSize).toBe(
      4,
    );
  });

  it('MoE (Qwen2-57B-A14B) on A100 80G with a 32K context: TP=2 is the smallest that fits, TP=4 when the load makes it cheaper', () => {
    const light = plan('qwen/Qwen2-57B-A14B-Instruct', { gpu: 'A100-80G', maxModelLen: 32768, qps: 10 });
    expect(light.minimumTensorParallelSize).toBe(2);
    expect(light.tensorParallelSize).toBe(2);
    const heavy = plan('qwen/Qwen2-57B-A14B-Instruct', { gpu: 'A100-80G', maxModelLen: 32768, qps: 500 });
    expect(heavy.tensorParallelSize).toBe(4);
    expect(heavy.serving.vllm.maxModelLen).toBe(32768);
    const tp2 = heavy.options.find((o) => o.tensorParallelSize === 2);
    expect(heavy.chosen.gpus).toBeLessThan(tp2?.gpus ?? 0);
  });
});

describe('replicas and the serving spec', () => {
  it("keeps the plan's 3-15 replicas for a light load and grows past them for a heavy one", () => {
    const light = plan('qwen/Qwen-7B-Chat', { gpu: 'A10', quant: 'awq', qps: 1 });
    expect([light.serving.minReplicas, light.serving.maxReplicas]).toEqual([3, 15]);
    const heavy = plan('qwen/Qwen-7B-Chat', { gpu: 'A10', quant: 'awq', maxModelLen: 2048, qps: 400 });
    expect(heavy.chosen.replicasForLoad).toBe(Math.ceil((400 * 0.3) / (heavy.chosen.concurrency * 0.7)));
    expect(heavy.serving.minReplicas).toBe(heavy.chosen.replicasForLoad);
    expect(heavy.serving.maxReplicas).toBeGreaterThanOrEqual(heavy.serving.minReplicas);
  });

  it('the vLLM args are those of the serving spec', () => {
    const p = plan('qwen/Qwen-72B-Chat', { gpu: 'A100-80G', maxModelLen: 2048 });
    expect(p.vllmArgs).toEqual([
      '--model=qwen/Qwen-72B-Chat',
      '--max-model-len=2048',
      '--gpu-memory-utilization=0.92',
      '--dtype=bfloat16',
      '--tensor-parallel-size=2',
      '--trust-remote-code',
      '--enable-prefix-caching',
    ]);
  });
});

describe('refusals', () => {
  it('a model that fits on no count of the GPU names model, GPU and the memory needed', () => {
    const attempt = () => plan('qwen/Qwen-72B-Chat', { gpu: 'T4' });
    expect(attempt).toThrow(PlanDoesNotFitError);
    expect(attempt).toThrow(/qwen\/Qwen-72B-Chat does not fit on 8 or fewer T4 GPUs: it needs \d+\.\d GiB/);
  });

  it('bad inputs name the flag', () => {
    try {
      plan('qwen/Qwen-7B-Chat', { gpu: 'B200' as never, maxModelLen: 12.5, p99Ms: 0 });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InputValidationError);
      const paths = (err as InputValidationError).issues.map((i) => i.path);
      expect(paths).toEqual(expect.arrayContaining(['--gpu', '--max-model-len', '--p99-ms']));
    }
  });
});

describe('qwenops plan', () => {
  it('prints the plan as JSON with --json', async () => {
    const { code, stdout } = await runCli(
      '--json',
      'plan',
      '--model',
      'qwen/Qwen-7B-Chat',
      '--gpu',
      'A10',
      '--quant',
      'awq',
    );
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.tensorParallelSize).toBe(1);
    expect(out.serving).toMatchObject({ gpuType: 'A10', gpusPerReplica: 1, minReplicas: 3, maxReplicas: 15 });
    expect(out.vllmArgs).toContain('--max-model-len=8192');
  });

  it('reads a config.json by path and prints the human plan', async () => {
    const { code, stdout } = await runCli(
      'plan',
      '--model',
      path.join(CONFIGS, 'qwen__Qwen-72B-Chat.json'),
      '--gpu',
      'A100-80G',
      '--max-model-len',
      '2048',
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/tensor par\. {2}2/);
    expect(stdout).toContain('--tensor-parallel-size=2');
  });

  it('exits 64 naming the flag for bad input, 1 naming the memory for a model that does not fit', async () => {
    const bad = await runCli('plan', '--model', 'qwen/Qwen-7B-Chat', '--gpu', 'A10', '--qps', 'lots');
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('--qps');
    const unknown = await runCli('plan', '--model', 'qwen/No-Such-Model', '--gpu', 'A10');
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toContain('--model');
    const tooBig = await runCli('plan', '--model', 'qwen/Qwen-72B-Chat', '--gpu', 'T4');
    expect(tooBig.code).toBe(1);
    expect(tooBig.stderr).toMatch(/Qwen-72B-Chat does not fit .* T4 .* needs [\d.]+ GiB/);
  });
});
