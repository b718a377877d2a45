import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServingRef } from '../../../src/domain/serving-revision.js';
import { startSandboxCluster, type TestSandboxCluster } from '../../support/sandbox.js';

// The sandbox daemon's rollout lease follows the Kubernetes one: it expires one duration
// after its last renewal, is taken over naming its previous holder, is renewed only by its
// holder, and is broken only at the version the operator saw.

let cluster: TestSandboxCluster;
const ref: ServingRef = { namespace: 'llm-prod', name: 'lease-svc', deploymentMode: 'Serverless' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  cluster = await startSandboxCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

describe('sandbox rollout lease', () => {
  it('expires, is taken over, renews only for its holder, and breaks at a version', async () => {
    const b = cluster.backend;
    await expect(b.claimService(ref, 'wf-a', 2)).resolves.toEqual({ claimed: true });
    await expect(b.renewService(ref, 'wf-a', 2)).resolves.toEqual({ renewed: true });
    await expect(b.claimService(ref, 'wf-b', 2)).resolves.toEqual({ claimed: false, holder: 'wf-a' });
    await sleep(2_300);
    await expect(b.claimService(ref, 'wf-b', 60)).resolves.toEqual({ claimed: true, previousHolder: 'wf-a' });
    await expect(b.renewService(ref, 'wf-a', 2)).resolves.toEqual({ renewed: false, holder: 'wf-b' });
    const lease = await b.getServiceLease(ref);
    expect(lease).toMatchObject({ holder: 'wf-b', durationSeconds: 60, transitions: 1 });
    await b.renewService(ref, 'wf-b', 60); // a new version: the one read before is stale
    await expect(b.breakServiceLease(ref, lease as NonNullable<typeof lease>)).resolves.toBe(false);
    const current = await b.getServiceLease(ref);
    await expect(b.breakServiceLease(ref, current as NonNullable<typeof current>)).resolves.toBe(true);
    await expect(b.getServiceLease(ref)).resolves.toBeUndefined();
    await expect(b.renewService(ref, 'wf-b', 60)).resolves.toEqual({ renewed: false });
  });
});
