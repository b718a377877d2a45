import { describe, expect, it } from 'vitest';
import {
  deploy,
  type Observe,
  promote,
  type RevisionObservation,
  revisionHealthy,
  rollBack,
  type ServiceRecord,
  setCanaryTraffic,
  setFaults,
  startCanary,
} from '../../../src/cluster/sandbox/serving-state.js';
import { faultOf, serviceStatus, trafficWeights } from '../../../src/cluster/sandbox/serving-status.js';
import { parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { buildRevisionSpec, type ServingRevisionSpec } from '../../../src/domain/serving-revision.js';

// The sandbox's revision bookkeeping without processes: each transition is applied to a
// record, with what the processes would report given as observations.

const NOW = '2026-12-01T00:00:00.000Z';
const S1 = 'svc-predictor-00001';
const S2 = 'svc-predictor-00002';

const serving = parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat' }).serving;
const spec = (storageUri: string, labels: Record<string, string> = {}): ServingRevisionSpec =>
  buildRevisionSpec(serving, storageUri, { quantized: false, labels });

/** Observations by revision name; a revision not listed has no process. */
function observing(revisions: Record<string, Partial<RevisionObservation>>): Observe {
  return (name) => {
    const o = revisions[name];
    return o ? { healthy: false, ...o } : undefined;
  };
}
const healthy = (...names: string[]) =>
  observing(Object.fromEntries(names.map((n) => [n, { healthy: true, readySeconds: 1.23456 }])));

function deployed(): ServiceRecord {
  const { record } = deploy(undefined, {
    namespace: 'llm-prod',
    name: 'svc',
    deploymentMode: 'Serverless',
    spec: spec('file:///v1'),
    now: NOW,
  });
  return revisionHealthy(record, S1);
}

/** A service with a canary at `percent` that is healthy and gets its traffic. */
function withCanary(percent: number): ServiceRecord {
  const { record } = startCanary(
    deployed(),
    { deploymentMode: 'Serverless', spec: spec('file:///v2'), percent, now: NOW },
    healthy(S1),
  );
  return revisionHealthy(record, S2);
}

describe('deploy', () => {
  it('creates revision 00001 as the stable one and starts it', () => {
    const t = deploy(undefined, {
      namespace: 'llm-prod',
      name: 'svc',
      deploymentMode: 'Serverless',
      spec: spec('file:///v1'),
      now: NOW,
    });
    expect(t.started).toEqual([S1]);
    expect(t.record).toMatchObject({ stable: S1, latestCreatedRevision: S1, generation: 1 });
    expect(t.record.revisions[S1]).toEqual({ spec: spec('file:///v1'), createdAt: NOW });
    expect(t.record.latestRolledoutRevision).toBeUndefined();
  });

  it('adopts the same storageUri (the same record back) and refuses another', () => {
    const record = deployed();
    const command = { namespace: 'llm-prod', name: 'svc', deploymentMode: 'Serverless' as const, now: NOW };
    expect(deploy(record, { ...command, spec: spec('file:///v1') }).record).toBe(record);
    expect(() => deploy(record, { ...command, spec: spec('file:///other') })).toThrow(
      expect.objectContaining({ code: 'Conflict', retryable: false }),
    );
  });
});

describe('revisionHealthy', () => {
  it('rolls the first stable revision out and keeps latestReadyRevision the newest', () => {
    const record = deployed();
    expect(record).toMatchObject({ latestReadyRevision: S1, latestRolledoutRevision: S1 });
    const canary = withCanary(10);
    expect(canary.latestReadyRevision).toBe(S2);
    expect(revisionHealthy(canary, S1).latestReadyRevision).toBe(S2);
  });
});

describe('startCanary', () => {
  it('adds the next revision, asks for its percent and applies none until it is healthy', () => {
    const record = deployed();
    const frozen = structuredClone(record);
    const t = startCanary(
      record,
      { deploymentMode: 'Serverless', spec: spec('file:///v2'), percent: 10, now: NOW },
      healthy(S1),
    );
    expect(t.started).toEqual([S2]);
    expect(t.record).toMatchObject({ canary: S2, desiredCanaryPercent: 10, latestCreatedRevision: S2 });
    expect(t.record.appliedCanaryPercent).toBeUndefined();
    expect(record).toEqual(frozen); // the input is never changed
    expect(revisionHealthy(t.record, S2).appliedCanaryPercent).toBe(10);
  });

  it('re-aims the same canary (labels aside) and refuses a different one', () => {
    const record = withCanary(10);
    const again = startCanary(
      record,
      { deploymentMode: 'Serverless', spec: spec('file:///v2', { run: 'retry' }), percent: 25, now: NOW },
      healthy(S1, S2),
    );
    expect(again.started).toEqual([]);
    expect(again.record).toMatchObject({ canary: S2, desiredCanaryPercent: 25, appliedCanaryPercent: 25 });
    expect(() =>
      startCanary(
        record,
        { deploymentMode: 'Serverless', spec: spec('file:///v3'), percent: 10, now: NOW },
        healthy(S1, S2),
      ),
    ).toThrow(expect.objectContaining({ code: 'Conflict', message: expect.stringContaining(S2) }));
  });

  it('refuses a canary in RawDeployment mode', () => {
    expect(() =>
      startCanary(
        deployed(),
        { deploymentMode: 'RawDeployment', spec: spec('file:///v2'), percent: 10, now: NOW },
        healthy(S1),
      ),
    ).toThrow(expect.objectContaining({ code: 'Unsupported' }));
    const raw = { ...deployed(), deploymentMode: 'RawDeployment' as const };
    expect(() =>
      startCanary(
        raw,
        { deploymentMode: 'Serverless', spec: spec('file:///v2'), percent: 10, now: NOW },
        healthy(S1),
      ),
    ).toThrow(expect.objectContaining({ code: 'Unsupported' }));
  });
});

describe('setCanaryTraffic', () => {
  it('applies at once to a healthy canary, only asks while it is not', () => {
    expect(setCanaryTraffic(withCanary(10), 50, healthy(S1, S2)).record).toMatchObject({
      desiredCanaryPercent: 50,
      appliedCanaryPercent: 50,
    });
    expect(setCanaryTraffic(withCanary(10), 50, healthy(S1)).record).toMatchObject({
      desiredCanaryPercent: 50,
      appliedCanaryPercent: 10,
    });
  });

  it('refuses without a canary', () => {
    expect(() => setCanaryTraffic(deployed(), 50, healthy(S1))).toThrow(
      expect.objectContaining({ code: 'Conflict' }),
    );
  });
});

describe('promote', () => {
  it('makes the healthy canary the stable revision and retires the old one into the history', () => {
    const t = promote(withCanary(50), healthy(S1, S2));
    expect(t.retired).toEqual([S1]);
    expect(t.record).toMatchObject({
      stable: S2,
      latestRolledoutRevision: S2,
      previousRolledoutRevision: S1,
    });
    expect(t.record.canary).toBeUndefined();
    expect(t.record.desiredCanaryPercent).toBeUndefined();
    expect(Object.keys(t.record.revisions)).toEqual([S2]);
    expect(t.record.history).toEqual([
      { name: S1, storageUri: 'file:///v1', outcome: 'replaced', readySeconds: 1.235 },
    ]);
    // A retried promote is success and changes nothing.
    expect(promote(t.record, healthy(S2)).record).toBe(t.record);
  });

  it('waits (retryable) for a canary that is not ready, and refuses a rolled-back one', () => {
    expect(() => promote(withCanary(10), healthy(S1))).toThrow(
      expect.objectContaining({ code: 'Unavailable', retryable: true }),
    );
    const rolledBack = rollBack(withCanary(10), healthy(S1, S2)).record;
    expect(() => promote(rolledBack, healthy(S1))).toThrow(
      expect.objectContaining({ code: 'Conflict', message: expect.stringContaining('rolled back') }),
    );
  });
});

describe('rollBack', () => {
  it('retires the canary and leaves the stable revision alone; again changes nothing', () => {
    const t = rollBack(withCanary(10), observing({ [S1]: { healthy: true }, [S2]: { healthy: true } }));
    expect(t.retired).toEqual([S2]);
    expect(t.record).toMatchObject({ stable: S1, latestCreatedRevision: S2, latestRolledoutRevision: S1 });
    expect(t.record.canary).toBeUndefined();
    expect(t.record.history).toEqual([{ name: S2, storageUri: 'file:///v2', outcome: 'rolled-back' }]);
    expect(rollBack(t.record, healthy(S1)).record).toBe(t.record);
  });
});

describe('read-back', () => {
  const where = { url: 'http://127.0.0.1:1234', owner: 'wf-1' };

  it('is Ready with the split applied, and not while the canary has not got its percent', () => {
    const record = withCanary(10);
    const ready = serviceStatus(record, healthy(S1, S2), where);
    expect(ready).toMatchObject({
      ready: true,
      canaryPercent: 10,
      owner: 'wf-1',
      canaryStorageUri: 'file:///v2',
    });
    expect(ready.traffic.map((t) => [t.revision, t.percent, t.tag])).toEqual([
      [S1, 90, 'prev'],
      [S2, 10, 'latest'],
    ]);
    const pending = serviceStatus(setCanaryTraffic(record, 50, healthy(S1)).record, healthy(S1), where);
    expect(pending.ready).toBe(false);
    expect(pending.conditions).toContainEqual(
      expect.objectContaining({ type: 'RoutesReady', status: 'False', reason: 'TrafficNotApplied' }),
    );
  });

  it('reports a failed revision as RevisionFailed', () => {
    const status = serviceStatus(
      withCanary(10),
      observing({
        [S1]: { healthy: true },
        [S2]: { failed: { reason: 'CrashLoopBackOff', message: 'exit 1' } },
      }),
      where,
    );
    expect(status.conditions[0]).toMatchObject({
      type: 'PredictorReady',
      status: 'False',
      reason: 'RevisionFailed',
      message: 'CrashLoopBackOff: exit 1',
    });
  });

  it('weighs only healthy revisions, and a revision rule beats its role', () => {
    const record = withCanary(10);
    expect(trafficWeights(record, healthy(S1, S2))).toEqual([
      { revision: S1, weight: 90 },
      { revision: S2, weight: 10 },
    ]);
    const canaryDown = observing({ [S1]: { healthy: true }, [S2]: { healthy: false } });
    expect(trafficWeights(record, canaryDown)).toEqual([{ revision: S1, weight: 90 }]);
    const delay = (delayMs: number) => ({ delayMs, delayPercent: 100, abortPercent: 0, abortStatus: 503 });
    const faulted = setFaults(record, { canary: delay(5), stable: delay(6), revisions: { [S1]: delay(7) } });
    expect(faultOf(faulted, S2)).toEqual(delay(5));
    expect(faultOf(faulted, S1)).toEqual(delay(7));
    expect(faultOf(setFaults(faulted, undefined), S1)).toBeUndefined();
  });
});

describe('a canary with a baseline (Standard mode)', () => {
  const S3 = 'svc-predictor-00003';
  function standard(): ServiceRecord {
    const { record } = deploy(undefined, {
      namespace: 'llm-prod',
      name: 'svc',
      deploymentMode: 'Standard',
      spec: spec('file:///v1'),
      now: NOW,
    });
    return revisionHealthy(record, S1);
  }
  const startWithBaseline = (record: ServiceRecord, percent: number) =>
    startCanary(
      record,
      { deploymentMode: 'Standard', spec: spec('file:///v2'), percent, now: NOW, baseline: true },
      healthy(S1),
    );

  it('starts a copy of the stable revision first, so the canary stays the latest revision', () => {
    const t = startWithBaseline(standard(), 10);
    expect(t.started).toEqual([S2, S3]);
    expect(t.record).toMatchObject({ stable: S1, baseline: S2, canary: S3, latestCreatedRevision: S3 });
    expect(t.record.revisions[S2]?.spec).toEqual(t.record.revisions[S1]?.spec);
  });

  it('gives the baseline the canary weight once both serve; Ready waits for the baseline', () => {
    const record = revisionHealthy(startWithBaseline(standard(), 10).record, S3);
    const canaryOnly = observing({ [S1]: { healthy: true }, [S3]: { healthy: true, url: 'http://c' } });
    expect(trafficWeights(record, canaryOnly)).toEqual([
      { revision: S1, weight: 90 },
      { revision: S3, weight: 10 },
    ]);
    expect(serviceStatus(record, canaryOnly, { url: 'http://svc' }).ready).toBe(false);
    const all = observing({
      [S1]: { healthy: true },
      [S2]: { healthy: true, url: 'http://b' },
      [S3]: { healthy: true, url: 'http://c' },
    });
    expect(trafficWeights(record, all)).toEqual([
      { revision: S1, weight: 80 },
      { revision: S3, weight: 10 },
      { revision: S2, weight: 10 },
    ]);
    const status = serviceStatus(record, all, { url: 'http://svc' });
    expect(status).toMatchObject({ ready: true, canaryPercent: 10, baselinePercent: 10 });
    expect(status.traffic).toContainEqual(
      expect.objectContaining({ revision: S2, tag: 'baseline', url: 'http://b' }),
    );
    const at75 = setCanaryTraffic(record, 75, all).record;
    expect(trafficWeights(at75, all)).toEqual([
      { revision: S1, weight: 0 },
      { revision: S3, weight: 75 },
      { revision: S2, weight: 25 },
    ]);
  });

  it('promote and rollback both retire the baseline', () => {
    const record = revisionHealthy(startWithBaseline(standard(), 10).record, S3);
    const all = healthy(S1, S2, S3);
    const promoted = promote(record, all);
    expect(promoted.retired).toEqual([S1, S2]);
    expect(promoted.record).toMatchObject({ stable: S3, baseline: undefined, canary: undefined });
    expect(promoted.record.history.map((h) => h.outcome)).toEqual(['replaced', 'baseline-removed']);
    const rolledBack = rollBack(record, all);
    expect(rolledBack.retired).toEqual([S3, S2]);
    expect(rolledBack.record).toMatchObject({ stable: S1, baseline: undefined, canary: undefined });
  });

  it('is refused in Serverless mode, which routes to two revisions', () => {
    expect(() =>
      startCanary(
        deployed(),
        { deploymentMode: 'Serverless', spec: spec('file:///v2'), percent: 10, now: NOW, baseline: true },
        healthy(S1),
      ),
    ).toThrow(expect.objectContaining({ code: 'Unsupported' }));
  });
});
