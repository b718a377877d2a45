import type { AuditLog } from '../audit/audit-log.js';
import type {
  ClusterBackend,
  ServingRef,
  ServingRevisionSpec,
  ServingStatus,
  WaitOptions,
} from '../cluster/port.js';
import type { ArtifactStore } from '../storage/port.js';

// Serving changes with idempotency on top of the cluster port: every method can be called
// again after a crash and converges on the same state (a second shift to 25 % of the same
// canary is a no-op, a rollback without a canary is a no-op). Each change is audited, and a
// promotion is recorded in the model registry (registry/<namespace>/<name>.json).

export interface RevisionEndpoints {
  canary?: { revision: string; baseUrl: string };
  stable?: { revision: string; baseUrl: string };
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

export class ServingService {
  constructor(
    private readonly cluster: ClusterBackend,
    private readonly audit: AuditLog,
    private readonly store: ArtifactStore,
  ) {}

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

  async claim(
    ref: ServingRef,
    workflowId: string,
    actor: string,
  ): Promise<{ claimed: boolean; holder?: string }> {
    const result = await this.cluster.claimService(ref, workflowId);
    if (result.claimed) {
      await this.audit.record({
        actor,
        action: 'serving.claim',
        workflowId,
        target: this.target(ref),
        details: {},
      });
      return { claimed: true };
    }
    return { claimed: false, holder: result.holder };
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

  /** Makes `revision` the canary with `percent` of traffic and waits until the split shows it. */
  async shiftCanaryTraffic(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    percent: number,
    ctx: { workflowId: string; actor: string; timeoutSeconds: number },
    hooks: Hooks = {},
  ): Promise<ServingStatus> {
    const current = await this.cluster.getService(ref);
    if (!current) throw new Error(`${this.target(ref)} does not exist: deploy a stable revision first`);
    const sameCanary =
      current.canaryPercent !== undefined && current.canaryStorageUri === revision.storageUri;
    if (sameCanary && current.canaryPercent === percent && current.ready) return current;
    const from = current.canaryPercent ?? 0;
    if (sameCanary) await this.cluster.setCanaryTraffic(ref, percent);
    else await this.cluster.startCanary(ref, revision, percent);
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
    if (current.canaryPercent === undefined) return current;
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
    return {
      canary: canary?.url ? { revision: canary.revision, baseUrl: join(canary.url) } : undefined,
      stable: stable?.url ? { revision: stable.revision, baseUrl: join(stable.url) } : undefined,
      service: status.url ? join(status.url) : undefined,
    };
  }
}
