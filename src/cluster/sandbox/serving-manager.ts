import path from 'node:path';
import type { DeploymentMode, ServingRevisionSpec, ServingStatus } from '../../domain/serving-revision.js';
import type { Logger } from '../../observability/logger.js';
import { ClusterError } from '../port.js';
import type { RevisionView, ServiceView } from './api.js';
import { readJsonTree, removeFile, writeJsonAtomic } from './json-files.js';
import { KeyedLock } from './keyed-lock.js';
import { isOurProcess, signalGroup } from './process-group.js';
import { type RevisionLimits, RevisionProcess } from './revision-process.js';
import type { RevisionRuntime } from './revision-runtime.js';
import { SandboxRolloutLeases } from './rollout-leases.js';
import type { FaultRules, ServiceRecord, Transition } from './serving-state.js';
import * as state from './serving-state.js';
import { faultOf, roleOf, serviceStatus, trafficWeights } from './serving-status.js';
import { TrafficProxy } from './traffic-proxy.js';

// Serving in the sandbox: the side-effect layer around serving-state.ts (transitions) and
// serving-status.ts (read-back). Per service, the
// revision processes (revision-process.ts: the sandbox's pods), the traffic proxy that
// applies the split, and the record on disk. Every change runs under the service's lock:
// the state machine computes the new record, then this file starts the revisions it added,
// gives the proxy the new weights, drains and stops the revisions it retired, and persists.
// Process events (a revision turned healthy or unhealthy) go through the same path.

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

export class ServingManager {
  private readonly services = new Map<string, LiveService>();
  /** Rollout leases by namespace/name, with the same expiry rules as a Kubernetes Lease. */
  readonly leases: SandboxRolloutLeases;
  private readonly lock = new KeyedLock();
  private readonly dir: string;

  constructor(private readonly options: ServingManagerOptions) {
    this.dir = path.join(options.stateDir, 'services');
    this.leases = new SandboxRolloutLeases(path.join(options.stateDir, 'leases.json'));
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
    await this.leases.load();
    for (const record of await readJsonTree<ServiceRecord>(this.dir)) {
      for (const entry of Object.values(record.revisions)) {
        if (entry.pid && isOurProcess(entry.pid, this.options.runtime.processMark))
          signalGroup(entry.pid, 'SIGKILL');
      }
      const live = await this.bringUp(record);
      for (const name of [record.stable, record.canary, record.baseline]) {
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
    live.record = state.revisionHealthy(live.record, name);
    this.applyTraffic(live);
    await this.persist(live);
  }

  private observe(live: LiveService): state.Observe {
    return (name) => live.processes.get(name);
  }

  /** Gives the proxy the applied split, over the revisions that are healthy now, and each sidecar its fault. */
  private applyTraffic(live: LiveService): void {
    const { record, processes } = live;
    live.proxy.setTargets(
      trafficWeights(record, this.observe(live)).map(({ revision, weight }) => {
        const p = processes.get(revision) as RevisionProcess;
        return { target: { revision, host: p.host, port: p.sidecarPort }, weight };
      }),
    );
    for (const [name, revision] of processes) revision.setFault(faultOf(record, name));
  }

  /** Makes a transition real: starts what it added, applies the split, stops what it retired. */
  private commit(live: LiveService, transition: Transition): void {
    live.record = transition.record;
    for (const name of transition.started) this.startRevision(live, name);
    this.applyTraffic(live);
    for (const name of transition.retired) this.stopRetired(live, name);
  }

  /** Stops a retired revision's process once its in-flight requests drained. */
  private stopRetired(live: LiveService, name: string): void {
    const proc = live.processes.get(name);
    live.processes.delete(name);
    if (!proc) return;
    const counters = live.proxy.countersOf(name);
    const deadline = Date.now() + this.options.drainMs;
    void (async () => {
      while (counters.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await proc.stop(this.options.killGraceMs);
    })();
  }

  /**
   * Runs one command on a service under its lock: `step` computes the transition; one that
   * changes nothing (returns the same record) is answered without writing anything.
   */
  private async change(
    namespace: string,
    name: string,
    step: (live: LiveService) => Transition,
    done?: (before: ServiceRecord, after: ServiceRecord) => void,
  ): Promise<ServingStatus> {
    return this.lock.run(this.key(namespace, name), async () => {
      const live = this.require(namespace, name);
      const before = live.record;
      const transition = step(live);
      if (transition.record === before) return this.status(live);
      this.commit(live, transition);
      await this.persist(live);
      done?.(before, live.record);
      return this.status(live);
    });
  }

  /** Replaces the service's fault rules (undefined clears them); applies at once. */
  async setFaults(namespace: string, name: string, faults: FaultRules | undefined): Promise<FaultRules> {
    const key = this.key(namespace, name);
    return this.lock.run(key, async () => {
      const live = this.require(namespace, name);
      this.commit(live, { record: state.setFaults(live.record, faults), started: [], retired: [] });
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
            role: roleOf(record, name),
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
      const transition = state.deploy(existing?.record, {
        namespace,
        name,
        deploymentMode: mode,
        spec,
        now: new Date().toISOString(),
      });
      if (existing) return this.status(existing);
      const live = await this.bringUp(transition.record);
      this.commit(live, transition);
      await this.persist(live);
      this.options.logger.info(
        { service: key, revision: live.record.stable, storageUri: spec.storageUri },
        'service deployed',
      );
      return this.status(live);
    });
  }

  startCanary(
    namespace: string,
    name: string,
    mode: DeploymentMode,
    spec: ServingRevisionSpec,
    percent: number,
    options: { baseline?: boolean } = {},
  ): Promise<ServingStatus> {
    return this.change(
      namespace,
      name,
      (live) =>
        state.startCanary(
          live.record,
          { deploymentMode: mode, spec, percent, now: new Date().toISOString(), baseline: options.baseline },
          this.observe(live),
        ),
      (before, after) => {
        if (after.canary !== before.canary)
          this.options.logger.info(
            { service: this.key(namespace, name), revision: after.canary, baseline: after.baseline, percent },
            'canary started',
          );
      },
    );
  }

  setCanaryTraffic(namespace: string, name: string, percent: number): Promise<ServingStatus> {
    return this.change(
      namespace,
      name,
      (live) => state.setCanaryTraffic(live.record, percent, this.observe(live)),
      () => this.options.logger.info({ service: this.key(namespace, name), percent }, 'canary traffic set'),
    );
  }

  promote(namespace: string, name: string): Promise<ServingStatus> {
    return this.change(
      namespace,
      name,
      (live) => state.promote(live.record, this.observe(live)),
      (before, after) =>
        this.options.logger.info(
          { service: this.key(namespace, name), stable: after.stable, previous: before.stable },
          'canary promoted',
        ),
    );
  }

  rollback(namespace: string, name: string): Promise<ServingStatus> {
    return this.change(
      namespace,
      name,
      (live) => state.rollBack(live.record, this.observe(live)),
      (before, after) =>
        this.options.logger.info(
          { service: this.key(namespace, name), canary: before.canary, stable: after.stable },
          'canary rolled back',
        ),
    );
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

  private status(live: LiveService): ServingStatus {
    const { record } = live;
    return serviceStatus(record, this.observe(live), {
      url: `http://127.0.0.1:${live.proxy.port}`,
      owner: this.leases.get(record.namespace, record.name)?.holder,
    });
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
        role: roleOf(record, name),
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
