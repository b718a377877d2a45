import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readAuditRecords, StoreAuditLog } from '../../../src/audit/audit-log.js';
import type { ClaimOutcome, ClusterBackend, RenewOutcome, ServiceLease } from '../../../src/cluster/port.js';
import { leaseExpired } from '../../../src/domain/lease.js';
import type { ServingRef } from '../../../src/domain/serving-revision.js';
import { ServingLeaseLostError, ServingService } from '../../../src/services/serving-rollout.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';

// ServingService's lease logic (takeover audit, renewal, hold, break) over an in-memory
// lease with a settable clock; the adapters' own behaviour is proven on real servers
// (test/integration/k8s/lease.test.ts).

let now = Date.parse('2025-01-01T00:00:00Z');
let lease: ServiceLease | undefined;
let version = 0;
let renewCalls = 0;
let failRenewals = 0;

const fakeCluster = {
  kind: 'sandbox',
  async claimService(_ref: ServingRef, owner: string, seconds = 120): Promise<ClaimOutcome> {
    const t = new Date(now).toISOString();
    if (lease && lease.holder !== owner && !leaseExpired(lease, now, seconds))
      return { claimed: false, holder: lease.holder };
    const previous = lease && lease.holder !== owner ? lease.holder : undefined;
    lease = {
      holder: owner,
      acquireTime: t,
      renewTime: t,
      durationSeconds: seconds,
      transitions: 0,
      version: String(++version),
    };
    return previous ? { claimed: true, previousHolder: previous } : { claimed: true };
  },
  async renewService(_ref: ServingRef, owner: string, seconds = 120): Promise<RenewOutcome> {
    renewCalls++;
    if (failRenewals > 0) {
      failRenewals--;
      throw new Error('apiserver unavailable');
    }
    if (!lease) return { renewed: false };
    if (lease.holder !== owner) return { renewed: false, holder: lease.holder };
    lease = {
      ...lease,
      renewTime: new Date(now).toISOString(),
      durationSeconds: seconds,
      version: String(++version),
    };
    return { renewed: true };
  },
  async getServiceLease() {
    return lease;
  },
  async breakServiceLease(_ref: ServingRef, expected: ServiceLease) {
    if (lease?.version !== expected.version) return false;
    lease = undefined;
    return true;
  },
} as unknown as ClusterBackend;

const ref: ServingRef = { namespace: 'llm-prod', name: 'qwen-7b-chat', deploymentMode: 'Serverless' };
let dir: string;
let store: FsArtifactStore;
const service = (leaseSeconds = 120) =>
  new ServingService(fakeCluster, new StoreAuditLog(store), store, { leaseSeconds, now: () => now });

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'qwenops-serving-lease-'));
  store = new FsArtifactStore(dir);
  lease = undefined;
  renewCalls = 0;
  failRenewals = 0;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('ServingService rollout lease', () => {
  it('audits a takeover with the previous holder', async () => {
    await service().claim(ref, 'wf-a', 'alice');
    now += 121_000;
    await expect(service().claim(ref, 'wf-b', 'bob')).resolves.toEqual({
      claimed: true,
      previousHolder: 'wf-a',
      leaseSeconds: 120,
    });
    const records = await readAuditRecords(store);
    expect(records.map((r) => r.action)).toEqual(['serving.claim', 'serving.claim-takeover']);
    expect(records[1]?.details).toEqual({ leaseSeconds: 120, previousHolder: 'wf-a' });
  });

  it('renew throws ServingLeaseLostError naming the new holder, or none when broken', async () => {
    await service().claim(ref, 'wf-a', 'alice');
    await expect(service().renew(ref, 'wf-a')).resolves.toMatchObject({ leaseSeconds: 120 });
    now += 200_000;
    await service().claim(ref, 'wf-b', 'bob');
    await expect(service().renew(ref, 'wf-a')).rejects.toMatchObject({ holder: 'wf-b' });
    lease = undefined;
    await expect(service().renew(ref, 'wf-b')).rejects.toBeInstanceOf(ServingLeaseLostError);
  });

  it('hold renews until aborted, rides out transient errors, and stops at a lost lease', async () => {
    await service(3).claim(ref, 'wf-a', 'alice');
    const stop = new AbortController();
    failRenewals = 1;
    const holding = service(3).hold(ref, 'wf-a', { signal: stop.signal });
    await expect.poll(() => renewCalls, { timeout: 5_000 }).toBeGreaterThanOrEqual(3);
    stop.abort();
    await expect(holding).resolves.toMatchObject({ renewals: expect.any(Number) });
    now += 10_000;
    await service(3).claim(ref, 'wf-b', 'bob');
    await expect(service(3).hold(ref, 'wf-a')).rejects.toBeInstanceOf(ServingLeaseLostError);
  });

  it('breakLease refuses a live lease unless forced, breaks an expired one, and audits both', async () => {
    await service().claim(ref, 'wf-a', 'alice');
    await expect(service().breakLease(ref, { force: false, actor: 'oncall' })).resolves.toMatchObject({
      broken: false,
      reason: 'live',
      lease: { holder: 'wf-a', expired: false, secondsLeft: 120 },
    });
    await expect(service().breakLease(ref, { force: true, actor: 'oncall' })).resolves.toMatchObject({
      broken: true,
    });
    await service().claim(ref, 'wf-b', 'bob');
    now += 120_000;
    await expect(service().breakLease(ref, { force: false, actor: 'oncall' })).resolves.toMatchObject({
      broken: true,
      lease: { holder: 'wf-b', expired: true },
    });
    await expect(service().breakLease(ref, { force: false, actor: 'oncall' })).resolves.toEqual({
      broken: false,
      reason: 'none',
    });
    const breaks = (await readAuditRecords(store)).filter((r) => r.action === 'serving.lease-break');
    expect(breaks.map((r) => [r.workflowId, r.details.forced])).toEqual([
      ['wf-a', true],
      ['wf-b', false],
    ]);
  });
});
