import path from 'node:path';
import { leaseExpired } from '../../domain/lease.js';
import type { Logger } from '../../observability/logger.js';
import {
  type ClaimOutcome,
  ClusterError,
  type DeploymentMode,
  type RenewOutcome,
  type ServiceLease,
  type ServingCondition,
  type ServingRevisionSpec,
  type ServingStatus,
  type TrafficTarget,
} from '../port.js';
import type { RevisionView, ServiceView } from './api.js';
import { readJsonFile, readJsonTree, removeFile, writeJsonAtomic } from './json-files.js';
import { KeyedLock } from './keyed-lock.js';
import { isOurProcess, signalGroup } from './process-group.js';
import { type RevisionLimits, RevisionProcess } from './revision-process.js';
import type { RevisionRuntime } from './revision-runtime.js';
import { type ProxyFault, TrafficProxy } from './traffic-proxy.js';

// Serving in the sandbox, with KServe Serverless canary semantics (REFERENCE.md): a
// service has a stable (rolled-out) revision and at most one canary; revisions are named
// <service>-predictor-00001, -00002...; the split is applied by the service's proxy.
// Weights change only once the revision that should get traffic is healthy, so the
// status reports the split actually applied, and Ready only when it is the one asked for.

export interface ServingManagerOptions {
  stateDir: string;
  /** Environment every revision process starts from (its own env is laid over it). */
  baseEnv: NodeJS.ProcessEnv;
  killGraceMs: number;
  /** Longest wait for in-flight requests before a replaced revision is stopped. */
  drainMs: number;
  /** What a revision runs: the serving simulator or a real vLLM server. */
  runtime: RevisionRuntime;
  limits: RevisionLimits;
  logger: Logger;
  onProxyResponse?: (service: string, revision: string, statusClass: string) => void;
}

interface ServiceRecord {
  namespace: string;
  name: string;
  deploymentMode: DeploymentMode;
  /** Number of the last revision created. */
  generation: number;
  revisions: Record<string, { spec: ServingRevisionSpec; createdAt: string; pid?: number }>;
  stable: string;
  canary?: string;
  desiredCanaryPercent?: number;
  /** The split the proxy applies; trails the desired one until the canary is healthy. */
  appliedCanaryPercent?: number;
  latestCreatedRevision: string;
  latestReadyRevision?: string;
  latestRolledoutRevision?: string;
  previousRolledoutRevision?: string;
  proxyPort: number;
  history: ServiceView['history'];
  /** Fault injection per role or revision name (what a mesh's VirtualService fault does). */
  faults?: FaultRules;
}

/** Where faults apply: the current canary, the current stable revision, or named revisions. */
export interface FaultRules {
  canary?: ProxyFault;
  stable?: ProxyFault;
  revisions?: Record<string, ProxyFault>;
}

/** A Prometheus HTTP service-discovery group: one revision's server and its labels. */
export interface ScrapeTargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

interface LiveService {
  record: ServiceRecord;
  proxy: TrafficProxy;
  processes: Map<string, RevisionProcess>;
}

/** Identity of a revision: everything but labels (labels carry workflow ids, not behaviour). */
function fingerprint(spec: ServingRevisionSpec): string {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
      );
    }
    return value;
  };
  const { labels: _labels, ...rest } = spec;
  return JSON.stringify(canonical(rest));
}

const revisionNumber = (name: string) => Number(name.slice(name.lastIndexOf('-') + 1));

export class ServingManager {
  private readonly services = new Map<string, LiveService>();
  /** Rollout leases by namespace/name, with the same expiry rules as a Kubernetes Lease. */
  private leases: Record<string, ServiceLease> = {};
  private leaseVersion = 0;
  private readonly lock = new KeyedLock();
  private readonly dir: string;
  private readonly leaseFile: string;

  constructor(private readonly options: ServingManagerOptions) {
    this.dir = path.join(options.stateDir, 'services');
    this.leaseFile = path.join(options.stateDir, 'leases.json');
  }

  private key(namespace: string, name: string): string {
    return `${namespace}/${name}`;
  }

  private recordFile(record: ServiceRecord): string {
    return path.join(this.dir, record.namespace, `${record.name}.json`);
  }

  private async persist(live: LiveService): Promise<void> {
    for (const [name, p] of live.processes) {
      const entry = live.record.revisions[name];
      if (entry) entry.pid = p.pid;
    }
    await writeJsonAtomic(this.recordFile(live.record), live.record);
  }

  /** Brings persisted services back: orphaned revision processes are killed and started afresh. */
  async init(): Promise<void> {
    const stored = (await readJsonFile<Record<string, string | ServiceLease>>(this.leaseFile)) ?? {};
    // Leases written before they expired were bare holder names: no renewal time, so expired.
    this.leases = Object.fromEntries(
      Object.entries(stored).map(([key, value]) => [
        key,
        typeof value === 'string' ? { holder: value, transitions: 0 } : value,
      ]),
    );
    this.leaseVersion = Math.max(0, ...Object.values(this.leases).map((l) => Number(l.version ?? 0) || 0));
    for (const record of await readJsonTree<ServiceRecord>(this.dir)) {
      for (const entry of Object.values(record.revisions)) {
        if (entry.pid && isOurProcess(entry.pid, this.options.runtime.processMark))
          signalGroup(entry.pid, 'SIGKILL');
      }
      const live = await this.bringUp(record);
      for (const name of [record.stable, record.canary]) {
        if (name && record.revisions[name]) this.startRevision(live, name);
      }
      this.applyTraffic(live);
      await this.persist(live);
    }
  }

  private async bringUp(record: ServiceRecord): Promise<LiveService> {
    const key = this.key(record.namespace, record.name);
    const proxy = new TrafficProxy(key, this.options.logger, (revision, statusClass) =>
      this.options.onProxyResponse?.(key, revision, statusClass),
    );
    record.proxyPort = await proxy.listen(record.proxyPort);
    const live: LiveService = { record, proxy, processes: new Map() };
    this.services.set(key, live);
    return live;
  }

  private startRevision(live: LiveService, name: string): RevisionProcess {
    const { record } = live;
    const entry = record.revisions[name];
    if (!entry) throw new Error(`no revision ${name}`);
    const key = this.key(record.namespace, record.name);
    const revision = new RevisionProcess(
      name,
      entry.spec,
      path.join(this.dir, record.namespace, `${name}.log`),
      this.options.baseEnv,
      this.options.runtime,
      this.options.limits,
      {
        onHealthy: () => void this.lock.run(key, () => this.onRevisionHealthy(live, name)),
        onUnhealthy: () => void this.lock.run(key, async () => this.applyTraffic(live)),
      },
      this.options.logger,
    );
    live.processes.set(name, revision);
    void revision.start();
    return revision;
  }

  private async onRevisionHealthy(live: LiveService, name: string): Promise<void> {
    if (this.services.get(this.key(live.record.namespace, live.record.name)) !== live) return;
    const { record } = live;
    if (!record.latestReadyRevision || revisionNumber(name) > revisionNumber(record.latestReadyRevision)) {
      record.latestReadyRevision = name;
    }
    if (name === record.stable && !record.latestRolledoutRevision) record.latestRolledoutRevision = name;
    if (name === record.canary) record.appliedCanaryPercent = record.desiredCanaryPercent;
    this.applyTraffic(live);
    await this.persist(live);
  }

  /** Gives the proxy the applied split, over the revisions that are healthy now. */
  private applyTraffic(live: LiveService): void {
    const { record, processes } = live;
    const entries: Array<{ revision: RevisionProcess; weight: number }> = [];
    const stable = processes.get(record.stable);
    const canary = record.canary ? processes.get(record.canary) : undefined;
    const canaryWeight =
      canary && record.appliedCanaryPercent !== undefined ? record.appliedCanaryPercent : 0;
    if (stable?.healthy) entries.push({ revision: stable, weight: 100 - canaryWeight });
    if (canary?.healthy && canaryWeight > 0) entries.push({ revision: canary, weight: canaryWeight });
    live.proxy.setTargets(
      entries.map((e) => ({
        target: { revision: e.revision.name, host: e.revision.host, port: e.revision.sidecarPort },
        weight: e.weight,
      })),
    );
    const faults = record.faults ?? {};
    for (const [name, revision] of processes) {
      const role =
        name === record.canary ? faults.canary : name === record.stable ? faults.stable : undefined;
      revision.setFault(faults.revisions?.[name] ?? role);
    }
  }

  /** Replaces the service's fault rules (undefined clears them); applies at once. */
  async setFaults(namespace: string, name: string, faults: FaultRules | undefined): Promise<FaultRules> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const live = this.require(namespace, name);
      live.record.faults = faults;
      this.applyTraffic(live);
      await this.persist(live);
      this.options.logger.info(
        { service: key, faults },
        faults ? 'fault injection set' : 'fault injection cleared',
      );
      return faults ?? {};
    });
  }

  /** Every running revision's server, for Prometheus HTTP service discovery. */
  scrapeTargets(): ScrapeTargetGroup[] {
    const groups: ScrapeTargetGroup[] = [];
    for (const live of this.services.values()) {
      const { record } = live;
      for (const [name, p] of live.processes) {
        if (!p.serverUrl || p.failed) continue;
        groups.push({
          targets: [new URL(p.serverUrl).host],
          labels: {
            namespace: record.namespace,
            service: record.name,
            revision: name,
            role: name === record.canary ? 'canary' : 'stable',
            engine: this.options.runtime.engine,
          },
        });
      }
    }
    return groups;
  }

  private require(namespace: string, name: string): LiveService {
    const live = this.services.get(this.key(namespace, name));
    if (!live) throw new ClusterError('NotFound', `inferenceservice ${namespace}/${name} not found`, false);
    return live;
  }

  private newRevision(live: LiveService, spec: ServingRevisionSpec): string {
    const { record } = live;
    record.generation++;
    const name = `${record.name}-predictor-${String(record.generation).padStart(5, '0')}`;
    record.revisions[name] = { spec, createdAt: new Date().toISOString() };
    record.latestCreatedRevision = name;
    return name;
  }

  get(namespace: string, name: string): ServingStatus | undefined {
    const live = this.services.get(this.key(namespace, name));
    return live ? this.status(live) : undefined;
  }

  async deploy(
    namespace: string,
    name: string,
    mode: DeploymentMode,
    spec: ServingRevisionSpec,
  ): Promise<ServingStatus> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const existing = this.services.get(key);
      if (existing) {
        const stableSpec = existing.record.revisions[existing.record.stable]?.spec;
        if (stableSpec?.storageUri === spec.storageUri) return this.status(existing);
        throw new ClusterError(
          'Conflict',
          `inferenceservice ${key} already serves ${stableSpec?.storageUri} (revision ${existing.record.stable}); roll out ${spec.storageUri} as a canary instead`,
          false,
        );
      }
      const record: ServiceRecord = {
        namespace,
        name,
        deploymentMode: mode,
        generation: 0,
        revisions: {},
        stable: '',
        latestCreatedRevision: '',
        proxyPort: 0,
        history: [],
      };
      const live = await this.bringUp(record);
      record.stable = this.newRevision(live, spec);
      this.startRevision(live, record.stable);
      this.applyTraffic(live);
      await this.persist(live);
      this.options.logger.info(
        { service: key, revision: record.stable, storageUri: spec.storageUri },
        'service deployed',
      );
      return this.status(live);
    });
  }

  async startCanary(
    namespace: string,
    name: string,
    mode: DeploymentMode,
    spec: ServingRevisionSpec,
    percent: number,
  ): Promise<ServingStatus> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const live = this.require(namespace, name);
      const { record } = live;
      if (mode === 'RawDeployment' || record.deploymentMode === 'RawDeployment') {
        throw new ClusterError(
          'Unsupported',
          `inferenceservice ${key}: canary rollouts need Serverless or Standard mode (RawDeployment ignores canaryTrafficPercent)`,
          false,
        );
      }
      if (record.canary) {
        const current = record.revisions[record.canary]?.spec;
        if (!current || fingerprint(current) !== fingerprint(spec)) {
          throw new ClusterError(
            'Conflict',
            `inferenceservice ${key} already has canary ${record.canary} (${current?.storageUri}); promote or roll it back first`,
            false,
          );
        }
        // The same canary again (a retried activity): adopt it at the asked percent.
        this.setDesired(live, percent);
      } else {
        record.canary = this.newRevision(live, spec);
        record.desiredCanaryPercent = percent;
        record.appliedCanaryPercent = undefined;
        this.startRevision(live, record.canary);
        this.options.logger.info({ service: key, revision: record.canary, percent }, 'canary started');
      }
      this.applyTraffic(live);
      await this.persist(live);
      return this.status(live);
    });
  }

  private setDesired(live: LiveService, percent: number): void {
    const { record } = live;
    record.desiredCanaryPercent = percent;
    const canary = record.canary ? live.processes.get(record.canary) : undefined;
    if (canary?.healthy) record.appliedCanaryPercent = percent;
  }

  async setCanaryTraffic(namespace: string, name: string, percent: number): Promise<ServingStatus> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const live = this.require(namespace, name);
      if (!live.record.canary) {
        throw new ClusterError('Conflict', `inferenceservice ${key} has no canary to set traffic for`, false);
      }
      this.setDesired(live, percent);
      this.applyTraffic(live);
      await this.persist(live);
      this.options.logger.info({ service: key, percent }, 'canary traffic set');
      return this.status(live);
    });
  }

  async promote(namespace: string, name: string): Promise<ServingStatus> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const live = this.require(namespace, name);
      const { record } = live;
      if (!record.canary) {
        // Promoted already (a retried call) is success; a rolled-back canary is not.
        if (record.latestRolledoutRevision === record.latestCreatedRevision) return this.status(live);
        throw new ClusterError(
          'Conflict',
          `inferenceservice ${key} has no canary to promote (latest revision ${record.latestCreatedRevision} was rolled back)`,
          false,
        );
      }
      const canary = live.processes.get(record.canary);
      if (!canary?.healthy) {
        throw new ClusterError(
          'Unavailable',
          `canary ${record.canary} of ${key} is not ready yet; promote it once it is`,
          true,
        );
      }
      const old = record.stable;
      record.previousRolledoutRevision = old;
      record.latestRolledoutRevision = record.canary;
      record.stable = record.canary;
      record.canary = undefined;
      record.desiredCanaryPercent = undefined;
      record.appliedCanaryPercent = undefined;
      this.applyTraffic(live);
      this.retire(live, old, 'replaced');
      await this.persist(live);
      this.options.logger.info({ service: key, stable: record.stable, previous: old }, 'canary promoted');
      return this.status(live);
    });
  }

  async rollback(namespace: string, name: string): Promise<ServingStatus> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const live = this.require(namespace, name);
      const { record } = live;
      if (!record.canary) return this.status(live);
      const canary = record.canary;
      record.canary = undefined;
      record.desiredCanaryPercent = undefined;
      record.appliedCanaryPercent = undefined;
      this.applyTraffic(live);
      this.retire(live, canary, 'rolled-back');
      await this.persist(live);
      this.options.logger.info({ service: key, canary, stable: record.stable }, 'canary rolled back');
      return this.status(live);
    });
  }

  /** Takes a revision out of the service, then stops its process once in-flight requests drained. */
  private retire(live: LiveService, name: string, outcome: 'replaced' | 'rolled-back'): void {
    const entry = live.record.revisions[name];
    const proc = live.processes.get(name);
    if (entry) {
      live.record.history.push({
        name,
        storageUri: entry.spec.storageUri,
        outcome,
        ...(proc?.readySeconds !== undefined
          ? { readySeconds: Math.round(proc.readySeconds * 1000) / 1000 }
          : {}),
      });
    }
    delete live.record.revisions[name];
    live.processes.delete(name);
    if (!proc) return;
    const counters = live.proxy.countersOf(name);
    const deadline = Date.now() + this.options.drainMs;
    void (async () => {
      while (counters.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await proc.stop(this.options.killGraceMs);
    })();
  }

  async deleteService(namespace: string, name: string): Promise<boolean> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const live = this.services.get(key);
      if (!live) return false;
      this.services.delete(key);
      await live.proxy.close();
      await Promise.all([...live.processes.values()].map((p) => p.stop(this.options.killGraceMs)));
      await removeFile(this.recordFile(live.record));
      return true;
    });
  }

  private async writeLeases(): Promise<void> {
    await writeJsonAtomic(this.leaseFile, this.leases);
  }

  private nextLease(lease: Omit<ServiceLease, 'version'>): ServiceLease {
    return { ...lease, version: String(++this.leaseVersion) };
  }

  async claim(namespace: string, name: string, owner: string, leaseSeconds: number): Promise<ClaimOutcome> {
    const key = this.key(namespace, name);
    return this.lock.run(`lease:${key}`, async () => {
      const current = this.leases[key];
      const now = new Date();
      const nowIso = now.toISOString();
      if (current?.holder === owner) {
        this.leases[key] = this.nextLease({ ...current, renewTime: nowIso, durationSeconds: leaseSeconds });
        await this.writeLeases();
        return { claimed: true };
      }
      if (current && current.holder !== '' && !leaseExpired(current, now.getTime(), leaseSeconds))
        return { claimed: false, holder: current.holder };
      this.leases[key] = this.nextLease({
        holder: owner,
        acquireTime: nowIso,
        renewTime: nowIso,
        durationSeconds: leaseSeconds,
        transitions: current ? current.transitions + 1 : 0,
      });
      await this.writeLeases();
      return current?.holder ? { claimed: true, previousHolder: current.holder } : { claimed: true };
    });
  }

  /** Extends `owner`'s lease; refuses when it is gone or another owner holds it. */
  async renew(namespace: string, name: string, owner: string, leaseSeconds: number): Promise<RenewOutcome> {
    const key = this.key(namespace, name);
    return this.lock.run(`lease:${key}`, async () => {
      const current = this.leases[key];
      if (!current) return { renewed: false };
      if (current.holder !== owner) return { renewed: false, holder: current.holder };
      this.leases[key] = this.nextLease({
        ...current,
        renewTime: new Date().toISOString(),
        durationSeconds: leaseSeconds,
      });
      await this.writeLeases();
      return { renewed: true };
    });
  }

  lease(namespace: string, name: string): ServiceLease | undefined {
    return this.leases[this.key(namespace, name)];
  }

  /** Deletes the lease if it is still at `version`; false when it changed or is gone. */
  async breakLease(namespace: string, name: string, version: string): Promise<boolean> {
    const key = this.key(namespace, name);
    return this.lock.run(`lease:${key}`, async () => {
      if (this.leases[key]?.version !== version) return false;
      delete this.leases[key];
      await this.writeLeases();
      return true;
    });
  }

  /** Releases the lease if `owner` holds it; releasing someone else's lease does nothing. */
  async release(namespace: string, name: string, owner: string): Promise<void> {
    const key = this.key(namespace, name);
    await this.lock.run(`lease:${key}`, async () => {
      if (this.leases[key]?.holder !== owner) return;
      delete this.leases[key];
      await this.writeLeases();
    });
  }

  private revisionTarget(
    live: LiveService,
    name: string,
    percent: number,
    tag?: 'prev' | 'latest',
  ): TrafficTarget {
    const target: TrafficTarget = { revision: name, percent };
    if (tag) target.tag = tag;
    const url = live.processes.get(name)?.url;
    if (url) target.url = url;
    const storageUri = live.record.revisions[name]?.spec.storageUri;
    if (storageUri) target.storageUri = storageUri;
    return target;
  }

  private status(live: LiveService): ServingStatus {
    const { record, processes } = live;
    const stable = processes.get(record.stable);
    const canary = record.canary ? processes.get(record.canary) : undefined;
    const predictorProblems: string[] = [];
    const failed: string[] = [];
    for (const p of [stable, canary]) {
      if (p?.failed) failed.push(`${p.failed.reason}: ${p.failed.message}`);
      else if (p && !p.healthy) predictorProblems.push(p.lastError ?? `revision ${p.name} is starting`);
    }
    predictorProblems.unshift(...failed);
    const routesPending =
      record.canary !== undefined && record.appliedCanaryPercent !== record.desiredCanaryPercent;
    const condition = (type: string, ok: boolean, reason: string, message?: string): ServingCondition =>
      ok ? { type, status: 'True' } : { type, status: 'False', reason, ...(message ? { message } : {}) };
    const predictorReady = predictorProblems.length === 0;
    const routesReady = !routesPending && stable?.healthy === true;
    const conditions = [
      // RevisionFailed: the revision can never become ready (Knative's reason); waiters stop.
      condition(
        'PredictorReady',
        predictorReady,
        failed.length > 0 ? 'RevisionFailed' : 'RevisionNotReady',
        predictorProblems.join('; '),
      ),
      condition(
        'RoutesReady',
        routesReady,
        'TrafficNotApplied',
        routesPending
          ? `canary ${record.canary} gets ${record.desiredCanaryPercent}% once it is healthy`
          : 'no healthy revision',
      ),
      condition('Ready', predictorReady && routesReady, 'NotReady', 'predictor or routes not ready'),
    ];
    const applied = record.canary ? record.appliedCanaryPercent : undefined;
    const traffic =
      applied !== undefined && record.canary
        ? [
            this.revisionTarget(live, record.stable, 100 - applied, 'prev'),
            this.revisionTarget(live, record.canary, applied, 'latest'),
          ]
        : [this.revisionTarget(live, record.stable, 100)];
    const status: ServingStatus = {
      namespace: record.namespace,
      name: record.name,
      ready: predictorReady && routesReady,
      conditions,
      url: `http://127.0.0.1:${live.proxy.port}`,
      traffic,
      latestCreatedRevision: record.latestCreatedRevision,
      stableStorageUri: record.revisions[record.stable]?.spec.storageUri,
    };
    if (applied !== undefined) status.canaryPercent = applied;
    if (record.latestReadyRevision) status.latestReadyRevision = record.latestReadyRevision;
    if (record.latestRolledoutRevision) status.latestRolledoutRevision = record.latestRolledoutRevision;
    if (record.previousRolledoutRevision) status.previousRolledoutRevision = record.previousRolledoutRevision;
    if (record.canary) status.canaryStorageUri = record.revisions[record.canary]?.spec.storageUri;
    const owner = this.leases[this.key(record.namespace, record.name)]?.holder;
    if (owner) status.owner = owner;
    return status;
  }

  view(namespace: string, name: string): ServiceView | undefined {
    const live = this.services.get(this.key(namespace, name));
    if (!live) return undefined;
    const { record } = live;
    const status = this.status(live);
    const weights = new Map(status.traffic.map((t) => [t.revision, t.percent]));
    const revisions: RevisionView[] = [];
    for (const [name, entry] of Object.entries(record.revisions)) {
      const p = live.processes.get(name);
      const counters = live.proxy.countersOf(name);
      const view: RevisionView = {
        name,
        role: name === record.canary ? 'canary' : 'stable',
        storageUri: entry.spec.storageUri,
        servedModelName: entry.spec.servedModelName,
        healthy: p?.healthy ?? false,
        restarts: p?.restarts ?? 0,
        weight: p?.healthy ? (weights.get(name) ?? 0) : 0,
        requests: counters.requests,
        inflight: counters.inflight,
        logFile: p?.logFile ?? '',
        engine: this.options.runtime.engine,
      };
      if (p?.url) view.url = p.url;
      if (p?.serverUrl) view.serverUrl = p.serverUrl;
      if (p?.fault) view.fault = p.fault;
      if (p?.failed) view.failed = p.failed;
      if (p?.readySeconds !== undefined) view.readySeconds = Math.round(p.readySeconds * 1000) / 1000;
      if (p?.pid) view.pid = p.pid;
      revisions.push(view);
    }
    return { status, proxyUrl: status.url as string, revisions, history: record.history };
  }

  list(): ServiceView[] {
    return [...this.services.values()]
      .map((l) => this.view(l.record.namespace, l.record.name))
      .filter((v): v is ServiceView => v !== undefined);
  }

  async shutdown(): Promise<void> {
    const all = [...this.services.values()];
    await Promise.all(
      all.map(async (live) => {
        await live.proxy.close();
        await Promise.all([...live.processes.values()].map((p) => p.stop(this.options.killGraceMs)));
      }),
    );
  }
}
