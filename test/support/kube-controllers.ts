import { randomBytes } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1Job,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import type { InferenceService } from '../../src/cluster/kubernetes/inference-service.js';
import type { KubeControlPlane } from './kube.js';

// The controllers a real cluster would run, played by tests against the real apiserver:
// - Jobs: the test decides when a Job's pod starts, succeeds or fails, and writes the pod
//   and Job status the way the Job controller and kubelet would (validated by the apiserver).
// - KServe: FakeKServeController watches InferenceServices and writes the status KServe
//   reports in each mode (Serverless revisions and traffic split, Standard canaryStatuses,
//   RawDeployment ignoring canaryTrafficPercent as releases before v0.20 do).
// - Kubelet: startFakeKubelet() serves /containerLogs for pods bound to its Node, so the
//   pods/log API works through the apiserver as in a cluster.

export const FAKE_NODE = 'fake-gpu-node';

export interface FakeKubelet {
  port: number;
  /** Log text per "namespace/pod/container". */
  logs: Map<string, string>;
  requests: string[];
  stop(): Promise<void>;
}

export async function startFakeKubelet(plane: KubeControlPlane): Promise<FakeKubelet> {
  const logs = new Map<string, string>();
  const requests: string[] = [];
  const server = https.createServer(
    { cert: plane.servingCert.cert, key: plane.servingCert.key },
    (req, res) => {
      const url = new URL(req.url ?? '/', 'https://127.0.0.1');
      requests.push(url.pathname + url.search);
      const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
      const text = m ? logs.get(`${m[1]}/${m[2]}/${m[3]}`) : undefined;
      if (text === undefined) {
        res.writeHead(404).end('not found');
        return;
      }
      const tail = Number(url.searchParams.get('tailLines') ?? 0);
      const lines = text.replace(/\n$/, '').split('\n');
      res
        .writeHead(200, { 'content-type': 'text/plain' })
        .end(`${(tail > 0 ? lines.slice(-tail) : lines).join('\n')}\n`);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const core = plane.admin.makeApiClient(CoreV1Api);
  await core
    .createNode({ body: { metadata: { name: FAKE_NODE, labels: { 'gpu-type': 'A10' } } } })
    .catch((err: { code?: number }) => {
      if (err.code !== 409) throw err;
    });
  const node = await core.readNode({ name: FAKE_NODE });
  node.status = {
    addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
    daemonEndpoints: { kubeletEndpoint: { Port: port } },
    conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'fake kubelet' }],
  };
  await core.replaceNodeStatus({ name: FAKE_NODE, body: node });
  return {
    port,
    logs,
    requests,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

// --- Job controller ---------------------------------------------------------------------

function nowIso(): Date {
  return new Date();
}

export class JobControllerActions {
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;

  constructor(admin: KubeConfig) {
    this.batch = admin.makeApiClient(BatchV1Api);
    this.core = admin.makeApiClient(CoreV1Api);
  }

  private async updateJobStatus(
    namespace: string,
    name: string,
    change: (job: V1Job) => void,
  ): Promise<V1Job> {
    for (let i = 0; i < 10; i++) {
      const job = await this.batch.readNamespacedJobStatus({ namespace, name });
      change(job);
      try {
        return await this.batch.replaceNamespacedJobStatus({ namespace, name, body: job });
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err;
      }
    }
    throw new Error(`Job ${namespace}/${name}: status update kept conflicting`);
  }

  /** Creates the Job's pod on the fake node (as the Job controller and scheduler would) and marks the Job active. */
  async startPod(namespace: string, name: string): Promise<V1Pod> {
    const job = await this.batch.readNamespacedJob({ namespace, name });
    const template = job.spec?.template;
    const pod = await this.core.createNamespacedPod({
      namespace,
      body: {
        metadata: {
          name: `${name}-${randomBytes(3).toString('hex')}`,
          namespace,
          labels: { ...template?.metadata?.labels },
          ownerReferences: [
            {
              apiVersion: 'batch/v1',
              kind: 'Job',
              name,
              uid: job.metadata?.uid as string,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: { ...(template?.spec as NonNullable<V1Pod['spec']>), nodeName: FAKE_NODE },
      },
    });
    await this.setPodPhase(namespace, pod.metadata?.name as string, 'Running');
    await this.updateJobStatus(namespace, name, (j) => {
      j.status = { ...j.status, active: 1, ready: 1, startTime: j.status?.startTime ?? nowIso() };
    });
    return pod;
  }

  async setPodPhase(
    namespace: string,
    pod: string,
    phase: 'Running' | 'Succeeded' | 'Failed',
    terminated?: { exitCode: number; message?: string },
  ): Promise<void> {
    const current = await this.core.readNamespacedPodStatus({ namespace, name: pod });
    const container = current.spec?.containers[0];
    current.status = {
      ...current.status,
      phase,
      startTime: current.status?.startTime ?? nowIso(),
      containerStatuses: [
        {
          name: container?.name ?? 'job',
          image: container?.image ?? '',
          imageID: '',
          ready: phase === 'Running',
          restartCount: 0,
          state:
            phase === 'Running'
              ? { running: { startedAt: nowIso() } }
              : {
                  terminated: {
                    exitCode: terminated?.exitCode ?? (phase === 'Succeeded' ? 0 : 1),
                    reason: phase === 'Succeeded' ? 'Completed' : 'Error',
                    message: terminated?.message,
                    finishedAt: nowIso(),
                  },
                },
        },
      ],
    };
    await this.core.replaceNamespacedPodStatus({ namespace, name: pod, body: current });
  }

  async succeed(namespace: string, name: string, pod?: string): Promise<void> {
    if (pod) await this.setPodPhase(namespace, pod, 'Succeeded');
    await this.updateJobStatus(namespace, name, (j) => {
      const at = nowIso();
      j.status = {
        ...j.status,
        active: 0,
        ready: 0,
        succeeded: 1,
        startTime: j.status?.startTime ?? at,
        completionTime: at,
        conditions: [
          {
            type: 'SuccessCriteriaMet',
            status: 'True',
            reason: 'CompletionsReached',
            lastTransitionTime: at,
            lastProbeTime: at,
          },
          {
            type: 'Complete',
            status: 'True',
            reason: 'CompletionsReached',
            lastTransitionTime: at,
            lastProbeTime: at,
          },
        ],
      };
    });
  }

  async fail(
    namespace: string,
    name: string,
    options: { pod?: string; terminationMessage?: string; reason?: string } = {},
  ): Promise<void> {
    if (options.pod)
      await this.setPodPhase(namespace, options.pod, 'Failed', {
        exitCode: 1,
        message: options.terminationMessage,
      });
    await this.updateJobStatus(namespace, name, (j) => {
      const at = nowIso();
      const reason = options.reason ?? 'BackoffLimitExceeded';
      j.status = {
        ...j.status,
        active: 0,
        ready: 0,
        failed: (j.status?.failed ?? 0) + 1,
        startTime: j.status?.startTime ?? at,
        conditions: [
          {
            type: 'FailureTarget',
            status: 'True',
            reason,
            message: 'Job has reached the specified backoff limit',
            lastTransitionTime: at,
            lastProbeTime: at,
          },
          {
            type: 'Failed',
            status: 'True',
            reason,
            message: 'Job has reached the specified backoff limit',
            lastTransitionTime: at,
            lastProbeTime: at,
          },
        ],
      };
    });
  }
}

// --- KServe controller ------------------------------------------------------------------

const ISVC = { group: 'serving.kserve.io', version: 'v1beta1', plural: 'inferenceservices' } as const;

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface FakeKServeOptions {
  /** The address a revision (or the split, when revision is undefined) answers on. */
  urlFor?: (isvc: InferenceService, revision?: string, tag?: 'latest' | 'prev') => string;
  /** Revisions whose storageUri matches are reported as failed (RevisionFailed). */
  failingStorageUris?: Set<string>;
}

/**
 * Plays KServe's InferenceService controller: watches every InferenceService and writes the
 * status KServe would. pause()/resume() hold reconciliation, so a test can observe a wait
 * that is still waiting.
 */
export class FakeKServeController {
  private readonly custom: CustomObjectsApi;
  private readonly revisions = new Map<
    string,
    Array<{ name: string; digest: string; storageUri?: string }>
  >();
  /** true: every namespace; a set: only those (e.g. production, while validation copies still reconcile). */
  private paused: boolean | Set<string> = false;
  private pending = new Set<string>();
  private abort?: AbortController;
  private stopped = false;
  readonly reconciled: string[] = [];

  constructor(
    private readonly admin: KubeConfig,
    private readonly options: FakeKServeOptions = {},
  ) {
    this.custom = admin.makeApiClient(CustomObjectsApi);
  }

  async start(): Promise<void> {
    let list: { items: InferenceService[]; metadata?: { resourceVersion?: string } } | undefined;
    // A freshly established CRD answers 429 until its watch cache is ready.
    for (let attempt = 0; !list; attempt++) {
      try {
        list = (await this.custom.listClusterCustomObject({ ...ISVC })) as typeof list;
      } catch (err) {
        if ((err as { code?: number }).code !== 429 || attempt > 50) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    if (!list) return;
    for (const item of list.items) await this.enqueue(item.metadata.namespace, item.metadata.name);
    void this.watchLoop(list.metadata?.resourceVersion ?? '');
  }

  private async watchLoop(resourceVersion: string): Promise<void> {
    let rv = resourceVersion;
    while (!this.stopped) {
      await new Promise<void>((resolve) => {
        void new Watch(this.admin)
          .watch(
            `/apis/${ISVC.group}/${ISVC.version}/${ISVC.plural}`,
            { resourceVersion: rv, allowWatchBookmarks: true },
            (type, obj: InferenceService & { code?: number }) => {
              if (type === 'ERROR') {
                rv = '';
                return;
              }
              if (obj?.metadata?.resourceVersion) rv = obj.metadata.resourceVersion;
              if (type === 'ADDED' || type === 'MODIFIED') {
                void this.enqueue(obj.metadata.namespace, obj.metadata.name);
              }
            },
            () => resolve(),
          )
          .then(
            (c) => {
              this.abort = c;
            },
            () => resolve(),
          );
      });
      if (!this.stopped) await new Promise((r) => setTimeout(r, 200));
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  pause(namespace?: string): void {
    this.paused = namespace === undefined ? true : new Set([namespace]);
  }

  async resume(): Promise<void> {
    this.paused = false;
    const keys = [...this.pending];
    this.pending.clear();
    for (const key of keys) {
      const [namespace, name] = key.split('/') as [string, string];
      await this.enqueue(namespace, name);
    }
  }

  private queue: Promise<void> = Promise.resolve();

  private enqueue(namespace: string, name: string): Promise<void> {
    const key = `${namespace}/${name}`;
    if (this.paused === true || (this.paused instanceof Set && this.paused.has(namespace))) {
      this.pending.add(key);
      return Promise.resolve();
    }
    this.queue = this.queue.then(() => this.reconcile(namespace, name)).catch(() => undefined);
    return this.queue;
  }

  private async reconcile(namespace: string, name: string): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      let isvc: InferenceService;
      try {
        isvc = (await this.custom.getNamespacedCustomObject({
          ...ISVC,
          namespace,
          name,
        })) as InferenceService;
      } catch {
        return;
      }
      const generation = isvc.metadata.generation ?? 0;
      if (isvc.status?.observedGeneration === generation) return;
      isvc.status = this.desiredStatus(isvc);
      try {
        await this.custom.replaceNamespacedCustomObjectStatus({ ...ISVC, namespace, name, body: isvc });
        this.reconciled.push(`${namespace}/${name}@${generation}`);
        return;
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err;
      }
    }
  }

  private url(isvc: InferenceService, revision?: string, tag?: 'latest' | 'prev'): string {
    if (this.options.urlFor) return this.options.urlFor(isvc, revision, tag);
    const host = `${isvc.metadata.name}.${isvc.metadata.namespace}.example.com`;
    return `http://${tag ? `${tag}-` : ''}${host}`;
  }

  /** KServe's status for the spec as it is now. */
  private desiredStatus(isvc: InferenceService): NonNullable<InferenceService['status']> {
    const mode = isvc.metadata.annotations?.['serving.kserve.io/deploymentMode'] ?? 'Serverless';
    const generation = isvc.metadata.generation ?? 0;
    const ready = [
      { type: 'IngressReady', status: 'True' },
      { type: 'PredictorReady', status: 'True' },
      { type: 'Ready', status: 'True' },
    ];
    if (mode === 'Standard') {
      const canaries = isvc.spec.canary ?? [];
      const failing = [isvc.spec.predictor, ...canaries.map((c) => c.predictor)].some(
        (p) => p?.model.storageUri && this.options.failingStorageUris?.has(p.model.storageUri),
      );
      const conditions: Array<{ type: string; status: string; reason?: string; message?: string }> = failing
        ? [{ type: 'Ready', status: 'False', reason: 'RevisionFailed', message: 'container exited' }]
        : [...ready];
      if (canaries.length > 0 && !failing)
        conditions.push({ type: 'CanaryPredictorReady', status: 'True', reason: 'AllCanariesReady' });
      return {
        observedGeneration: generation,
        url: this.url(isvc),
        conditions,
        components: { predictor: { url: this.url(isvc) } },
        // One status per spec.canary[] entry (a canary, and a baseline beside it when asked).
        ...(canaries.length > 0
          ? {
              canaryStatuses: canaries.map((c) => ({
                name: c.predictor.name,
                ready: !failing,
                trafficPercent: c.trafficPercent,
              })),
            }
          : {}),
      };
    }

    // Serverless (Knative) and RawDeployment: one revision per distinct predictor spec.
    const key = `${isvc.metadata.namespace}/${isvc.metadata.name}`;
    const { canaryTrafficPercent, ...served } = isvc.spec.predictor;
    const digest = canonical(served);
    const revisions = this.revisions.get(key) ?? [];
    let latest = revisions[revisions.length - 1];
    if (!latest || latest.digest !== digest) {
      latest = {
        name: `${isvc.metadata.name}-predictor-${String(revisions.length + 1).padStart(5, '0')}`,
        digest,
        storageUri: served.model.storageUri,
      };
      revisions.push(latest);
      this.revisions.set(key, revisions);
    }
    const previous = isvc.status?.components?.predictor ?? {};
    if (latest.storageUri && this.options.failingStorageUris?.has(latest.storageUri)) {
      return {
        ...isvc.status,
        observedGeneration: generation,
        conditions: [
          {
            type: 'Ready',
            status: 'False',
            reason: 'RevisionFailed',
            message: `Revision "${latest.name}" failed`,
          },
        ],
        components: { predictor: { ...previous, latestCreatedRevision: latest.name } },
      };
    }
    // KServe's rule (ksvc_reconciler.go): split between the latest revision and the last
    // rolled-out one; a 100 % revision becomes the rolled-out one. RawDeployment releases
    // before v0.20 ignore canaryTrafficPercent entirely.
    const canary = mode === 'Serverless' ? canaryTrafficPercent : undefined;
    let lastRolledout = previous.latestRolledoutRevision;
    if (lastRolledout === latest.name && canary !== undefined && canary < 100) {
      lastRolledout = previous.previousRolledoutRevision;
    }
    const component = { ...previous, latestCreatedRevision: latest.name, latestReadyRevision: latest.name };
    let traffic: NonNullable<typeof component.traffic>;
    if (canary !== undefined && lastRolledout) {
      traffic = [
        {
          tag: 'latest',
          revisionName: latest.name,
          latestRevision: true,
          percent: canary,
          url: this.url(isvc, latest.name, 'latest'),
        },
      ];
      if (canary < 100) {
        traffic.push({
          tag: 'prev',
          revisionName: lastRolledout,
          latestRevision: false,
          percent: 100 - canary,
          url: this.url(isvc, lastRolledout, 'prev'),
        });
      }
    } else {
      traffic = [{ revisionName: latest.name, latestRevision: true, percent: 100 }];
    }
    if (
      traffic.length === 1 &&
      traffic[0]?.percent === 100 &&
      component.latestRolledoutRevision !== latest.name
    ) {
      component.previousRolledoutRevision = component.latestRolledoutRevision;
      component.latestRolledoutRevision = latest.name;
    }
    component.traffic = traffic;
    component.url = this.url(isvc);
    return {
      observedGeneration: generation,
      url: this.url(isvc),
      conditions: [
        ...ready,
        { type: 'RoutesReady', status: 'True' },
        { type: 'LatestDeploymentReady', status: 'True' },
      ],
      components: { predictor: component },
    };
  }
}

// --- Job runner ---------------------------------------------------------------------------

export interface JobRunnerOptions {
  namespace: string;
  /** The argv (without the Job's args) that plays the container of a Job of this template. */
  command: (template: string) => string[];
  /** The Job's container args as the stand-in should get them. */
  args?: (template: string, args: string[]) => string[];
  /** Which container env vars the stand-in gets (resolved from values and Secret refs). */
  envFilter?: (name: string) => boolean;
  extraEnv?: Record<string, string>;
  kubelet?: FakeKubelet;
}

export interface JobRun {
  name: string;
  template: string;
  args: string[];
  exitCode: number | null;
}

/**
 * Plays the Job controller and the kubelet for every Job created in a namespace: creates
 * the pod, runs the container's work as a local process (env resolved from the Job,
 * including Secret references, as the kubelet would), serves its output as the pod log,
 * and writes pod and Job status from the exit code.
 */
export class JobRunner {
  private readonly actions: JobControllerActions;
  private readonly core: CoreV1Api;
  private readonly seen = new Set<string>();
  private stopped = false;
  private abort?: AbortController;
  readonly runs: JobRun[] = [];

  constructor(
    private readonly admin: KubeConfig,
    private readonly options: JobRunnerOptions,
  ) {
    this.actions = new JobControllerActions(admin);
    this.core = admin.makeApiClient(CoreV1Api);
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async loop(): Promise<void> {
    const batch = this.admin.makeApiClient(BatchV1Api);
    while (!this.stopped) {
      const list = await batch
        .listNamespacedJob({ namespace: this.options.namespace })
        .catch(() => undefined);
      for (const job of list?.items ?? []) this.consider(job);
      await new Promise<void>((resolve) => {
        void new Watch(this.admin)
          .watch(
            `/apis/batch/v1/namespaces/${this.options.namespace}/jobs`,
            { resourceVersion: list?.metadata?.resourceVersion, allowWatchBookmarks: true },
            (type, job: V1Job) => {
              if (type === 'ADDED') this.consider(job);
            },
            () => resolve(),
          )
          .then(
            (c) => {
              this.abort = c;
            },
            () => resolve(),
          );
      });
      if (!this.stopped) await new Promise((r) => setTimeout(r, 200));
    }
  }

  private consider(job: V1Job): void {
    const uid = job.metadata?.uid;
    if (!uid || this.seen.has(uid) || job.status?.conditions?.length) return;
    this.seen.add(uid);
    void this.run(job).catch((err) => {
      process.stderr.write(`JobRunner: ${job.metadata?.name}: ${(err as Error).stack}\n`);
    });
  }

  private async resolveEnv(job: V1Job): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    const filter = this.options.envFilter ?? (() => true);
    for (const entry of job.spec?.template.spec?.containers[0]?.env ?? []) {
      if (!filter(entry.name)) continue;
      if (entry.value !== undefined) env[entry.name] = entry.value;
      const ref = entry.valueFrom?.secretKeyRef;
      if (ref) {
        const secret = await this.core.readNamespacedSecret({
          namespace: this.options.namespace,
          name: ref.name as string,
        });
        const data = secret.data?.[ref.key];
        if (data === undefined) throw new Error(`Secret ${ref.name} has no key ${ref.key}`);
        env[entry.name] = Buffer.from(data, 'base64').toString('utf8');
      }
    }
    return env;
  }

  private async run(job: V1Job): Promise<void> {
    const { startProcess } = await import('./processes.js');
    const name = job.metadata?.name as string;
    const namespace = this.options.namespace;
    const template = job.metadata?.labels?.['qwenops.io/job-template'] ?? 'unknown';
    const rawArgs = job.spec?.template.spec?.containers[0]?.args ?? [];
    const args = this.options.args ? this.options.args(template, rawArgs) : rawArgs;
    const env = { ...(await this.resolveEnv(job)), ...this.options.extraEnv };
    const pod = await this.actions.startPod(namespace, name);
    const podName = pod.metadata?.name as string;
    const proc = startProcess(`job-${name}`, [...this.options.command(template), ...args], { env });
    const exitCode = await proc.exited;
    const output = proc.output();
    this.options.kubelet?.logs.set(
      `${namespace}/${podName}/${pod.spec?.containers[0]?.name ?? 'job'}`,
      output,
    );
    this.runs.push({ name, template, args, exitCode });
    if (exitCode === 0) {
      await this.actions.succeed(namespace, name, podName);
    } else {
      await this.actions.fail(namespace, name, {
        pod: podName,
        terminationMessage: output.split('\n').slice(-20).join('\n'),
      });
    }
  }
}
