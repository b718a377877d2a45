import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { servingStatusFrom, trafficSettled } from '../../../src/cluster/kubernetes/canary/index.js';
import {
  buildPredictor,
  DEFAULT_PREDICTOR_OPTIONS,
  type InferenceService,
  predictorDigest,
} from '../../../src/cluster/kubernetes/inference-service.js';
import { ClusterError } from '../../../src/cluster/port.js';
import { artifactKeys } from '../../../src/domain/artifact-layout.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { buildRevisionSpec } from '../../../src/domain/serving-revision.js';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import { readYamlDocuments } from '../../support/kube.js';

const spec = parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat' });
const uri = `s3://qwenops/${artifactKeys.quantized('qwen/Qwen-7B-Chat', 'master', 'awq', 4, 128)}`;
const revision = buildRevisionSpec(spec.serving, uri, { quantized: true, labels: {} });

describe('buildPredictor', () => {
  it('writes exactly the reviewed Qwen-7B-Chat-AWQ template in k8s/ for the default promotion spec', () => {
    const [template] = readYamlDocuments(
      path.join(repoRoot, 'k8s', 'base', 'serving', 'qwen-7b-chat-awq.inferenceservice.yaml'),
    ) as unknown as InferenceService[];
    const predictor = buildPredictor(revision, DEFAULT_PREDICTOR_OPTIONS);
    const { labels: _labels, ...withoutLabels } = predictor;
    expect(withoutLabels).toEqual(template?.spec.predictor);
    expect(template?.metadata.name).toBe(spec.serving.name);
  });

  it('carries the seed vLLM settings and no --quantization flag (vLLM reads it from the checkpoint)', () => {
    const args = buildPredictor(revision, DEFAULT_PREDICTOR_OPTIONS).model.args ?? [];
    expect(args).toEqual([
      '--model=/mnt/models',
      '--served-model-name=qwen-7b-chat',
      '--port=8080',
      '--max-model-len=8192',
      '--gpu-memory-utilization=0.92',
      '--dtype=auto',
      '--tensor-parallel-size=1',
      '--trust-remote-code',
      '--enable-prefix-caching',
    ]);
  });

  it('refuses a revision KServe could not serve, naming the field', () => {
    expect(() =>
      buildPredictor({ ...revision, storageUri: 'file:///tmp/m' }, DEFAULT_PREDICTOR_OPTIONS),
    ).toThrow('ServingRevisionSpec.storageUri');
    expect(() =>
      buildPredictor({ ...revision, minReplicas: 5, maxReplicas: 3 }, DEFAULT_PREDICTOR_OPTIONS),
    ).toThrow('ServingRevisionSpec.maxReplicas');
  });
});

describe('predictorDigest', () => {
  it('identifies what is served, not who deployed it or how much traffic it gets', () => {
    const a = buildPredictor(
      { ...revision, labels: { 'qwenops.io/workflow-id': 'wf-1' } },
      DEFAULT_PREDICTOR_OPTIONS,
    );
    const b = buildPredictor(
      { ...revision, labels: { 'qwenops.io/workflow-id': 'wf-2' } },
      DEFAULT_PREDICTOR_OPTIONS,
    );
    expect(predictorDigest(a)).toBe(predictorDigest({ ...b, canaryTrafficPercent: 10 }));
    expect(predictorDigest(a)).not.toBe(
      predictorDigest(
        buildPredictor({ ...revision, storageUri: 's3://qwenops/other' }, DEFAULT_PREDICTOR_OPTIONS),
      ),
    );
  });
});

function serverless(
  overrides: Partial<InferenceService> & { status?: InferenceService['status'] },
): InferenceService {
  const predictor = buildPredictor({ ...revision, storageUri: 's3://b/v2' }, DEFAULT_PREDICTOR_OPTIONS);
  const d2 = predictorDigest(predictor);
  return {
    apiVersion: 'serving.kserve.io/v1beta1',
    kind: 'InferenceService',
    metadata: {
      name: 'svc',
      namespace: 'llm-prod',
      generation: 2,
      annotations: {
        'serving.kserve.io/deploymentMode': 'Serverless',
        'qwenops.io/revision-digest': d2,
        'qwenops.io/stable-digest': 'stable',
        'qwenops.io/stable-storage-uri': 's3://b/v1',
      },
    },
    spec: { predictor: { ...predictor, canaryTrafficPercent: 10 } },
    ...overrides,
  };
}

const readyConditions = [{ type: 'Ready', status: 'True' }];

describe('servingStatusFrom / trafficSettled (Serverless)', () => {
  const split = {
    observedGeneration: 2,
    conditions: readyConditions,
    components: {
      predictor: {
        latestCreatedRevision: 'svc-predictor-00002',
        latestReadyRevision: 'svc-predictor-00002',
        latestRolledoutRevision: 'svc-predictor-00001',
        traffic: [
          { tag: 'latest', revisionName: 'svc-predictor-00002', latestRevision: true, percent: 10 },
          { tag: 'prev', revisionName: 'svc-predictor-00001', latestRevision: false, percent: 90 },
        ],
      },
    },
  };

  it('reports the split with the storage URI of each side', () => {
    const status = servingStatusFrom(serverless({ status: split }), 'Serverless');
    expect(status).toMatchObject({
      canaryPercent: 10,
      canaryStorageUri: 's3://b/v2',
      stableStorageUri: 's3://b/v1',
      ready: true,
    });
    expect(status.traffic).toEqual([
      expect.objectContaining({
        revision: 'svc-predictor-00002',
        percent: 10,
        tag: 'latest',
        storageUri: 's3://b/v2',
      }),
      expect.objectContaining({
        revision: 'svc-predictor-00001',
        percent: 90,
        tag: 'prev',
        storageUri: 's3://b/v1',
      }),
    ]);
    expect(trafficSettled(serverless({ status: split }), 'Serverless', 10).settled).toBe(true);
    expect(trafficSettled(serverless({ status: split }), 'Serverless', 25).settled).toBe(false);
  });

  it('is not settled until the controller has observed the current generation', () => {
    const stale = serverless({ status: { ...split, observedGeneration: 1 } });
    const result = trafficSettled(stale, 'Serverless', 10);
    expect(result.settled).toBe(false);
    expect(result.progress).toContain('has not observed generation 2');
  });

  it('stops waiting when KServe reports the revision failed', () => {
    const failed = serverless({
      status: {
        ...split,
        conditions: [{ type: 'Ready', status: 'False', reason: 'RevisionFailed', message: 'OOMKilled' }],
      },
    });
    expect(() => trafficSettled(failed, 'Serverless', 10)).toThrow(ClusterError);
    expect(() => trafficSettled(failed, 'Serverless', 10)).toThrow('OOMKilled');
  });
});
