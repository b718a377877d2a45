import { readFile, stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterError, type GpuJobSpec } from '../../../src/cluster/port.js';
import { SandboxClusterBackend } from '../../../src/cluster/sandbox/backend.js';
import type { ServingRef, ServingRevisionSpec } from '../../../src/domain/serving-revision.js';
import { startSandboxCluster, type TestSandboxCluster } from '../../support/sandbox.js';

// The sandbox daemon's control API as a local attacker would try it: no token or a wrong
// one (401), specs that set loader variables (422 naming the variable), and what a serving
// process can see of the store credentials (nothing).

let cluster: TestSandboxCluster;
const ACCESS_KEY = 'AKIA-SANDBOX-TEST-ACCESS';
const SECRET_KEY = 'sandbox-test-secret-key-value';

const revision = (env: Record<string, string> = {}): ServingRevisionSpec => ({
  storageUri: 'file:///models/hardening',
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
  env,
  minReplicas: 1,
  maxReplicas: 1,
  gpusPerReplica: 1,
  labels: {},
});

const job = (name: string, overrides: Partial<GpuJobSpec> = {}): GpuJobSpec => ({
  namespace: 'qwenops',
  name,
  template: 'quantize',
  workflowId: 'wf-hardening',
  stage: 'quantize',
  args: [],
  env: {},
  secretEnv: [],
  gpus: 1,
  activeDeadlineSeconds: 60,
  backoffLimit: 0,
  ttlSecondsAfterFinished: 3600,
  labels: {},
  ...overrides,
});

beforeAll(async () => {
  // The daemon itself holds store credentials (as it would for a MinIO store).
  cluster = await startSandboxCluster({
    extraEnv: { QWENOPS_S3_ACCESS_KEY: ACCESS_KEY, QWENOPS_S3_SECRET_KEY: SECRET_KEY },
  });
});
afterAll(async () => {
  await cluster?.stop();
});

describe('sandbox control API authentication', () => {
  const jobsUrl = () => `${cluster.url}/apis/batch/v1/jobs`;

  it('writes a 0600 token file and answers 401 without a token or with a wrong one', async () => {
    expect((await stat(cluster.tokenFile)).mode & 0o777).toBe(0o600);
    const none = await fetch(jobsUrl());
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await none.text()).not.toContain(await readFile(cluster.tokenFile, 'utf8').then((t) => t.trim()));
    const wrong = await fetch(jobsUrl(), { headers: { authorization: 'Bearer not-the-token' } });
    expect(wrong.status).toBe(401);
    const basic = await fetch(jobsUrl(), { headers: { authorization: 'Basic Zm9vOmJhcg==' } });
    expect(basic.status).toBe(401);
    const mutate = await fetch(`${cluster.url}/apis/batch/v1/namespaces/qwenops/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(job('unauthenticated')),
    });
    expect(mutate.status).toBe(401);
    expect(await cluster.jobs()).toEqual([]); // nothing was created
    expect((await fetch(jobsUrl(), { headers: cluster.authHeaders() })).status).toBe(200);
  });

  it('a client without the token is refused (Forbidden, not retried); with the token file it works', async () => {
    const anonymous = new SandboxClusterBackend({ url: cluster.url });
    const err = await anonymous.getJob('qwenops', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClusterError);
    expect(err).toMatchObject({ code: 'Forbidden', retryable: false });
    expect((err as Error).message).toMatch(/401 unauthenticated/);
    await anonymous.close();
    expect(await cluster.backend.getJob('qwenops', 'x')).toBeUndefined();
  });

  it('leaves liveness, metrics and the Prometheus scrape-target list open (read-only)', async () => {
    expect((await fetch(`${cluster.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${cluster.url}/metrics`)).status).toBe(200);
    expect((await fetch(`${cluster.url}/prometheus/targets`)).status).toBe(200);
  });
});

describe('sandbox spec env allowlist', () => {
  it('refuses LD_PRELOAD / NODE_OPTIONS / PYTHONPATH in a Job with 422 naming each variable', async () => {
    const response = await fetch(`${cluster.url}/apis/batch/v1/namespaces/qwenops/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...cluster.authHeaders() },
      body: JSON.stringify(
        job('preload', {
          env: {
            LD_PRELOAD: '/tmp/evil.so',
            NODE_OPTIONS: '--require /tmp/x.js',
            QWENOPS_SIM_JOB_SECONDS: '1',
          },
        }),
      ),
    });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('Invalid');
    expect(body.error.message).toMatch(/env\.LD_PRELOAD: not an allowed environment variable/);
    expect(body.error.message).toMatch(/env\.NODE_OPTIONS: not an allowed environment variable/);
    expect(body.error.message).not.toMatch(/QWENOPS_SIM_JOB_SECONDS: not/);
    const viaBackend = await cluster.backend
      .createJob(job('pythonpath', { env: { PYTHONPATH: '/tmp' } }))
      .catch((e: unknown) => e);
    expect(viaBackend).toMatchObject({ code: 'Invalid', retryable: false });
    expect((viaBackend as Error).message).toMatch(/422 .*env\.PYTHONPATH: not an allowed/);
    const secretRef = await cluster.backend
      .createJob(job('secret-preload', { secretEnv: [{ name: 'LD_PRELOAD', secretName: 's', key: 'k' }] }))
      .catch((e: unknown) => e);
    expect((secretRef as Error).message).toMatch(/secretEnv\.0\.name \(LD_PRELOAD\): not an allowed/);
    expect(await cluster.jobs()).toEqual([]);
  });

  it('refuses a revision env with LD_PRELOAD or QWENOPS_CONFIG (deploy and canary)', async () => {
    const ref: ServingRef = { namespace: 'llm-prod', name: 'preload', deploymentMode: 'Serverless' };
    const deploy = await cluster.backend
      .deployService(ref, revision({ LD_PRELOAD: '/tmp/evil.so' }))
      .catch((e: unknown) => e);
    expect(deploy).toMatchObject({ code: 'Invalid', retryable: false });
    expect((deploy as Error).message).toMatch(
      /422 .*revision\.env\.LD_PRELOAD: not an allowed environment variable/,
    );
    const config = await cluster.backend
      .deployService(ref, revision({ QWENOPS_CONFIG: '/etc/shadow' }))
      .catch((e: unknown) => e);
    expect((config as Error).message).toMatch(/revision\.env\.QWENOPS_CONFIG: not an allowed/);
    expect(await cluster.service('llm-prod', 'preload')).toBeUndefined();
  });
});

describe('store credentials', () => {
  it('never reach a serving process (the simulator revision has no S3 keys in its environment)', async () => {
    const ref: ServingRef = { namespace: 'llm-prod', name: 'creds', deploymentMode: 'Serverless' };
    await cluster.backend.deployService(
      ref,
      revision({ VLLM_ATTENTION_BACKEND: 'FLASH_ATTN', QWENOPS_SIM_TTFT_MS: '3' }),
    );
    await cluster.backend.waitForTraffic(ref, undefined, { deadline: Date.now() + 60_000 });
    const view = await cluster.service('llm-prod', 'creds');
    const pid = view?.revisions[0]?.pid;
    expect(pid).toBeGreaterThan(0);
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0');
    const names = environ.map((entry) => entry.slice(0, entry.indexOf('=')));
    // The spec's allowed env did arrive ...
    expect(environ).toContain('QWENOPS_SIM_TTFT_MS=3');
    expect(environ).toContain('VLLM_ATTENTION_BACKEND=FLASH_ATTN');
    // ... the daemon's credentials did not.
    expect(names).not.toContain('QWENOPS_S3_ACCESS_KEY');
    expect(names).not.toContain('QWENOPS_S3_SECRET_KEY');
    expect(environ.join('\n')).not.toContain(ACCESS_KEY);
    expect(environ.join('\n')).not.toContain(SECRET_KEY);
  });
});
