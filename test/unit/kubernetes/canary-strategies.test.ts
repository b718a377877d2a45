import { describe, expect, it } from 'vitest';
import { type CanaryStrategy, canaryStrategyFor } from '../../../src/cluster/kubernetes/canary/index.js';
import {
  buildPredictor,
  DEFAULT_PREDICTOR_OPTIONS,
  DEPLOYMENT_MODE_ANNOTATION,
  type InferenceService,
  ISVC_ANNOTATIONS,
  predictorDigest,
} from '../../../src/cluster/kubernetes/inference-service.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import {
  buildRevisionSpec,
  type DeploymentMode,
  type ServingRevisionSpec,
} from '../../../src/domain/serving-revision.js';

// The canary strategies are pure edits of an InferenceService: each test applies them to an
// object the way serving.ts does after a read, with no apiserver.

const spec = parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat' });
const revision = (storageUri: string): ServingRevisionSpec =>
  buildRevisionSpec(spec.serving, storageUri, { quantized: true, labels: {} });
const V1 = 's3://qwenops/models/v1';
const V2 = 's3://qwenops/models/v2';

function strategy(mode: DeploymentMode, name = 'svc'): CanaryStrategy {
  return canaryStrategyFor({
    ref: { namespace: 'llm-prod', name, deploymentMode: mode },
    predictor: DEFAULT_PREDICTOR_OPTIONS,
  });
}

/** The object deployService writes for `storageUri`. */
function deployed(mode: DeploymentMode, storageUri = V1, name = 'svc'): InferenceService {
  const predictor = buildPredictor(revision(storageUri), DEFAULT_PREDICTOR_OPTIONS);
  const digest = predictorDigest(predictor);
  return {
    apiVersion: 'serving.kserve.io/v1beta1',
    kind: 'InferenceService',
    metadata: {
      name,
      namespace: 'llm-prod',
      annotations: {
        [DEPLOYMENT_MODE_ANNOTATION]: mode,
        ...strategy(mode).deployAnnotations,
        [ISVC_ANNOTATIONS.revisionDigest]: digest,
        [ISVC_ANNOTATIONS.stableDigest]: digest,
        [ISVC_ANNOTATIONS.stableStorageUri]: storageUri,
      },
    },
    spec: { predictor },
  };
}

describe('Serverless strategy (canaryTrafficPercent)', () => {
  const s = strategy('Serverless');

  it('asks for tag routing on a new service', () => {
    expect(s.deployAnnotations).toEqual({ 'serving.kserve.io/enable-tag-routing': 'true' });
  });

  it('starts a canary by describing the new revision with its percent; the same start again changes nothing', () => {
    const isvc = deployed('Serverless');
    expect(s.startCanary(revision(V2), 10)(isvc)).toBe(true);
    expect(isvc.spec.predictor.canaryTrafficPercent).toBe(10);
    expect(isvc.spec.predictor.model.storageUri).toBe(V2);
    expect(isvc.metadata.annotations?.[ISVC_ANNOTATIONS.stableStorageUri]).toBe(V1);
    expect(s.startCanary(revision(V2), 10)(isvc)).toBe(false);
    expect(s.startCanary(revision(V2), 20)(isvc)).toBe(true);
    expect(isvc.spec.predictor.canaryTrafficPercent).toBe(20);
  });

  it('refuses to canary the stable revision and to step a canary that is not there', () => {
    expect(() => s.startCanary(revision(V1), 10)(deployed('Serverless'))).toThrow(
      expect.objectContaining({ code: 'Invalid', message: expect.stringContaining('as its stable one') }),
    );
    expect(() => s.setTraffic(50)(deployed('Serverless'))).toThrow(
      expect.objectContaining({ code: 'Invalid', message: expect.stringContaining('no canary in progress') }),
    );
  });

  it('promotes by dropping the field and remembering the new stable revision', () => {
    const isvc = deployed('Serverless');
    s.startCanary(revision(V2), 10)(isvc);
    expect(s.setTraffic(50)(isvc)).toBe(true);
    expect(s.setTraffic(50)(isvc)).toBe(false);
    expect(s.promote()(isvc)).toBe(true);
    expect(isvc.spec.predictor.canaryTrafficPercent).toBeUndefined();
    expect(isvc.metadata.annotations?.[ISVC_ANNOTATIONS.stableStorageUri]).toBe(V2);
    expect(s.promote()(isvc)).toBe(false);
    expect(s.rollBack()(isvc)).toBe(false);
  });

  it('rolls back by pinning 0 %; the rolled-back revision is no canary any more, and can start again', () => {
    const isvc = deployed('Serverless');
    s.startCanary(revision(V2), 10)(isvc);
    expect(s.rollBack()(isvc)).toBe(true);
    expect(isvc.spec.predictor.canaryTrafficPercent).toBe(0);
    expect(s.rollBack()(isvc)).toBe(false);
    expect(s.promote()(isvc)).toBe(false);
    expect(() => s.setTraffic(10)(isvc)).toThrow('no canary in progress');
    expect(s.startCanary(revision(V2), 0)(isvc)).toBe(true);
    expect(isvc.metadata.annotations?.[ISVC_ANNOTATIONS.rolledBackDigest]).toBeUndefined();
  });
});

describe('Standard strategy (spec.canary[])', () => {
  const s = strategy('Standard');

  it('starts a canary as a named entry beside the stable predictor, and re-aims it', () => {
    const isvc = deployed('Standard');
    expect(s.deployAnnotations).toEqual({});
    expect(s.startCanary(revision(V2), 20)(isvc)).toBe(true);
    const entry = isvc.spec.canary?.[0];
    expect(entry?.trafficPercent).toBe(20);
    expect(entry?.predictor.name).toMatch(/^r-[0-9a-f]{10}$/);
    expect(entry?.predictor.model.storageUri).toBe(V2);
    expect(isvc.spec.predictor.model.storageUri).toBe(V1);
    expect(s.startCanary(revision(V2), 20)(isvc)).toBe(false);
    expect(s.setTraffic(50)(isvc)).toBe(true);
    expect(isvc.spec.canary?.[0]?.trafficPercent).toBe(50);
  });

  it('promotes by making the entry the predictor, rolls back by removing it', () => {
    const promoted = deployed('Standard');
    s.startCanary(revision(V2), 20)(promoted);
    const name = promoted.spec.canary?.[0]?.predictor.name;
    expect(s.promote()(promoted)).toBe(true);
    expect(promoted.spec.canary).toBeUndefined();
    expect(promoted.spec.predictor).toMatchObject({ name, model: { storageUri: V2 } });
    expect(s.promote()(promoted)).toBe(false);

    const rolledBack = deployed('Standard');
    s.startCanary(revision(V2), 20)(rolledBack);
    expect(s.rollBack()(rolledBack)).toBe(true);
    expect(rolledBack.spec.canary).toBeUndefined();
    expect(rolledBack.spec.predictor.model.storageUri).toBe(V1);
    expect(s.rollBack()(rolledBack)).toBe(false);
    expect(() => s.setTraffic(10)(rolledBack)).toThrow('no canary in progress');
  });

  it('refuses a canary whose Deployment name would not fit 63 characters', () => {
    const name = 'q'.repeat(45);
    expect(() =>
      strategy('Standard', name).startCanary(revision(V2), 10)(deployed('Standard', V1, name)),
    ).toThrow(
      expect.objectContaining({ code: 'Invalid', message: expect.stringContaining('exceeds 63 characters') }),
    );
  });
});

describe('Standard strategy with a baseline (a second spec.canary[] entry)', () => {
  const s = strategy('Standard');
  /** What the controller reports once every entry runs at its percent. */
  const reported = (isvc: InferenceService): InferenceService => ({
    ...isvc,
    metadata: { ...isvc.metadata, generation: 1 },
    status: {
      observedGeneration: 1,
      conditions: [
        { type: 'Ready', status: 'True' },
        { type: 'CanaryPredictorReady', status: 'True' },
      ],
      canaryStatuses: (isvc.spec.canary ?? []).map((c) => ({
        name: c.predictor.name as string,
        ready: true,
        trafficPercent: c.trafficPercent,
      })),
    },
  });

  it('starts a copy of the stable predictor beside the canary with the same weight, and steps both', () => {
    const isvc = deployed('Standard');
    const stable = structuredClone(isvc.spec.predictor);
    expect(s.startCanary(revision(V2), 10, { baseline: true })(isvc)).toBe(true);
    const [canary, baseline] = isvc.spec.canary ?? [];
    expect(canary?.predictor.model.storageUri).toBe(V2);
    expect(canary?.trafficPercent).toBe(10);
    expect(baseline?.predictor.name).toMatch(/^b-[0-9a-f]{10}$/);
    expect(baseline?.predictor.model).toEqual(stable.model);
    expect(baseline?.trafficPercent).toBe(10);
    expect(s.startCanary(revision(V2), 10, { baseline: true })(isvc)).toBe(false); // a retry adopts
    // Past 50 % the baseline takes what the stable has left; the entries never sum over 100.
    expect(s.setTraffic(75)(isvc)).toBe(true);
    expect(isvc.spec.canary?.map((c) => c.trafficPercent)).toEqual([75, 25]);
    expect(s.setTraffic(100)(isvc)).toBe(true);
    expect(isvc.spec.canary?.map((c) => c.trafficPercent)).toEqual([100, 0]);
  });

  it('reads back three revisions, and settles only when the baseline runs at its percent too', () => {
    const isvc = deployed('Standard');
    s.startCanary(revision(V2), 25, { baseline: true })(isvc);
    const status = s.status(reported(isvc));
    expect(status.canaryPercent).toBe(25);
    expect(status.baselinePercent).toBe(25);
    expect(status.traffic.map((t) => [t.tag, t.percent])).toEqual([
      ['prev', 50],
      ['latest', 25],
      ['baseline', 25],
    ]);
    expect(status.traffic[2]?.storageUri).toBe(V1);
    expect(s.settled(reported(isvc), 25).settled).toBe(true);
    const baselineStarting = reported(isvc);
    const entry = baselineStarting.status?.canaryStatuses?.[1];
    if (entry) entry.ready = false;
    expect(s.settled(baselineStarting, 25)).toMatchObject({
      settled: false,
      progress: expect.stringContaining('baseline'),
    });
  });

  it('promotes the canary and removes the baseline; a rollback removes both', () => {
    const promoted = deployed('Standard');
    s.startCanary(revision(V2), 10, { baseline: true })(promoted);
    expect(s.promote()(promoted)).toBe(true);
    expect(promoted.spec.predictor.model.storageUri).toBe(V2);
    expect(promoted.spec.canary).toBeUndefined();
    const rolledBack = deployed('Standard');
    s.startCanary(revision(V2), 10, { baseline: true })(rolledBack);
    expect(s.rollBack()(rolledBack)).toBe(true);
    expect(rolledBack.spec.predictor.model.storageUri).toBe(V1);
    expect(rolledBack.spec.canary).toBeUndefined();
  });

  it('is refused by Serverless, whose split holds two revisions', () => {
    expect(() => strategy('Serverless').startCanary(revision(V2), 10, { baseline: true })).toThrow(
      expect.objectContaining({ code: 'Unsupported', message: expect.stringContaining('Standard') }),
    );
  });
});

describe('RawDeployment (no canary API)', () => {
  const s = strategy('RawDeployment');

  it('refuses every canary change before there is an edit to apply', () => {
    const unsupported = expect.objectContaining({ code: 'Unsupported', retryable: false });
    expect(() => s.startCanary(revision(V2), 10)).toThrow(unsupported);
    expect(() => s.setTraffic(10)).toThrow(unsupported);
    expect(() => s.promote()).toThrow(unsupported);
    expect(() => s.rollBack()).toThrow(unsupported);
  });

  it('reads back as one revision, and refuses to wait for a canary', () => {
    const isvc: InferenceService = {
      ...deployed('RawDeployment'),
      status: {
        conditions: [{ type: 'Ready', status: 'True' }],
        components: { predictor: { traffic: [{ revisionName: 'svc-predictor', percent: 100 }] } },
      },
    };
    expect(s.status(isvc)).toMatchObject({ canaryPercent: undefined, stableStorageUri: V1 });
    expect(s.settled(isvc, undefined).settled).toBe(true);
    expect(() => s.settled(isvc, 10)).toThrow(expect.objectContaining({ code: 'Unsupported' }));
  });
});
