import { setTimeout as sleep } from 'node:timers/promises';
import type { AuditLog } from '../audit/audit-log.js';
import type { ClusterBackend, ServiceLease, WaitOptions } from '../cluster/port.js';
import {
  checkLeaseSeconds,
  DEFAULT_ROLLOUT_LEASE_SECONDS,
  leaseExpired,
  leaseExpiresAt,
  leaseSecondsLeft,
  renewIntervalMs,
} from '../domain/lease.js';
import type { ServingRef, ServingRevisionSpec, ServingStatus } from '../domain/serving-revision.js';
import type { ArtifactStore } from '../storage/port.js';

// Serving changes with idempotency on top of the cluster port: every method can be called
// again after a crash and converges on the same state (a second shift to 25 % of the same
// canary is a no-op, a rollback without a canary is a no-op). Each change is audited, and a
// promotion is recorded in the model registry (registry/<namespace>/<name>.json).
// A rollout holds the service's lease (claim), keeps it renewed while it runs (hold, in a
// heartbeating activity, or renew), and gives it back (release); a lease whose holder
// stopped renewing expires and can be claimed by the next rollout or broken by an operator.

export interface RevisionEndpoints {
  canary?: { revision: string; baseUrl: string };
  stable?: { revision: string; baseUrl: string };
  /** The fresh copy of stable started with the canary, when there is one. */
  baseline?: { revision: string; baseUrl: string };
  /** Through the traffic split. */
  service?: string;
}

export interface RegistryEntry {
  revision?: string;
  storageUri?: string;
  workflowId: string;
  actor: string;
  promotedAt: string;
}

type Hooks = Pick<WaitOptions, 'signal' | 'onProgress'>;

/** The workflow no longer holds the rollout lease: another took it over, or it was broken. */
export class ServingLeaseLostError extends Error {
  override readonly name = 'ServingLeaseLostError';
  readonly failureType = 'ServingLeaseLost';
  readonly retryable = false;
  get failureDetails() {
    return { holder: this.holder ?? null };
  }
  constructor(
    readonly ref: ServingRef,
    readonly workflowId: string,
    readonly holder: string | undefined,
  ) {
    super(
      holder
        ? `workflow ${workflowId} lost the rollout lease of service ${ref.namespace}/${ref.name}: workflow ${holder} holds it now (the lease expired and was taken over)`
        : `workflow ${workflowId} lost the rollout lease of service ${ref.namespace}/${ref.name}: it was released or broken by an operator`,
    );
  }
}

export interface ServiceLeaseView extends ServiceLease {
  expiresAt?: string;
  expired: boolean;
  secondsLeft: number;
}

export type BreakLeaseResult =
  | { broken: true; lease: ServiceLeaseView }
  /** none: no lease; live: still renewed (use force); changed: it changed hands meanwhile. */
  | { broken: false; reason: 'none' | 'live' | 'changed'; lease?: ServiceLeaseView };

export interface ServingServiceOptions {
  /** Duration of the rollout lease (config cluster.rolloutLeaseSeconds). */
  leaseSeconds?: number;
  /** Clock for lease expiry, ms (tests). */
  now?: () => number;
}

export class ServingService {
  readonly leaseSeconds: number;
  private readonly now: () => number;

  constructor(
    private readonly cluster: ClusterBackend,
    private readonly audit: AuditLog,
    private readonly store: ArtifactStore,
    options: ServingServiceOptions = {},
  ) {
    this.leaseSeconds = checkLeaseSeconds(options.leaseSeconds ?? DEFAULT_ROLLOUT_LEASE_SECONDS);
    this.now = options.now ?? Date.now;
  }

  /** OpenAI routes: KServe's vLLM runtime serves them under /openai/v1, vLLM itself under /v1. */
  get openAiPath(): string {
    return this.cluster.kind === 'kubernetes' ? '/openai/v1' : '/v1';
  }

  private target(ref: ServingRef): string {
    return `service ${ref.namespace}/${ref.name}`;
  }

  private deadline(timeoutSeconds: number, hooks: Hooks): WaitOptions {
    return { deadline: Date.now() + timeoutSeconds * 1000, ...hooks };
  }

  describe(ref: ServingRef): Promise<ServingStatus | undefined> {
    return this.cluster.getService(ref);
  }

  /**
   * Takes the rollout lease for `workflowId`. An expired lease of another workflow (one
   * terminated without releasing it) is taken over; the result and the audit record name
   * the previous holder.
   */
  async claim(
    ref: ServingRef,
    workflowId: string,
    actor: string,
  ): Promise<{ claimed: boolean; holder?: string; previousHolder?: string; leaseSeconds?: number }> {
    const result = await this.cluster.claimService(ref, workflowId, this.leaseSeconds);
    if (!result.claimed) return { claimed: false, holder: result.holder };
    await this.audit.record({
      actor,
      action: result.previousHolder ? 'serving.claim-takeover' : 'serving.claim',
      workflowId,
      target: this.target(ref),
      details: {
        leaseSeconds: this.leaseSeconds,
        ...(result.previousHolder ? { previousHolder: result.previousHolder } : {}),
      },
    });
    return result.previousHolder
      ? { claimed: true, previousHolder: result.previousHolder, leaseSeconds: this.leaseSeconds }
      : { claimed: true, leaseSeconds: this.leaseSeconds };
  }

  /**
   * Renews `workflowId`'s lease once. Idempotent. Throws ServingLeaseLostError when the lease
   * is gone (released, or broken by an operator) or another workflow took it over.
   */
  async renew(ref: ServingRef, workflowId: string): Promise<{ leaseSeconds: number; renewedAt: string }> {
    const result = await this.cluster.renewService(ref, workflowId, this.leaseSeconds);
    if (!result.renewed) throw new ServingLeaseLostError(ref, workflowId, result.holder);
    return { leaseSeconds: this.leaseSeconds, renewedAt: new Date(this.now()).toISOString() };
  }

  /**
   * Keeps `workflowId`'s lease renewed every third of its duration until `hooks.signal`
   * aborts (the workflow is done with the service, or was terminated: heartbeats then stop
   * being accepted and the activity is cancelled), then resolves. Throws
   * ServingLeaseLostError as soon as a renewal is refused; transient errors are retried
   * until the lease would expire.
   */
  async hold(ref: ServingRef, workflowId: string, hooks: Hooks = {}): Promise<{ renewals: number }> {
    const every = renewIntervalMs(this.leaseSeconds);
    let renewals = 0;
    let lastRenewed = this.now();
    for (;;) {
      if (hooks.signal?.aborted) return { renewals };
      try {
        await this.renew(ref, workflowId);
        renewals++;
        lastRenewed = this.now();
        hooks.onProgress?.(`holding the rollout lease of ${this.target(ref)} (renewal ${renewals})`);
      } catch (err) {
        if (err instanceof ServingLeaseLostError) throw err;
        // The lease may still be ours: try again until it would have expired.
        if (this.now() - lastRenewed >= this.leaseSeconds * 1000) throw err;
        hooks.onProgress?.(
          `renewing the rollout lease of ${this.target(ref)} failed: ${(err as Error).message}`,
        );
      }
      try {
        await sleep(every, undefined, { signal: hooks.signal });
      } catch {
        return { renewals }; // aborted while waiting
      }
    }
  }

  async release(ref: ServingRef, workflowId: string, actor: string): Promise<void> {
    await this.cluster.releaseService(ref, workflowId);
    await this.audit.record({
      actor,
      action: 'serving.release',
      workflowId,
      target: this.target(ref),
      details: {},
    });
  }

  /** The rollout lease with its expiry as this process sees it; undefined when there is none. */
  async lease(ref: ServingRef): Promise<ServiceLeaseView | undefined> {
    const lease = await this.cluster.getServiceLease(ref);
    if (!lease) return undefined;
    const now = this.now();
    const expiresAt = leaseExpiresAt(lease, this.leaseSeconds);
    return {
      ...lease,
      expiresAt: Number.isFinite(expiresAt) ? new Date(expiresAt).toISOString() : undefined,
      expired: leaseExpired(lease, now, this.leaseSeconds),
      secondsLeft: leaseSecondsLeft(lease, now, this.leaseSeconds),
    };
  }

  /**
   * An operator breaks the rollout lease of a service whose workflow is gone. Refuses while
   * the lease is still being renewed (not expired) unless `force`. Deletes only the lease
   * it looked at (compare-and-delete), and audits who broke whose lease.
   */
  async breakLease(
    ref: ServingRef,
    options: { force: boolean; actor: string; reason?: string },
  ): Promise<BreakLeaseResult> {
    const lease = await this.lease(ref);
    if (!lease) return { broken: false, reason: 'none' };
    if (!lease.expired && !options.force) return { broken: false, reason: 'live', lease };
    if (!(await this.cluster.breakServiceLease(ref, lease)))
      return { broken: false, reason: 'changed', lease };
    await this.audit.record({
      actor: options.actor,
      action: 'serving.lease-break',
      workflowId: lease.holder || undefined,
      target: this.target(ref),
      details: {
        holder: lease.holder,
        renewTime: lease.renewTime,
        expiresAt: lease.expiresAt,
        expired: lease.expired,
        forced: options.force && !lease.expired,
        ...(options.reason ? { reason: options.reason } : {}),
      },
    });
    return { broken: true, lease };
  }

  /** Creates the service with `revision` at 100 % unless it already exists. */
  async ensureStable(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    ctx: { workflowId: string; actor: string; timeoutSeconds: number },
    hooks: Hooks = {},
  ): Promise<ServingStatus> {
    const existing = await this.cluster.getService(ref);
    if (existing) return existing;
    hooks.onProgress?.(`creating ${this.target(ref)} with ${revision.storageUri}`);
    await this.cluster.deployService(ref, revision);
    await this.audit.record({
      actor: ctx.actor,
      action: 'serving.create',
      workflowId: ctx.workflowId,
      target: this.target(ref),
      details: { storageUri: revision.storageUri, image: revision.image, vllm: revision.vllm },
    });
    return this.cluster.waitForTraffic(ref, undefined, this.deadline(ctx.timeoutSeconds, hooks));
  }

  /**
   * Serves `revision` alone on a private service (a promotion's validation copy, never in a
   * traffic split users reach) and waits until it answers. A retry adopts what it created.
   */
  async serveForValidation(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    ctx: { workflowId: string; actor: string; timeoutSeconds: number; purpose: string },
    hooks: Hooks = {},
  ): Promise<ServingStatus> {
    if (!(await this.cluster.getService(ref))) {
      hooks.onProgress?.(`creating ${this.target(ref)} with ${revision.storageUri} for ${ctx.purpose}`);
      await this.cluster.deployService(ref, revision);
      await this.audit.record({
        actor: ctx.actor,
        action: 'serving.create',
        workflowId: ctx.workflowId,
        target: this.target(ref),
        details: { storageUri: revision.storageUri, image: revision.image, purpose: ctx.purpose },
      });
    }
    return this.cluster.waitForTraffic(ref, undefined, this.deadline(ctx.timeoutSeconds, hooks));
  }

  /** Deletes a validation service; false when it was already gone. */
  async removeValidationService(
    ref: ServingRef,
    ctx: { workflowId: string; actor: string },
  ): Promise<boolean> {
    const deleted = await this.cluster.deleteService(ref);
    if (deleted) {
      await this.audit.record({
        actor: ctx.actor,
        action: 'serving.delete',
        workflowId: ctx.workflowId,
        target: this.target(ref),
        details: {},
      });
    }
    return deleted;
  }

  /**
   * Makes `revision` the canary with `percent` of traffic and waits until the split shows it.
   * With `baseline`, the canary starts with a fresh copy of stable beside it (same weight).
   */
  async shiftCanaryTraffic(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    percent: number,
    ctx: { workflowId: string; actor: string; timeoutSeconds: number; baseline?: boolean },
    hooks: Hooks = {},
  ): Promise<ServingStatus> {
    const current = await this.cluster.getService(ref);
    if (!current) throw new Error(`${this.target(ref)} does not exist: deploy a stable revision first`);
    const sameCanary =
      current.canaryPercent !== undefined &&
      current.canaryStorageUri === revision.storageUri &&
      (!ctx.baseline || current.baselinePercent !== undefined);
    if (sameCanary && current.canaryPercent === percent && current.ready) return current;
    const from = current.canaryPercent ?? 0;
    if (sameCanary) await this.cluster.setCanaryTraffic(ref, percent);
    else await this.cluster.startCanary(ref, revision, percent, ctx.baseline ? { baseline: true } : {});
    await this.audit.record({
      actor: ctx.actor,
      action: 'serving.shift-traffic',
      workflowId: ctx.workflowId,
      target: this.target(ref),
      details: {
        fromPercent: from,
        toPercent: percent,
        storageUri: revision.storageUri,
        newCanary: !sameCanary,
        ...(ctx.baseline ? { baseline: true } : {}),
      },
    });
    hooks.onProgress?.(`waiting for ${percent}% on the canary of ${this.target(ref)}`);
    return this.cluster.waitForTraffic(ref, percent, this.deadline(ctx.timeoutSeconds, hooks));
  }

  /** Everything back to the previous rolled-out revision. No analysis, no questions. */
  async rollback(
    ref: ServingRef,
    ctx: { workflowId: string; actor: string; timeoutSeconds: number; reason: string },
    hooks: Hooks = {},
  ): Promise<ServingStatus> {
    const current = await this.cluster.getService(ref);
    if (!current) throw new Error(`${this.target(ref)} does not exist`);
    // Act on what the cluster has, not on the split alone: a canary revision that is still
    // starting carries no traffic yet (an abort mid-shift) but must go all the same.
    if (!hasCanary(current)) return current;
    await this.cluster.rollbackCanary(ref);
    await this.audit.record({
      actor: ctx.actor,
      action: 'serving.rollback',
      workflowId: ctx.workflowId,
      target: this.target(ref),
      details: {
        reason: ctx.reason,
        canaryStorageUri: current.canaryStorageUri,
        canaryPercent: current.canaryPercent,
      },
    });
    return this.cluster.waitForTraffic(ref, undefined, this.deadline(ctx.timeoutSeconds, hooks));
  }

  async promote(
    ref: ServingRef,
    ctx: { workflowId: string; actor: string; timeoutSeconds: number },
    hooks: Hooks = {},
  ): Promise<ServingStatus> {
    const current = await this.cluster.getService(ref);
    if (!current) throw new Error(`${this.target(ref)} does not exist`);
    if (current.canaryPercent === undefined) return current; // already promoted (a retried call)
    await this.cluster.promoteCanary(ref);
    const status = await this.cluster.waitForTraffic(
      ref,
      undefined,
      this.deadline(ctx.timeoutSeconds, hooks),
    );
    const entry: RegistryEntry = {
      revision: status.latestRolledoutRevision,
      storageUri: status.stableStorageUri ?? current.canaryStorageUri,
      workflowId: ctx.workflowId,
      actor: ctx.actor,
      promotedAt: new Date().toISOString(),
    };
    await this.recordInRegistry(ref, entry);
    await this.audit.record({
      actor: ctx.actor,
      action: 'serving.promote',
      workflowId: ctx.workflowId,
      target: this.target(ref),
      details: { ...entry },
    });
    return status;
  }

  registryKey(ref: ServingRef): string {
    return `registry/${ref.namespace}/${ref.name}.json`;
  }

  async registryHistory(ref: ServingRef): Promise<RegistryEntry[]> {
    const key = this.registryKey(ref);
    if (!(await this.store.stat(key))) return [];
    return (await this.store.getJson<{ history: RegistryEntry[] }>(key)).history;
  }

  private async recordInRegistry(ref: ServingRef, entry: RegistryEntry): Promise<void> {
    const history = await this.registryHistory(ref);
    if (history.some((h) => h.workflowId === entry.workflowId && h.revision === entry.revision)) return;
    await this.store.putJson(this.registryKey(ref), {
      service: `${ref.namespace}/${ref.name}`,
      history: [...history, entry],
    });
  }

  /** Per-revision OpenAI base URLs for analysis (tag routing), plus the split URL. */
  endpoints(status: ServingStatus): RevisionEndpoints {
    const join = (url: string) => `${url.replace(/\/+$/, '')}${this.openAiPath}`;
    const canary = status.traffic.find(
      (t) => t.tag === 'latest' && t.revision !== status.latestRolledoutRevision,
    );
    const stable =
      status.traffic.find((t) => t.revision === status.latestRolledoutRevision) ??
      status.traffic.find((t) => t.tag === 'prev');
    const baseline = status.traffic.find((t) => t.tag === 'baseline');
    return {
      canary: canary?.url ? { revision: canary.revision, baseUrl: join(canary.url) } : undefined,
      baseline: baseline?.url ? { revision: baseline.revision, baseUrl: join(baseline.url) } : undefined,
      stable: stable?.url ? { revision: stable.revision, baseUrl: join(stable.url) } : undefined,
      service: status.url ? join(status.url) : undefined,
    };
  }
}

/** A canary revision exists: it carries traffic, or it was created and is not yet ready. */
export function hasCanary(status: ServingStatus): boolean {
  return status.canaryPercent !== undefined || status.canaryStorageUri !== undefined;
}
