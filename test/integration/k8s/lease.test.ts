import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuthorizationV1Api, CoordinationV1Api, V1MicroTime } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords, StoreAuditLog } from '../../../src/audit/audit-log.js';
import type { KubernetesBackend } from '../../../src/cluster/kubernetes/index.js';
import { rolloutLeaseName } from '../../../src/cluster/kubernetes/rollout-lease.js';
import type { ServingRef } from '../../../src/domain/serving-revision.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { ServingLeaseLostError, ServingService } from '../../../src/services/serving-rollout.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { type K8sTestEnvironment, SERVING_NAMESPACE, startK8sEnvironment } from './environment.js';

// The rollout lease on a real kube-apiserver, under the worker ServiceAccount's RBAC:
// expiry and takeover, renewal, compare-and-swap between concurrent claimers, the Role's
// resourceNames, and the operator's `qwenops lease break`.

let env: K8sTestEnvironment;
let backend: KubernetesBackend;
let storeDir: string;
let store: FsArtifactStore;

const ref = (name: string): ServingRef => ({
  namespace: SERVING_NAMESPACE,
  name,
  deploymentMode: 'Serverless',
});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function service(leaseSeconds: number, b: KubernetesBackend = backend): ServingService {
  return new ServingService(b, new StoreAuditLog(store), store, { leaseSeconds });
}

async function readLease(name: string) {
  return env.plane.admin
    .makeApiClient(CoordinationV1Api)
    .readNamespacedLease({ namespace: SERVING_NAMESPACE, name: rolloutLeaseName(name) });
}

beforeAll(async () => {
  env = await startK8sEnvironment();
  backend = env.backend();
  storeDir = mkdtempSync(path.join(os.tmpdir(), 'qwenops-lease-'));
  store = new FsArtifactStore(storeDir);
});

afterAll(async () => {
  await env?.stop();
  if (storeDir) rmSync(storeDir, { recursive: true, force: true });
});

describe('rollout lease on kube-apiserver', () => {
  it('takes over an expired lease and names the previous holder', async () => {
    const svc = ref('lease-expiry');
    // wf-dead claims with a 2 s lease, then stops renewing (terminated from the UI).
    await expect(service(2).claim(svc, 'wf-dead', 'alice')).resolves.toMatchObject({ claimed: true });
    await expect(service(120).claim(svc, 'wf-next', 'bob')).resolves.toEqual({
      claimed: false,
      holder: 'wf-dead',
    });
    await sleep(2_300);
    await expect(service(120).claim(svc, 'wf-next', 'bob')).resolves.toEqual({
      claimed: true,
      previousHolder: 'wf-dead',
      leaseSeconds: 120,
    });
    const lease = await readLease('lease-expiry');
    expect(lease.spec).toMatchObject({
      holderIdentity: 'wf-next',
      leaseDurationSeconds: 120,
      leaseTransitions: 1,
    });
    expect(Date.now() - new Date(lease.spec?.renewTime as Date).getTime()).toBeLessThan(30_000);
    // The old holder's next renewal is refused, naming who has it now.
    const lost = await service(2)
      .renew(svc, 'wf-dead')
      .catch((err: unknown) => err);
    expect(lost).toBeInstanceOf(ServingLeaseLostError);
    expect((lost as ServingLeaseLostError).holder).toBe('wf-next');
    const takeover = (await readAuditRecords(store)).find((r) => r.action === 'serving.claim-takeover');
    expect(takeover).toMatchObject({
      workflowId: 'wf-next',
      target: `service ${SERVING_NAMESPACE}/lease-expiry`,
      details: { previousHolder: 'wf-dead', leaseSeconds: 120 },
    });
    await service(120).release(svc, 'wf-next', 'bob');
  });

  it('does not take over a lease its holder keeps renewing', async () => {
    const svc = ref('lease-renewed');
    const holder = service(3);
    await expect(holder.claim(svc, 'wf-a', 'alice')).resolves.toMatchObject({ claimed: true });
    const stop = new AbortController();
    const holding = holder.hold(svc, 'wf-a', { signal: stop.signal });
    // Three lease durations: without renewals it would have expired twice over.
    const deadline = Date.now() + 9_000;
    let attempts = 0;
    while (Date.now() < deadline) {
      await expect(service(3).claim(svc, 'wf-b', 'bob')).resolves.toEqual({ claimed: false, holder: 'wf-a' });
      attempts++;
      await sleep(500);
    }
    stop.abort();
    const { renewals } = await holding;
    expect(attempts).toBeGreaterThan(10);
    expect(renewals).toBeGreaterThanOrEqual(6); // every second for 9 s
    expect((await readLease('lease-renewed')).spec?.holderIdentity).toBe('wf-a');
    // Renewals stopped: it expires, and wf-b gets it.
    await sleep(3_300);
    await expect(service(3).claim(svc, 'wf-b', 'bob')).resolves.toMatchObject({
      claimed: true,
      previousHolder: 'wf-a',
    });
    // A hold started by the loser fails at once, naming the new holder.
    await expect(holder.hold(svc, 'wf-a')).rejects.toMatchObject({
      name: 'ServingLeaseLostError',
      holder: 'wf-b',
    });
    await service(3).release(svc, 'wf-b', 'bob');
  });

  it('lets exactly one of concurrent claimers win, for a new lease and for an expired one', async () => {
    const svc = ref('lease-race');
    const claimers = Array.from({ length: 6 }, () => env.backend());
    for (let round = 0; round < 4; round++) {
      // Round 0 races on create; later rounds race on taking over the expired lease (update).
      // The lease lasts 3 s so that losers re-reading after a 409 still find it live.
      const results = await Promise.all(
        claimers.map((b, i) => b.claimService(svc, `wf-race-${round}-${i}`, 3)),
      );
      const winners = results.flatMap((r, i) => (r.claimed ? [`wf-race-${round}-${i}`] : []));
      expect(winners).toHaveLength(1);
      const winner = winners[0] as string;
      for (const r of results) if (!r.claimed) expect(r.holder).toBe(winner);
      const lease = await readLease('lease-race');
      expect(lease.spec?.holderIdentity).toBe(winner);
      expect(lease.spec?.leaseTransitions).toBe(round);
      if (round > 0)
        expect(results.find((r) => r.claimed)).toMatchObject({
          previousHolder: expect.stringMatching(/^wf-race-/),
        });
      await sleep(3_200); // let it expire for the next round
    }
    expect(claimers.reduce((n, b) => n + b.serving.leaseConflicts, 0)).toBeGreaterThan(0);
  });

  it('denies the worker any Lease but the rollout Leases its Role names', async () => {
    const admin = env.plane.admin.makeApiClient(CoordinationV1Api);
    const worker = env.worker.makeApiClient(CoordinationV1Api);
    const other = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'kserve-controller-leader', namespace: SERVING_NAMESPACE },
      spec: { holderIdentity: 'kserve-0', renewTime: new V1MicroTime(), leaseDurationSeconds: 15 },
    };
    const created = await admin.createNamespacedLease({ namespace: SERVING_NAMESPACE, body: other });
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 200,
        (err: { code?: number }) => err.code,
      );
    expect(
      await code(
        worker.replaceNamespacedLease({
          namespace: SERVING_NAMESPACE,
          name: 'kserve-controller-leader',
          body: { ...created, spec: { ...created.spec, holderIdentity: 'qwenops' } },
        }),
      ),
    ).toBe(403);
    expect(
      await code(
        worker.readNamespacedLease({ namespace: SERVING_NAMESPACE, name: 'kserve-controller-leader' }),
      ),
    ).toBe(403);
    expect(
      await code(
        worker.deleteNamespacedLease({ namespace: SERVING_NAMESPACE, name: 'kserve-controller-leader' }),
      ),
    ).toBe(403);
    // A rollout Lease of a service nobody enrolled is out of reach too.
    const unenrolled = { ...ref('not-enrolled') };
    await expect(backend.claimService(unenrolled, 'wf-x')).rejects.toMatchObject({ code: 'Forbidden' });
    // The apiserver's own answer, by verb and name.
    const review = env.worker.makeApiClient(AuthorizationV1Api);
    const allowed = async (verb: string, name: string) =>
      (
        await review.createSelfSubjectAccessReview({
          body: {
            spec: {
              resourceAttributes: {
                namespace: SERVING_NAMESPACE,
                group: 'coordination.k8s.io',
                resource: 'leases',
                verb,
                name,
              },
            },
          },
        })
      ).status?.allowed;
    expect(await allowed('update', 'kserve-controller-leader')).toBe(false);
    expect(await allowed('update', rolloutLeaseName('qwen-7b-chat'))).toBe(true);
    expect(await allowed('delete', rolloutLeaseName('lease-race'))).toBe(true);
    expect(await allowed('patch', rolloutLeaseName('qwen-7b-chat'))).toBe(false);
    expect(
      (await admin.readNamespacedLease({ namespace: SERVING_NAMESPACE, name: 'kserve-controller-leader' }))
        .spec?.holderIdentity,
    ).toBe('kserve-0');
  });

  it('`qwenops lease break` refuses a renewed lease, breaks it with --force, and breaks an expired one', async () => {
    const svc = ref('lease-break');
    const cli = (args: string[]) => {
      const [cmd, ...pre] = nodeEntrypoint('src/cli/main');
      return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(cmd as string, [...pre, ...args], {
          env: {
            ...process.env,
            USER: 'oncall',
            QWENOPS_CLUSTER: 'kubernetes',
            // The operator's own identity, not the worker's.
            QWENOPS_KUBECONFIG: env.plane.adminKubeconfigPath,
            QWENOPS_STORE: 'fs',
            QWENOPS_STORE_DIR: storeDir,
            QWENOPS_STATE_DIR: storeDir,
            QWENOPS_ROLLOUT_LEASE_SECONDS: '120',
            QWENOPS_LOG_LEVEL: 'silent',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => {
          stdout += d;
        });
        child.stderr.on('data', (d) => {
          stderr += d;
        });
        child.on('exit', (code) => resolve({ code, stdout, stderr }));
      });
    };

    await expect(service(120).claim(svc, 'wf-live', 'alice')).resolves.toMatchObject({ claimed: true });
    const refused = await cli(['lease', 'break', `${SERVING_NAMESPACE}/lease-break`]);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stdout).toContain('refused: the lease is still being renewed');
    expect(refused.stdout).toContain('wf-live');
    expect((await readLease('lease-break')).spec?.holderIdentity).toBe('wf-live');

    const shown = await cli(['--json', 'lease', 'show', `${SERVING_NAMESPACE}/lease-break`]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      holder: 'wf-live',
      expired: false,
      durationSeconds: 120,
    });

    const forced = await cli([
      '--json',
      'lease',
      'break',
      `${SERVING_NAMESPACE}/lease-break`,
      '--force',
      '--reason',
      'stuck',
    ]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({
      broken: true,
      lease: { holder: 'wf-live', expired: false },
    });
    await expect(readLease('lease-break')).rejects.toMatchObject({ code: 404 });
    // The broken holder's next renewal fails: it is not silently re-created.
    await expect(service(120).renew(svc, 'wf-live')).rejects.toBeInstanceOf(ServingLeaseLostError);

    // An expired lease (its workflow was terminated) breaks without --force.
    await service(1).claim(svc, 'wf-gone', 'alice');
    await sleep(1_300);
    const broken = await cli(['lease', 'break', `${SERVING_NAMESPACE}/lease-break`]);
    expect(broken.code, broken.stderr).toBe(0);
    expect(broken.stdout).toContain('broke the rollout lease');
    await expect(readLease('lease-break')).rejects.toMatchObject({ code: 404 });
    const nothing = await cli(['lease', 'break', `${SERVING_NAMESPACE}/lease-break`]);
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toContain('no rollout lease');

    const audit = (await readAuditRecords(store)).filter((r) => r.action === 'serving.lease-break');
    expect(audit.map((r) => [r.actor, r.workflowId, r.details.forced, r.details.reason])).toEqual([
      ['oncall', 'wf-live', true, 'stuck'],
      ['oncall', 'wf-gone', false, undefined],
    ]);
  });
});
