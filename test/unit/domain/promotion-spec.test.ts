import { describe, expect, it } from 'vitest';
import { parseCanaryReleaseSpec } from '../../../src/domain/canary.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { InputValidationError } from '../../../src/domain/validation.js';

function issues(input: unknown): string[] {
  try {
    parsePromotionSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(InputValidationError);
    return (err as InputValidationError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected a validation error');
}

describe('PromotionSpec', () => {
  it('fills every default from the seed when the UI sends only the model', () => {
    const spec = parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat' });
    expect(spec.hub).toEqual({ provider: 'modelscope', revision: 'master' });
    expect(spec.quantization).toMatchObject({ method: 'awq', bits: 4, groupSize: 128 });
    expect(spec.qualityGates.maxQualityDropPct).toBe(1);
    expect(spec.serving).toMatchObject({
      namespace: 'llm-prod',
      name: 'qwen-7b-chat',
      minReplicas: 3,
      maxReplicas: 15,
      gpuType: 'A10',
    });
    expect(spec.serving.vllm).toMatchObject({
      trustRemoteCode: true,
      maxModelLen: 8192,
      gpuMemoryUtilization: 0.92,
      enablePrefixCaching: true,
    });
    expect(spec.serving.env).toEqual({ VLLM_ATTENTION_BACKEND: 'FLASH_ATTN' });
    expect(spec.canary.steps).toEqual([10, 25, 50, 100]);
    expect(spec.canary.slo).toEqual({
      p99LatencyMs: 300,
      maxErrorRatePct: 1,
      maxLatencyRatioVsStable: 1.5,
      alpha: 0.01,
      minLatencyEffectRatio: 1.2,
      absolutePolicy: 'worse-than-stable',
      absoluteMarginPct: 20,
    });
    expect(spec.approvals).toEqual({ beforeCanary: true, beforePromote: true, timeoutSeconds: 86_400 });
  });

  it('accepts the JSON text the Temporal UI may send', () => {
    expect(parsePromotionSpec('{"model":"qwen/Qwen-7B-Chat"}').model).toBe('qwen/Qwen-7B-Chat');
  });

  it('names every bad field at once', () => {
    const found = issues({
      model: 'qwen/../x',
      serving: { name: 'UPPER', minReplicas: 5, maxReplicas: 2 },
      canary: { steps: [10, 10, 90], analysisWindowSeconds: 0 },
      qualityGates: { maxQualityDropPct: -0.5 },
    });
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^model: /),
        expect.stringMatching(/^serving\.name: must be a DNS-1123 label/),
        'serving.minReplicas: minReplicas must be <= maxReplicas',
        'canary.steps.1: must be greater than the previous step (10)',
        'canary.steps.2: the last step must be 100',
        'canary.analysisWindowSeconds: analysisWindowSeconds must be > 0',
        'qualityGates.maxQualityDropPct: must be > 0',
      ]),
    );
  });

  it.each([
    ['not JSON', '{model:', /malformed JSON/],
    ['an array', [1, 2], /expected a JSON object, got an array/],
    ['null', null, /expected a JSON object, got null/],
    ['a model without owner', { model: 'Qwen-7B-Chat' }, /must be "<owner>\/<name>"/],
    ['a model with a backslash', { model: 'qwen/..\\x' }, /model: /],
    [
      'a revision with a slash',
      { model: 'qwen/Qwen-7B-Chat', hub: { revision: 'a/b' } },
      /hub\.revision: must be a branch/,
    ],
    [
      'vLLM flags that are not flags',
      { model: 'qwen/Qwen-7B-Chat', serving: { vllm: { extraArgs: ['rm -rf'] } } },
      /extraArgs\.0: must look like --flag/,
    ],
    [
      'a GPU memory utilisation above 1',
      { model: 'qwen/Qwen-7B-Chat', serving: { vllm: { gpuMemoryUtilization: 1.5 } } },
      /must be <= 1/,
    ],
  ])('refuses %s', (_what, input, message) => {
    expect(() => parsePromotionSpec(input)).toThrow(message);
  });

  it('derives DNS-safe service names from model ids', () => {
    expect(parsePromotionSpec({ model: 'qwen/Qwen2.5-7B-Instruct' }).serving.name).toBe(
      'qwen2-5-7b-instruct',
    );
  });
});

describe('CanaryReleaseSpec', () => {
  it('defaults to an unattended release with no load test', () => {
    const spec = parseCanaryReleaseSpec({
      serving: { name: 'qwen-7b-chat' },
      storageUri: 'pvc://models/qwen-awq',
    });
    expect(spec.approvals).toMatchObject({ beforeCanary: false, beforePromote: false });
    expect(spec.loadTest.enabled).toBe(false);
    expect(spec.serving.namespace).toBe('llm-prod');
  });

  it('requires the service name and refuses traversal in the storage URI', () => {
    expect(() => parseCanaryReleaseSpec({ storageUri: 's3://b/k' })).toThrow(/serving/);
    expect(() =>
      parseCanaryReleaseSpec({ serving: { name: 'a' }, storageUri: 'file:///models/../etc' }),
    ).toThrow(/path traversal/);
  });
});

describe('canary.baseline', () => {
  it('is off by default and needs the Standard serving mode, naming both fields', () => {
    expect(parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat' }).canary.baseline).toBe(false);
    expect(issues({ model: 'qwen/Qwen-7B-Chat', canary: { baseline: true } })).toEqual([
      'canary.baseline: needs serving.deploymentMode "Standard" (it is "Serverless": that mode routes to at most two revisions)',
    ]);
    const spec = parsePromotionSpec({
      model: 'qwen/Qwen-7B-Chat',
      canary: { baseline: true },
      serving: { deploymentMode: 'Standard' },
    });
    expect(spec.canary.baseline).toBe(true);
  });

  it('is checked the same way in a canary release spec', () => {
    const release = {
      serving: { name: 'qwen-chat', deploymentMode: 'RawDeployment' },
      storageUri: 's3://models/qwen/v2',
      canary: { baseline: true },
    };
    expect(() => parseCanaryReleaseSpec(release)).toThrow(
      /canary\.baseline: needs serving\.deploymentMode "Standard"/,
    );
    expect(
      parseCanaryReleaseSpec({ ...release, serving: { name: 'qwen-chat', deploymentMode: 'Standard' } })
        .canary.baseline,
    ).toBe(true);
  });
});
