import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { GpuJobSpec } from '../../../src/cluster/port.js';
import { isAlive } from '../../../src/cluster/sandbox/process-group.js';
import type { ServingRef, ServingRevisionSpec } from '../../../src/domain/serving-revision.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { startProcess, stopAll } from '../../support/processes.js';
import { startSandboxCluster, type TestSandboxCluster } from '../../support/sandbox.js';

const ns = 'qwenops';
const ref: ServingRef = { namespace: 'llm-prod', name: 'durable', deploymentMode: 'Serverless' };

const job: GpuJobSpec = {
  namespace: ns,
  name: 'download-durable',
  template: 'download',
  workflowId: 'wf-durable',
  stage: 'download',
  args: ['--model', 'qwen/Qwen-7B-Chat', '--output-uri', 'PLACEHOLDER', '--result-uri', 'PLACEHOLDER'],
  env: { QWENOPS_SIM_JOB_SECONDS: '3' },
  secretEnv: [],
  gpus: 0,
  activeDeadlineSeconds: 120,
  backoffLimit: 0,
  ttlSecondsAfterFinished: 3600,
  labels: {},
};

const revision: ServingRevisionSpec = {
  storageUri: 'file:///models/durable',
  image: 'vllm/vllm-openai:v0.11.0',
  servedModelName: 'qwen-7b-chat',
  vllm: {
    trustRemoteCode: true,
    maxModelLen: 8192,
    gpuMemoryUtilization: 0.92,
    enablePrefixCaching: true,
    dtype: 'auto',
    tensorParallelSize: 1,
    extraArgs: [],
  },
  env: {},
  minReplicas: 1,
  maxReplicas: 1,
  gpusPerReplica: 1,
  labels: {},
};

async function until(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function chat(url: string): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: '还在吗' }], max_tokens: 2 }),
  });
}

/** Gone: no such process, or a zombie nobody reaped yet (an orphan of a SIGKILLed daemon). */
function gone(pid: number): boolean {
  if (!isAlive(pid)) return true;
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

let cluster: TestSandboxCluster | undefined;
afterAll(async () => {
  await stopAll();
  await cluster?.stop();
  // The restarted daemon was handed the state dir, so it leaves it: remove it here.
  if (cluster) await rm(cluster.stateDir, { recursive: true, force: true });
});

describe('sandbox durability', () => {
  it('keeps Jobs running and serving up when the process that created them is SIGKILLed', async () => {
    cluster = await startSandboxCluster({ extraEnv: { QWENOPS_SIM_TTFT_MS: '2', QWENOPS_SIM_TPOT_MS: '1' } });
    const storeUri = (key: string) => `file://${cluster?.storeDir}/${key}`;
    const spec = {
      ...job,
      args: [
        '--model',
        'qwen/Qwen-7B-Chat',
        '--output-uri',
        storeUri('models/durable'),
        '--result-uri',
        storeUri('results/durable.json'),
      ],
    };
    const env = {
      SANDBOX_URL: cluster.url,
      SANDBOX_TOKEN_FILE: cluster.tokenFile,
      JOB_SPEC: JSON.stringify(spec),
      SERVICE_REF: JSON.stringify(ref),
      REVISION_SPEC: JSON.stringify(revision),
    };
    const worker = startProcess(
      'fake-worker',
      nodeEntrypoint('test/integration/sandbox/fixtures/create-and-hang'),
      { env },
    );
    await until('the fake worker to create its objects', () => worker.output().includes('"event":"created"'));
    await worker.kill('SIGKILL');

    const done = await cluster.backend.waitForJob(ns, job.name, { deadline: Date.now() + 60_000 });
    expect(done.phase).toBe('Succeeded');
    const status = await cluster.backend.waitForTraffic(ref, undefined, { deadline: Date.now() + 60_000 });
    expect((await chat(status.url as string)).status).toBe(200);

    // The retried activity of a new worker adopts both: no second launch, no second revision.
    const again = startProcess(
      'fake-worker-2',
      nodeEntrypoint('test/integration/sandbox/fixtures/create-and-hang'),
      { env },
    );
    await until('the second worker to finish creating', () => again.output().includes('"event":"created"'));
    expect(again.output()).toContain('"adopted":true');
    await again.kill('SIGKILL');
    const views = await cluster.jobs();
    expect(views.find((j) => j.spec.name === job.name)?.launches).toBe(1);
    expect((await cluster.backend.getService(ref))?.latestCreatedRevision).toBe('durable-predictor-00001');
  });

  it('stops every child on SIGTERM, and after a restart brings serving back and reports lost Jobs', async () => {
    const first = cluster as TestSandboxCluster;
    await first.backend.createJob({
      ...job,
      name: 'long-running',
      env: { QWENOPS_SIM_JOB_SECONDS: '120' },
      args: [
        '--model',
        'a/b',
        '--output-uri',
        `file://${first.storeDir}/models/long`,
        '--result-uri',
        `file://${first.storeDir}/results/long.json`,
      ],
    });
    await until('the long job to run', async () =>
      (await first.jobs()).some((j) => j.spec.name === 'long-running' && j.pid),
    );
    const jobPid = (await first.jobs()).find((j) => j.spec.name === 'long-running')?.pid as number;
    const revisionPid = (await first.service(ref.namespace, ref.name))?.revisions[0]?.pid as number;
    const proxyUrl = (await first.backend.getService(ref))?.url as string;
    expect(isAlive(jobPid) && isAlive(revisionPid)).toBe(true);

    await first.stop({ keepState: true });
    expect(first.process.child.exitCode).toBe(0);
    expect(isAlive(jobPid)).toBe(false);
    expect(isAlive(revisionPid)).toBe(false);

    cluster = await startSandboxCluster({
      stateDir: first.stateDir,
      storeDir: first.storeDir,
      extraEnv: { QWENOPS_SIM_TTFT_MS: '2' },
    });
    const lost = await cluster.backend.getJob(ns, 'long-running');
    expect(lost?.phase).toBe('Failed');
    expect(lost?.message).toMatch(/daemon stopped/);
    expect((await cluster.backend.getJob(ns, job.name))?.phase).toBe('Succeeded');
    const back = await cluster.backend.waitForTraffic(ref, undefined, { deadline: Date.now() + 60_000 });
    expect(back.latestRolledoutRevision).toBe('durable-predictor-00001');
    // Same proxy port as before when it is still free: clients keep their URL.
    expect(back.url).toBe(proxyUrl);
    expect((await chat(back.url as string)).status).toBe(200);
  });

  it('relaunches a Job whose attempt a daemon crash lost while backoffLimit leaves one, fails it when none is left', async () => {
    const first = await startSandboxCluster();
    let second: TestSandboxCluster | undefined;
    try {
      const spec = (name: string, backoffLimit: number): GpuJobSpec => ({
        ...job,
        name,
        backoffLimit,
        // Long enough to be running when the daemon dies, short enough for the retry to finish.
        env: { QWENOPS_SIM_JOB_SECONDS: '6' },
        args: [
          '--model',
          'qwen/Qwen-7B-Chat',
          '--output-uri',
          `file://${first.storeDir}/models/${name}`,
          '--result-uri',
          `file://${first.storeDir}/results/${name}.json`,
        ],
      });
      await first.backend.createJob(spec('lost-retried', 1));
      await first.backend.createJob(spec('lost-exhausted', 0));
      await until('both Jobs to run', async () => (await first.jobs()).filter((j) => j.pid).length === 2);
      const oldPids = (await first.jobs()).map((j) => j.pid as number);

      // The daemon crashes (its Job process groups outlive it), then starts again on its state.
      process.kill(first.process.child.pid as number, 'SIGKILL');
      await first.process.exited;
      second = await startSandboxCluster({ stateDir: first.stateDir, storeDir: first.storeDir });
      const restarted = second;
      // The orphaned attempts were killed, not left running beside their relaunch.
      await until('the lost attempts to be killed', () => oldPids.every(gone), 10_000);

      const exhausted = await restarted.backend.getJob(ns, 'lost-exhausted');
      expect(exhausted?.phase).toBe('Failed');
      expect(exhausted?.message).toMatch(
        /^BackoffLimitExceeded: attempt 1 was lost: the sandbox daemon restarted while it ran; no attempt left/,
      );

      const relaunched = await restarted.backend.getJob(ns, 'lost-retried');
      expect(relaunched?.phase).toBe('Running');
      expect(relaunched?.attempts).toBe(2);
      expect(relaunched?.message).toMatch(/attempt 2\/2 running \(attempt 1 was lost/);
      const done = await restarted.backend.waitForJob(ns, 'lost-retried', { deadline: Date.now() + 60_000 });
      expect(done.phase).toBe('Succeeded');
      expect(done.attempts).toBe(2);
      const view = (await restarted.jobs()).find((j) => j.spec.name === 'lost-retried');
      expect(view?.launches).toBe(2);
    } finally {
      await second?.stop();
      await first.stop(); // removes the state dir it made
    }
  });
});
