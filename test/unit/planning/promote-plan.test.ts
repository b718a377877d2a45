import { describe, expect, it } from 'vitest';
import { mergePlannedServing, plannedServing } from '../../../src/cli/commands/plan.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';

// `qwenops promote --plan-gpu`: the capacity plan fills the promotion's serving block, and
// whatever the spec sets itself wins.

describe('promote --plan-gpu', () => {
  it("fills serving from the plan: 7B-Chat AWQ on one A10, the plan's replicas and vLLM args", () => {
    const serving = plannedServing('qwen/Qwen-7B-Chat', { gpu: 'A10' });
    const spec = parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat', serving });
    expect(spec.serving).toMatchObject({
      gpuType: 'A10',
      gpusPerReplica: 1,
      minReplicas: 3,
      maxReplicas: 15,
      vllm: { tensorParallelSize: 1, maxModelLen: 8192, gpuMemoryUtilization: 0.92 },
    });
  });

  it('asks for tensor parallelism where one card cannot hold the model (72B on A100-80G)', () => {
    const serving = plannedServing('qwen/Qwen-72B-Chat', {
      gpu: 'A100-80G',
      quant: 'none',
      maxModelLen: 2048,
    });
    expect(serving).toMatchObject({ gpusPerReplica: 2, vllm: { tensorParallelSize: 2 } });
  });

  it('keeps what the spec sets, field by field, including single vLLM args', () => {
    const planned = plannedServing('qwen/Qwen-7B-Chat', { gpu: 'A10' });
    const merged = mergePlannedServing(planned, {
      name: 'chat',
      minReplicas: 5,
      vllm: { maxModelLen: 4096 },
    });
    const spec = parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat', serving: merged });
    expect(spec.serving).toMatchObject({
      name: 'chat',
      minReplicas: 5,
      gpuType: 'A10',
      vllm: { maxModelLen: 4096, tensorParallelSize: 1 },
    });
  });

  it('names the problem for a model that fits no listed GPU count', () => {
    expect(() => plannedServing('qwen/Qwen-72B-Chat', { gpu: 'T4', quant: 'none' })).toThrow(
      /72B|does not fit|fit/i,
    );
  });
});
