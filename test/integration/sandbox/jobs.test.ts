import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterError, type GpuJobSpec } from '../../../src/cluster/port.js';
import { isAlive } from '../../../src/cluster/sandbox/process-group.js';
import { writeSyntheticModel } from '../../../src/cluster/sandbox/simulated-jobs/synthetic-model.js';
import { evaluationResultSchema, quantizeResultSchema } from '../../../src/domain/job-results.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { startSandboxCluster, type TestSandboxCluster } from '../../support/sandbox.js';

let cluster: TestSandboxCluster;
let store: FsArtifactStore;
const ns = 'qwenops';

function spec(name: string, overrides: Partial<GpuJobSpec> = {}): GpuJobSpec {
  return {
    namespace: ns,
    name,
    template: 'quantize',
    workflowId: 'wf-test',
    stage: 'quantize',
    args: [],
    env: {},
    secretEnv: [],
    gpus: 1,
    gpuType: 'A10',
    activeDeadlineSeconds: 120,
    backoffLimit: 0,
    ttlSecondsAfterFinished: 3600,
    labels: {},
    ...overrides,
  };
}

const wait = (name: string) => cluster.backend.waitForJob(ns, name, { deadline: Date.now() + 90_000 });

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  cluster = await startSandboxCluster();
  store = new FsArtifactStore(cluster.storeDir);
  await writeSyntheticModel(store, 'models/qwen/Qwen-7B-Chat/master', {
    model: 'qwen/Qwen-7B-Chat',
    revision: 'master',
    weightBytes: 2 * 1024 * 1024,
    shards: 2,
  });
});
afterAll(async () => {
  await cluster?.stop();
});

describe('sandbox Jobs', () => {
  it('runs a simulated quantize Job: progress, AWQ layout, manifest, result valid against the schema', async () => {
    const progress: string[] = [];
    const { status, adopted } = await cluster.backend.createJob(
      spec('quantize-ok', {
        args: [
          '--input-uri',
          store.uri('models/qwen/Qwen-7B-Chat/master'),
          '--output-uri',
          store.uri('models/qwen/Qwen-7B-Chat-AWQ'),
          '--result-uri',
          store.uri('results/quantize-ok.json'),
          '--bits',
          '4',
          '--group-size',
          '128',
          '--zero-point',
          'true',
          '--kernel',
          'GEMM',
        ],
        env: { QWENOPS_SIM_JOB_SECONDS: '2' },
      }),
    );
    expect(adopted).toBe(false);
    expect(status.phase).toBe('Running');
    const done = await cluster.backend.waitForJob(ns, 'quantize-ok', {
      deadline: Date.now() + 60_000,
      onProgress: (m) => progress.push(m),
    });
    expect(done.phase).toBe('Succeeded');
    expect(done.attempts).toBe(1);
    expect(progress.some((m) => /\d+%/.test(m))).toBe(true);
    expect(done.progress?.percent).toBe(100);

    const result = quantizeResultSchema.parse(await store.getJson('results/quantize-ok.json'));
    expect(result).toMatchObject({
      simulated: true,
      method: 'awq',
      bits: 4,
      groupSize: 128,
      zeroPoint: true,
    });
    const weights = result.files
      .filter((f) => f.path.endsWith('.safetensors'))
      .reduce((s, f) => s + f.size, 0);
    expect(weights / (2 * 1024 * 1024)).toBeGreaterThan(0.25);
    expect(weights / (2 * 1024 * 1024)).toBeLessThan(0.35);
    const config = await store.getJson<{ quantization_config: Record<string, unknown> }>(
      'models/qwen/Qwen-7B-Chat-AWQ/config.json',
    );
    expect(config.quantization_config).toMatchObject({
      quant_method: 'awq',
      bits: 4,
      group_size: 128,
      zero_point: true,
      version: 'gemm',
    });
    const manifest = await store.readManifest('models/qwen/Qwen-7B-Chat-AWQ');
    expect(manifest?.files.map((f) => f.path)).toEqual(
      expect.arrayContaining(['modeling_qwen.py', 'qwen.tiktoken', 'config.json']),
    );
    expect(await cluster.backend.jobLogs(ns, 'quantize-ok', 50)).toContain('SIMULATION');

    // Evaluate the AWQ candidate against its baseline (the simulated A10 numbers).
    await cluster.backend.createJob(
      spec('evaluate-ok', {
        template: 'evaluate',
        args: [
          '--baseline-uri',
          store.uri('models/qwen/Qwen-7B-Chat/master'),
          '--candidate-uri',
          store.uri('models/qwen/Qwen-7B-Chat-AWQ'),
          '--result-uri',
          store.uri('results/evaluate-ok.json'),
          '--samples',
          '50',
          '--gpu-type',
          'A10',
        ],
      }),
    );
    expect((await wait('evaluate-ok')).phase).toBe('Succeeded');
    const evaluation = evaluationResultSchema.parse(await store.getJson('results/evaluate-ok.json'));
    expect(evaluation.simulated).toBe(true);
    expect(evaluation.baseline.memoryGb).toBeCloseTo(14.2, 0);
    expect(evaluation.candidate.memoryGb).toBeCloseTo(9.6, 0);
    expect(evaluation.candidate.tokensPerSecond / evaluation.baseline.tokensPerSecond).toBeGreaterThan(1.8);
    const drop = (1 - evaluation.candidate.qualityScore / evaluation.baseline.qualityScore) * 100;
    expect(drop).toBeGreaterThanOrEqual(0.3);
    expect(drop).toBeLessThanOrEqual(0.6);
  });

  it('downloads from a local mirror dir, and evaluate honours QWENOPS_SIM_QUALITY_DROP_PCT', async () => {
    const mirror = path.join(cluster.stateDir, 'mirror');
    await mkdir(path.join(mirror, 'sub'), { recursive: true });
    await writeFile(path.join(mirror, 'config.json'), '{"model_type":"qwen"}');
    await writeFile(path.join(mirror, 'sub', 'model.safetensors'), Buffer.alloc(4096, 1));
    await cluster.backend.createJob(
      spec('download-mirror', {
        template: 'download',
        args: [
          '--model',
          'qwen/Qwen-1.8B-Chat',
          '--source-dir',
          mirror,
          '--output-uri',
          store.uri('models/mirror'),
          '--result-uri',
          store.uri('results/mirror.json'),
        ],
      }),
    );
    expect((await wait('download-mirror')).phase).toBe('Succeeded');
    const manifest = await store.readManifest('models/mirror');
    expect(manifest?.files.map((f) => f.path).sort()).toEqual(['config.json', 'sub/model.safetensors']);
    expect(manifest?.metadata).toMatchObject({ model: 'qwen/Qwen-1.8B-Chat', simulated: true });
    expect(await store.getJson('results/mirror.json')).toMatchObject({
      kind: 'download',
      simulated: true,
      totalBytes: manifest?.totalBytes,
    });

    await cluster.backend.createJob(
      spec('evaluate-forced', {
        template: 'evaluate',
        args: [
          '--baseline-uri',
          store.uri('models/mirror'),
          '--candidate-uri',
          store.uri('models/mirror'),
          '--result-uri',
          store.uri('results/forced.json'),
          '--gpu-type',
          'A100',
        ],
        env: { QWENOPS_SIM_QUALITY_DROP_PCT: '2.5' },
      }),
    );
    expect((await wait('evaluate-forced')).phase).toBe('Succeeded');
    const evaluation = evaluationResultSchema.parse(await store.getJson('results/forced.json'));
    expect((1 - evaluation.candidate.qualityScore / evaluation.baseline.qualityScore) * 100).toBeCloseTo(
      2.5,
      5,
    );
    // Not quantized: same memory class as the baseline; a 1.8B model on an A100 is faster than 7B on an A10.
    expect(evaluation.candidate.memoryGb / evaluation.baseline.memoryGb).toBeCloseTo(1, 1);
    expect(evaluation.baseline.tokensPerSecond).toBeGreaterThan(420 * 1.5);
  });

  it('adopts a second create of the same name: launches stays 1', async () => {
    const first = await cluster.backend.createJob(
      spec('adopt-me', {
        template: 'download',
        args: [
          '--model',
          'qwen/Qwen-1.8B-Chat',
          '--output-uri',
          store.uri('models/adopt'),
          '--result-uri',
          store.uri('results/adopt.json'),
        ],
      }),
    );
    const second = await cluster.backend.createJob(
      spec('adopt-me', { template: 'download', args: ['--model', 'other/ignored'] }),
    );
    expect(first.adopted).toBe(false);
    expect(second.adopted).toBe(true);
    expect((await wait('adopt-me')).phase).toBe('Succeeded');
    const third = await cluster.backend.createJob(spec('adopt-me', { template: 'download' }));
    expect(third).toMatchObject({ adopted: true, status: { phase: 'Succeeded' } });
    const view = (await cluster.jobs()).find((j) => j.spec.name === 'adopt-me');
    expect(view?.launches).toBe(1);
    expect(view?.spec.args).toContain('qwen/Qwen-1.8B-Chat');
  });

  it('fails a Job whose process fails, with the log tail in the status message', async () => {
    await cluster.backend.createJob(
      spec('fail-me', {
        template: 'evaluate',
        args: [
          '--baseline-uri',
          store.uri('models/qwen/Qwen-7B-Chat/master'),
          '--candidate-uri',
          store.uri('models/qwen/Qwen-7B-Chat/master'),
          '--result-uri',
          store.uri('results/fail.json'),
        ],
        env: { QWENOPS_SIM_JOB_FAIL: 'evaluate' },
        backoffLimit: 1,
      }),
    );
    const done = await wait('fail-me');
    expect(done.phase).toBe('Failed');
    expect(done.attempts).toBe(2);
    expect(done.message).toMatch(/^BackoffLimitExceeded: attempt 2 of 2 failed \(exit code 1\)/);
    expect(done.message).toContain('ERROR: evaluate failed: simulated failure');
    expect((await cluster.jobs()).find((j) => j.spec.name === 'fail-me')?.launches).toBe(2);
  });

  it("fails at once, without retries, a Job that exits 2 (bad input: the templates' podFailurePolicy)", async () => {
    await cluster.backend.createJob(
      spec('too-few-items', {
        template: 'evaluate',
        args: [
          '--baseline-uri',
          store.uri('models/qwen/Qwen-7B-Chat/master'),
          '--candidate-uri',
          store.uri('models/qwen/Qwen-7B-Chat/master'),
          '--samples',
          '24',
          '--min-samples',
          '200',
          '--result-uri',
          store.uri('results/too-few.json'),
        ],
        backoffLimit: 3,
      }),
    );
    const done = await wait('too-few-items');
    expect(done).toMatchObject({ phase: 'Failed', attempts: 1 });
    expect(done.message).toMatch(
      /^PodFailurePolicy: attempt 1 exited with code 2 \(bad input; not retried\)/,
    );
    expect(done.message).toContain('--samples 24 is fewer than the 200 items the quality gate needs');
    expect((await cluster.jobs()).find((j) => j.spec.name === 'too-few-items')?.launches).toBe(1);
  });

  it('retries a failed attempt within backoffLimit and succeeds', async () => {
    await cluster.backend.createJob(
      spec('retry-me', {
        template: 'download',
        args: [
          '--model',
          'qwen/Qwen-7B-Chat',
          '--output-uri',
          store.uri('models/retry'),
          '--result-uri',
          store.uri('results/retry.json'),
        ],
        env: { QWENOPS_SIM_JOB_FAIL: '1', QWENOPS_SIM_JOB_FAIL_ATTEMPTS: '1' },
        backoffLimit: 2,
      }),
    );
    const done = await wait('retry-me');
    expect(done).toMatchObject({ phase: 'Succeeded', attempts: 2 });
  });

  it('refuses bad input naming the field, and a secretEnv reference the sandbox does not have', async () => {
    const bad = await cluster.backend
      .createJob(spec('Bad_Name', { activeDeadlineSeconds: 0 }))
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ClusterError);
    expect(bad).toMatchObject({ code: 'Invalid', retryable: false });
    expect((bad as Error).message).toMatch(/name: must be a DNS-1123 label/);
    expect((bad as Error).message).toMatch(/activeDeadlineSeconds: must be > 0/);
    const secret = await cluster.backend
      .createJob(
        // A name the env allowlist admits (secretEnv names are checked like env names).
        spec('needs-secret', {
          secretEnv: [{ name: 'QWENOPS_HUB_TOKEN', secretName: 'modelscope', key: 'token' }],
        }),
      )
      .catch((e: unknown) => e);
    expect(secret).toMatchObject({ code: 'Invalid', retryable: false });
    expect((secret as Error).message).toMatch(/QWENOPS_HUB_TOKEN <- secret modelscope key token/);
    expect(await cluster.backend.getJob(ns, 'needs-secret')).toBeUndefined();
  });

  it('kills the process group on delete', async () => {
    await cluster.backend.createJob(
      spec('delete-me', {
        template: 'download',
        args: [
          '--model',
          'a/b',
          '--output-uri',
          store.uri('models/del'),
          '--result-uri',
          store.uri('results/del.json'),
        ],
        env: { QWENOPS_SIM_JOB_SECONDS: '60' },
      }),
    );
    const pid = await until(
      'a running pid',
      async () => (await cluster.jobs()).find((j) => j.spec.name === 'delete-me')?.pid,
    );
    expect(isAlive(pid)).toBe(true);
    expect(await cluster.backend.deleteJob(ns, 'delete-me')).toBe(true);
    await until('the job process to be gone', async () => !isAlive(pid));
    expect(await cluster.backend.getJob(ns, 'delete-me')).toBeUndefined();
    expect(await cluster.backend.deleteJob(ns, 'delete-me')).toBe(false);
  });

  it('fails a Job that runs past activeDeadlineSeconds with DeadlineExceeded, and kills it', async () => {
    await cluster.backend.createJob(
      spec('too-slow', {
        template: 'download',
        args: [
          '--model',
          'a/b',
          '--output-uri',
          store.uri('models/slow'),
          '--result-uri',
          store.uri('results/slow.json'),
        ],
        env: { QWENOPS_SIM_JOB_SECONDS: '60' },
        activeDeadlineSeconds: 2,
        backoffLimit: 3,
      }),
    );
    const pid = await until(
      'a running pid',
      async () => (await cluster.jobs()).find((j) => j.spec.name === 'too-slow')?.pid,
    );
    const done = await wait('too-slow');
    expect(done.phase).toBe('Failed');
    expect(done.message).toMatch(/^DeadlineExceeded/);
    expect(done.attempts).toBe(1);
    await until('the job process to be gone', async () => !isAlive(pid));
  });

  it('rejects a wait at its deadline (retryable Timeout) and on abort (Aborted), leaving the Job alone', async () => {
    await cluster.backend.createJob(
      spec('waited', {
        template: 'download',
        args: [
          '--model',
          'a/b',
          '--output-uri',
          store.uri('models/w'),
          '--result-uri',
          store.uri('results/w.json'),
        ],
        env: { QWENOPS_SIM_JOB_SECONDS: '30' },
      }),
    );
    const timeout = await cluster.backend
      .waitForJob(ns, 'waited', { deadline: Date.now() + 300 })
      .catch((e: unknown) => e);
    expect(timeout).toMatchObject({ code: 'Timeout', retryable: true });
    const controller = new AbortController();
    const pending = cluster.backend.waitForJob(ns, 'waited', {
      deadline: Date.now() + 60_000,
      signal: controller.signal,
    });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'Aborted', retryable: false });
    expect((await cluster.backend.getJob(ns, 'waited'))?.phase).toBe('Running');
    await cluster.backend.deleteJob(ns, 'waited');
  });
});
