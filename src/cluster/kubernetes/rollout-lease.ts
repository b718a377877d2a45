import { type V1Lease, type V1LeaseSpec, V1MicroTime } from '@kubernetes/client-node';
import { checkLeaseSeconds, DEFAULT_ROLLOUT_LEASE_SECONDS, leaseExpired } from '../../domain/lease.js';
import { labelValue } from '../../domain/names.js';
import type { ServingRef } from '../../domain/serving-revision.js';
import type { Logger } from '../../observability/logger.js';
import {
  type ClaimOutcome,
  ClusterError,
  type ClusterErrorCode,
  type RenewOutcome,
  type ServiceLease,
} from '../port.js';
import { callApi, type KubeClients, type RetryPolicy } from './client.js';

// The rollout lease: one coordination.k8s.io Lease per service, named rolloutLeaseName(service)
// so the worker's Role can list the names it may touch (k8s/base/rbac.yaml), so two
// workflows never drive one service. It lasts spec.leaseDurationSeconds from spec.renewTime;
// the holder renews it while it drives the service, and a claimer takes over one that
// expired. Every change is a PUT carrying the resourceVersion it read (a create for a new
// one), so of two claimers racing for the same lease the apiserver lets exactly one write
// succeed; the other re-reads and sees the winner.

export interface RolloutLeaseOptions {
  clients: KubeClients;
  retry: RetryPolicy;
  /** Re-read-and-retry rounds for one claim or renewal that keeps losing races. */
  conflictRetries: number;
  fieldManager: string;
  logger?: Logger;
}

/**
 * Prefix of the rollout Leases: `qwenops-rollout-<service>`, predictable so the worker's Role
 * can name each Lease it may get, update and delete (RBAC resourceNames has no wildcards).
 */
export const ROLLOUT_LEASE_PREFIX = 'qwenops-rollout-';

export function rolloutLeaseName(service: string): string {
  return `${ROLLOUT_LEASE_PREFIX}${service}`;
}

function isoTime(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** The port's view of a Lease object. */
export function serviceLeaseOf(lease: V1Lease): ServiceLease {
  const spec = lease.spec ?? {};
  const view: ServiceLease = { holder: spec.holderIdentity ?? '', transitions: spec.leaseTransitions ?? 0 };
  const acquireTime = isoTime(spec.acquireTime);
  const renewTime = isoTime(spec.renewTime);
  if (acquireTime) view.acquireTime = acquireTime;
  if (renewTime) view.renewTime = renewTime;
  if (spec.leaseDurationSeconds !== undefined) view.durationSeconds = spec.leaseDurationSeconds;
  if (lease.metadata?.resourceVersion) view.version = lease.metadata.resourceVersion;
  return view;
}

export class RolloutLeases {
  /** Lease writes that lost a race (409) or found the Lease gone, and looked again. */
  conflicts = 0;

  constructor(private readonly options: RolloutLeaseOptions) {}

  private get coordination() {
    return this.options.clients.coordination;
  }

  private what(ref: ServingRef): string {
    return `Lease ${ref.namespace}/${rolloutLeaseName(ref.name)}`;
  }

  private async read(ref: ServingRef): Promise<V1Lease | undefined> {
    try {
      return await callApi(
        `get ${this.what(ref)}`,
        () =>
          this.coordination.readNamespacedLease({
            namespace: ref.namespace,
            name: rolloutLeaseName(ref.name),
          }),
        this.options.retry,
      );
    } catch (err) {
      if (err instanceof ClusterError && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  /** One Lease write; false when the apiserver answers with one of `lost` (another writer won). */
  private async write(
    ref: ServingRef,
    action: string,
    call: () => Promise<unknown>,
    lost: ClusterErrorCode[],
  ): Promise<boolean> {
    try {
      await callApi(`${action} ${this.what(ref)}`, call, this.options.retry);
      return true;
    } catch (err) {
      if (err instanceof ClusterError && lost.includes(err.code)) return false;
      throw err;
    }
  }

  /** Creates the lease; false when someone else created it first (409 AlreadyExists). */
  private create(ref: ServingRef, spec: V1LeaseSpec): Promise<boolean> {
    const body = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: rolloutLeaseName(ref.name),
        namespace: ref.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'qwenops', 'qwenops.io/service': labelValue(ref.name) },
      },
      spec,
    };
    const { fieldManager } = this.options;
    return this.write(
      ref,
      'create',
      () => this.coordination.createNamespacedLease({ namespace: ref.namespace, fieldManager, body }),
      ['Conflict'],
    );
  }

  /** Replaces the lease read as `current`; false when it changed since (409) or is gone. */
  private async replace(ref: ServingRef, current: V1Lease, spec: V1LeaseSpec): Promise<boolean> {
    const replaced = await this.write(
      ref,
      'update',
      () =>
        this.coordination.replaceNamespacedLease({
          namespace: ref.namespace,
          name: rolloutLeaseName(ref.name),
          fieldManager: this.options.fieldManager,
          // metadata carries the resourceVersion read: the write fails if anyone wrote since.
          body: { ...current, spec },
        }),
      ['Conflict', 'NotFound'],
    );
    if (!replaced) this.conflicts++;
    return replaced;
  }

  /** Deletes the lease only at `resourceVersion`: never one a new holder took in between. */
  private delete(ref: ServingRef, resourceVersion: string | undefined): Promise<boolean> {
    return this.write(
      ref,
      'delete',
      () =>
        this.coordination.deleteNamespacedLease({
          namespace: ref.namespace,
          name: rolloutLeaseName(ref.name),
          body: { preconditions: { resourceVersion } },
        }),
      ['NotFound', 'Conflict'],
    );
  }

  private tooManyConflicts(ref: ServingRef, action: string): ClusterError {
    return new ClusterError(
      'Conflict',
      `${action} ${this.what(ref)}: it kept changing under ${this.options.conflictRetries} attempts`,
      true,
    );
  }

  /** Who holds the lease as stored, live or expired. */
  async holder(ref: ServingRef): Promise<string | undefined> {
    return (await this.read(ref))?.spec?.holderIdentity;
  }

  async get(ref: ServingRef): Promise<ServiceLease | undefined> {
    const lease = await this.read(ref);
    return lease ? serviceLeaseOf(lease) : undefined;
  }

  async claim(
    ref: ServingRef,
    owner: string,
    leaseSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
  ): Promise<ClaimOutcome> {
    checkLeaseSeconds(leaseSeconds);
    for (let round = 1; round <= this.options.conflictRetries; round++) {
      const existing = await this.read(ref);
      const now = new V1MicroTime();
      if (!existing) {
        const created = await this.create(ref, {
          holderIdentity: owner,
          acquireTime: now,
          renewTime: now,
          leaseDurationSeconds: leaseSeconds,
          leaseTransitions: 0,
        });
        if (created) return { claimed: true };
        continue; // another claimer created it between our read and create: look again
      }
      const current = serviceLeaseOf(existing);
      const spec = existing.spec ?? {};
      if (current.holder === owner) {
        // A retried claim: renew, keep acquireTime.
        const renewed = { ...spec, renewTime: now, leaseDurationSeconds: leaseSeconds };
        if (await this.replace(ref, existing, renewed)) return { claimed: true };
        continue;
      }
      if (current.holder !== '' && !leaseExpired(current, now.getTime(), leaseSeconds)) {
        return { claimed: false, holder: current.holder };
      }
      const taken = await this.replace(ref, existing, {
        holderIdentity: owner,
        acquireTime: now,
        renewTime: now,
        leaseDurationSeconds: leaseSeconds,
        leaseTransitions: current.transitions + 1,
      });
      if (!taken) continue; // someone else wrote first (maybe took it): look again
      this.options.logger?.warn(
        {
          service: ref.name,
          namespace: ref.namespace,
          owner,
          previousHolder: current.holder,
          lastRenewed: current.renewTime,
        },
        'took over an expired rollout lease',
      );
      return current.holder ? { claimed: true, previousHolder: current.holder } : { claimed: true };
    }
    throw this.tooManyConflicts(ref, 'claim');
  }

  async renew(
    ref: ServingRef,
    owner: string,
    leaseSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
  ): Promise<RenewOutcome> {
    checkLeaseSeconds(leaseSeconds);
    for (let round = 1; round <= this.options.conflictRetries; round++) {
      const existing = await this.read(ref);
      if (!existing) return { renewed: false };
      const holder = existing.spec?.holderIdentity ?? '';
      if (holder !== owner) return holder ? { renewed: false, holder } : { renewed: false };
      const spec: V1LeaseSpec = {
        ...existing.spec,
        renewTime: new V1MicroTime(),
        leaseDurationSeconds: leaseSeconds,
      };
      if (await this.replace(ref, existing, spec)) return { renewed: true };
    }
    throw this.tooManyConflicts(ref, 'renew');
  }

  async release(ref: ServingRef, owner: string): Promise<void> {
    const lease = await this.read(ref);
    if (!lease || lease.spec?.holderIdentity !== owner) return;
    await this.delete(ref, lease.metadata?.resourceVersion);
  }

  async break(ref: ServingRef, expected: ServiceLease): Promise<boolean> {
    if (!expected.version) return false;
    return this.delete(ref, expected.version);
  }
}
