import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BatchV1Api, CoreV1Api, type V1Job } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreAuditLog } from '../../../src/audit/audit-log.js';
import { type KubernetesBackend, watchUntil } from '../../../src/cluster/kubernetes/index.js';
import { ClusterError, type GpuJobSpec } from '../../../src/cluster/port.js';
import { quantizeResultSchema } from '../../../src/domain/job-results.js';
import { GpuJobFailedError, GpuJobService } from '../../../src/services/gpu-jobs.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { type FakeKubelet, JobControllerActions, startFakeKubelet } from '../../support/kube-controllers.js';
import { JOB_NAMESPACE, type K8sTestEnvironment, startK8sEnvironment } from './environment.js';

// GPU Jobs against a real kube-apiserver, with the backend running as the worker's
// ServiceAccount and the test playing the Job controller and the kubelet.

let env: K8sTestEnvironment;
let backend: KubernetesBackend;
let controller: JobControllerActions;
let kubelet: FakeKubelet;
let batch: BatchV1Api;

function jobSpec(name: string, overrides: Partial<GpuJobSpec> = {}): GpuJobSpec {
  return {
    namespace: JOB_NAMESPACE,
    name,
    template: 'quantize',
    workflowId: 'promote-qwen/Qwen-7B-Chat-1',
    stage: 'quantize',
    args: [
      '--input-uri',
      's3://qwenops/models/in',
      '--output-uri',
      's3://qwenops/models/out',
      '--result-uri',
      's3://qwenops/runs/r.json',
    ],
    env: { QWENOPS_STORE: 'minio', QWENOPS_S3_ENDPOINT: 'http://minio:9000' },
    secretEnv: [{ name: 'QWENOPS_S3_ACCESS_KEY', secretName: 'qwenops-s3', key: 'AWS_ACCESS_KEY_ID' }],
    gpus: 1,
    gpuType: 'A10',
    activeDeadlineSeconds: 3600,
    backoffLimit: 2,
    ttlSecondsAfterFinished: 600,
    labels: { 'qwenops.io/model': 'qwen_Qwen-7B-Chat' },
    ...overrides,
  };
}

const soon = () => Date.now() + 60_000;

beforeAll(async () => {
  env = await startK8sEnvironment();
  backend = env.backend();
  controller = new JobControllerActions(env.plane.admin);
  kubelet = await startFakeKubelet(env.plane);
  batch = env.plane.admin.makeApiClient(BatchV1Api);
});

afterAll(async () => {
  await kubelet?.stop();
  await env?.stop();
});

describe('GPU Jobs on kube-apiserver', () => {
  it('creates the Job from its template and reports success through a watch', async () => {
    const spec = jobSpec('quantize-success');
    const { status, adopted } = await backend.createJob(spec);
    expect(adopted).toBe(false);
    expect(status.phase).toBe('Pending');

    // What landed in the cluster is what the template and the spec say.
    const job = await batch.readNamespacedJob({ namespace: JOB_NAMESPACE, name: spec.name });
    const pod = job.spec?.template.spec;
    const container = pod?.containers[0];
    expect(job.metadata?.labels).toMatchObject({
      'qwenops.io/workflow-id': 'promote-qwen_Qwen-7B-Chat-1',
      'qwenops.io/stage': 'quantize',
      'qwenops.io/model': 'qwen_Qwen-7B-Chat',
    });
    expect(job.spec?.template.metadata?.labels?.['qwenops.io/stage']).toBe('quantize');
    expect(job.spec).toMatchObject({
      backoffLimit: 2,
      activeDeadlineSeconds: 3600,
      ttlSecondsAfterFinished: 600,
    });
    expect(container?.command).toEqual(['python', '-m', 'qwenops_jobs.quantize']);
    expect(container?.args).toEqual(['--log-format', 'json', ...spec.args]);
    expect(container?.resources?.limits?.['nvidia.com/gpu']).toBe('1');
    expect(pod?.nodeSelector).toEqual({ 'gpu-type': 'A10' });
    expect(pod?.tolerations).toContainEqual({
      key: 'nvidia.com/gpu',
      operator: 'Exists',
      effect: 'NoSchedule',
    });
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(container?.securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(container?.env).toContainEqual({
      name: 'QWENOPS_S3_ACCESS_KEY',
      valueFrom: { secretKeyRef: { name: 'qwenops-s3', key: 'AWS_ACCESS_KEY_ID' } },
    });
    expect(container?.env).toContainEqual({ name: 'QWENOPS_S3_ENDPOINT', value: 'http://minio:9000' });

    const progress: string[] = [];
    const waiting = backend.waitForJob(JOB_NAMESPACE, spec.name, {
      deadline: soon(),
      onProgress: (m) => progress.push(m),
    });
    // The pod is created in a namespace enforcing the restricted Pod Security profile:
    // the template must pass it.
    const started = await controller.startPod(JOB_NAMESPACE, spec.name);
    await expect.poll(() => progress.some((m) => m.startsWith('Running'))).toBe(true);
    await controller.succeed(JOB_NAMESPACE, spec.name, started.metadata?.name);
    const final = await waiting;
    expect(final.phase).toBe('Succeeded');
    expect(final.attempts).toBe(1);
    expect(final.startedAt).toBeDefined();
    expect(final.finishedAt).toBeDefined();
    expect((await backend.getJob(JOB_NAMESPACE, spec.name))?.phase).toBe('Succeeded');
  });

  it("reports a failure with the pod's last log lines, through the pod log API", async () => {
    const spec = jobSpec('quantize-failure', { stage: 'quantize-f' });
    await backend.createJob(spec);
    const pod = await controller.startPod(JOB_NAMESPACE, spec.name);
    const podName = pod.metadata?.name as string;
    const lines = Array.from({ length: 50 }, (_, i) => `step ${i}`);
    lines.push('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB');
    kubelet.logs.set(`${JOB_NAMESPACE}/${podName}/job`, `${lines.join('\n')}\n`);
    const waiting = backend.waitForJob(JOB_NAMESPACE, spec.name, { deadline: soon() });
    await controller.fail(JOB_NAMESPACE, spec.name, {
      pod: podName,
      terminationMessage: 'CUDA out of memory',
    });
    const final = await waiting;
    expect(final.phase).toBe('Failed');
    expect(final.message).toContain('BackoffLimitExceeded');

    const logs = await backend.jobLogs(JOB_NAMESPACE, spec.name, 5);
    expect(logs).toContain('torch.OutOfMemoryError: CUDA out of memory');
    expect(logs).toContain('step 49');
    expect(logs).not.toContain('step 45');
    // The apiserver asked the node's kubelet, with the tail length.
    expect(kubelet.requests).toContainEqual(`/containerLogs/${JOB_NAMESPACE}/${podName}/job?tailLines=5`);
  });

  it('falls back to the termination message when the kubelet has no log', async () => {
    const spec = jobSpec('quantize-nolog', { stage: 'quantize-n' });
    await backend.createJob(spec);
    const pod = await controller.startPod(JOB_NAMESPACE, spec.name);
    await controller.fail(JOB_NAMESPACE, spec.name, {
      pod: pod.metadata?.name,
      terminationMessage: 'loading weights\nValueError: group size 128 does not divide 4000',
    });
    const logs = await backend.jobLogs(JOB_NAMESPACE, spec.name, 10);
    expect(logs).toContain('termination message');
    expect(logs).toContain('ValueError: group size 128 does not divide 4000');
  });

  it('puts the log lines into the error the GPU Job service raises', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'qwenops-k8s-store-'));
    try {
      const store = new FsArtifactStore(root);
      const service = new GpuJobService(backend, store, new StoreAuditLog(store), {
        namespace: JOB_NAMESPACE,
        storeAccess: { env: {}, secretEnv: [] },
      });
      const name = 'quantize-service-fail';
      const running = service.run({
        workflowId: 'wf-service',
        stage: 'quantize',
        jobName: name,
        template: 'quantize',
        args: ['--input-uri', 'file:///in'],
        gpuType: 'A10',
        timeoutSeconds: 60,
        actor: 'test',
        resultSchema: quantizeResultSchema,
      });
      await expect.poll(() => backend.getJob(JOB_NAMESPACE, name).then((s) => s?.phase)).toBe('Pending');
      const pod = await controller.startPod(JOB_NAMESPACE, name);
      kubelet.logs.set(`${JOB_NAMESPACE}/${pod.metadata?.name}/job`, 'loading\nRuntimeError: NCCL timeout\n');
      await controller.fail(JOB_NAMESPACE, name, { pod: pod.metadata?.name });
      const error = await running.then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(GpuJobFailedError);
      expect((error as Error).message).toContain('RuntimeError: NCCL timeout');
      expect((error as Error).message).toContain('BackoffLimitExceeded');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('adopts the Job on a retried create instead of making a second one', async () => {
    const spec = jobSpec('quantize-adopt', { stage: 'quantize-a' });
    const first = await backend.createJob(spec);
    const second = await backend.createJob(spec);
    // A fresh backend (another worker after a crash) adopts it too.
    const third = await env.backend().createJob(spec);
    expect([first.adopted, second.adopted, third.adopted]).toEqual([false, true, true]);
    const jobs = await batch.listNamespacedJob({
      namespace: JOB_NAMESPACE,
      labelSelector: 'qwenops.io/stage=quantize-a',
    });
    expect(jobs.items.map((j: V1Job) => j.metadata?.name)).toEqual(['quantize-adopt']);
    // The same name made for another workflow is not silently adopted.
    await expect(backend.createJob({ ...spec, workflowId: 'someone-else' })).rejects.toMatchObject({
      code: 'Conflict',
      retryable: false,
    });
  });

  it('refuses a bad spec naming the field, creating nothing', async () => {
    await expect(backend.createJob(jobSpec('Bad_Name'))).rejects.toThrow(
      /GpuJobSpec\.name: must be a DNS-1123 label/,
    );
    await expect(backend.createJob(jobSpec('bad-gpus', { gpus: -1 }))).rejects.toThrow(/GpuJobSpec\.gpus/);
    await expect(backend.getJob(JOB_NAMESPACE, 'bad-gpus')).resolves.toBeUndefined();
  });

  it('stops waiting on cancellation, and deletion removes the Job with background propagation', async () => {
    const spec = jobSpec('quantize-cancel', { stage: 'quantize-c' });
    await backend.createJob(spec);
    const pod = await controller.startPod(JOB_NAMESPACE, spec.name);
    const abort = new AbortController();
    const waiting = backend.waitForJob(JOB_NAMESPACE, spec.name, { deadline: soon(), signal: abort.signal });
    abort.abort(new Error('workflow cancelled'));
    const error = await waiting.catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ClusterError);
    expect(error).toMatchObject({ code: 'Aborted', retryable: false });
    // Aborting a wait deletes nothing (the port's contract); the caller deletes.
    expect((await backend.getJob(JOB_NAMESPACE, spec.name))?.phase).toBe('Running');

    await expect(backend.deleteJob(JOB_NAMESPACE, spec.name)).resolves.toBe(true);
    // Background propagation: the Job is gone at once and its pods are left to the garbage
    // collector (Foreground would keep the Job, with a finalizer, until the pods are gone).
    await expect(
      batch.readNamespacedJob({ namespace: JOB_NAMESPACE, name: spec.name }),
    ).rejects.toMatchObject({
      code: 404,
    });
    const core = env.plane.admin.makeApiClient(CoreV1Api);
    const leftover = await core.readNamespacedPod({
      namespace: JOB_NAMESPACE,
      name: pod.metadata?.name as string,
    });
    expect(leftover.metadata?.ownerReferences?.[0]?.name).toBe(spec.name);
    await expect(backend.deleteJob(JOB_NAMESPACE, spec.name)).resolves.toBe(false);
  });

  it('fails a wait at its deadline with a retryable Timeout naming the last state', async () => {
    const spec = jobSpec('quantize-deadline', { stage: 'quantize-d' });
    await backend.createJob(spec);
    const error = await backend
      .waitForJob(JOB_NAMESPACE, spec.name, { deadline: Date.now() + 1_500 })
      .catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'Timeout', retryable: true });
    expect((error as Error).message).toContain('Pending');
  });

  it('keeps waiting across an apiserver restart and resumes the watch', async () => {
    const spec = jobSpec('quantize-restart', { stage: 'quantize-r' });
    await backend.createJob(spec);
    const progress: string[] = [];
    const before = { ...backend.watchStats };
    const waiting = backend.waitForJob(JOB_NAMESPACE, spec.name, {
      deadline: Date.now() + 120_000,
      onProgress: (m) => progress.push(m),
    });
    await expect.poll(() => backend.watchStats.watches > before.watches).toBe(true);
    await env.plane.stopApiServer();
    await expect
      .poll(() => progress.some((m) => m.includes('apiserver unreachable')), { timeout: 20_000 })
      .toBe(true);
    await env.plane.startApiServer();
    const pod = await controller.startPod(JOB_NAMESPACE, spec.name);
    await controller.succeed(JOB_NAMESPACE, spec.name, pod.metadata?.name);
    await expect(waiting).resolves.toMatchObject({ phase: 'Succeeded' });
    expect(backend.watchStats.retries).toBeGreaterThan(before.retries);
  });

  it('lists again when the apiserver answers a watch with 410 Gone', async () => {
    const spec = jobSpec('quantize-gone', { stage: 'quantize-g' });
    await backend.createJob(spec);
    // Make the resourceVersion "1" ancient, then watch from it as a stale resumption would.
    for (let i = 0; i < 3; i++) {
      await backend.createJob(jobSpec(`quantize-filler-${i}`, { stage: `filler-${i}` }));
    }
    const stats = { lists: 0, watches: 0, gone: 0, retries: 0 };
    let firstList = true;
    const waiting = watchUntil<V1Job, string>({
      kubeConfig: env.worker,
      what: `Job ${spec.name}`,
      path: `/apis/batch/v1/namespaces/${JOB_NAMESPACE}/jobs`,
      name: spec.name,
      list: async () => {
        const list = await env.worker.makeApiClient(BatchV1Api).listNamespacedJob({
          namespace: JOB_NAMESPACE,
          fieldSelector: `metadata.name=${spec.name}`,
        });
        const resourceVersion = firstList ? '1' : (list.metadata?.resourceVersion ?? '');
        firstList = false;
        return { item: list.items[0], resourceVersion };
      },
      evaluate: (job) =>
        job?.status?.active ? { done: true, value: 'active' } : { done: false, progress: 'pending' },
      deadline: soon(),
      keepAliveMs: 1_000,
      watchTimeoutSeconds: 5,
      retry: { attempts: 3, baseDelayMs: 100, maxDelayMs: 1_000 },
      stats,
    });
    await expect.poll(() => stats.gone).toBe(1);
    await controller.startPod(JOB_NAMESPACE, spec.name);
    await expect(waiting).resolves.toBe('active');
    expect(stats.lists).toBe(2);
  });
});
