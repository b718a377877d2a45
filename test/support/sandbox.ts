import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { JobView, ServiceView } from '../../src/cluster/sandbox/api.js';
import { readTokenFile, tokenFileOf } from '../../src/cluster/sandbox/auth.js';
import { SandboxClusterBackend } from '../../src/cluster/sandbox/backend.js';
import type { SandboxSecrets } from '../../src/cluster/sandbox/secrets.js';
import { nodeEntrypoint } from '../../src/runtime/entrypoints.js';
import { type ManagedProcess, startProcess } from './processes.js';

// Starts the sandbox cluster daemon as a real PROCESS on a free port, with its own state
// dir, for tests that need a cluster (jobs, serving). Jobs see the store configured here
// (an fs store under the state dir unless storeDir / storeEnv say otherwise).

export interface SandboxClusterOptions {
  /** fs artifact store root the Jobs use; default <stateDir>/store. */
  storeDir?: string;
  /** Store settings instead of an fs dir (e.g. QWENOPS_STORE=minio + QWENOPS_S3_*). */
  storeEnv?: Record<string, string>;
  /** More env for the daemon (and so its Jobs and revisions), e.g. QWENOPS_SIM_JOB_SECONDS. */
  extraEnv?: Record<string, string>;
  secrets?: SandboxSecrets;
  /** Reuse a state dir (restart tests); a fresh temp dir otherwise. */
  stateDir?: string;
  /** Echo the daemon's output to stderr (debugging). */
  echo?: boolean;
}

export interface TestSandboxCluster {
  url: string;
  backend: SandboxClusterBackend;
  stateDir: string;
  /** The control API's bearer-token file (the daemon writes a new token at every start). */
  tokenFile: string;
  /** Headers that authenticate a raw fetch to the control API. */
  authHeaders(): Record<string, string>;
  storeDir: string;
  process: ManagedProcess;
  /** Every Job the daemon knows, with its launches counter. */
  jobs(): Promise<JobView[]>;
  /** Every service with proxy weights and per-revision request counters. */
  services(): Promise<ServiceView[]>;
  service(namespace: string, name: string): Promise<ServiceView | undefined>;
  /** SIGTERM the daemon (it stops its children), and remove the state dir unless keepState. */
  stop(options?: { keepState?: boolean }): Promise<void>;
}

export async function startSandboxCluster(options: SandboxClusterOptions = {}): Promise<TestSandboxCluster> {
  const stateDir = options.stateDir ?? (await mkdtemp(path.join(os.tmpdir(), 'qwenops-sandbox-')));
  const storeDir = options.storeDir ?? path.join(stateDir, 'store');
  const env: Record<string, string> = {
    QWENOPS_STORE: 'fs',
    QWENOPS_STORE_DIR: storeDir,
    QWENOPS_SIM_JOB_SECONDS: '1',
    QWENOPS_SANDBOX_RETRY_BACKOFF_MS: '200',
    QWENOPS_SANDBOX_KILL_GRACE_MS: '2000',
    QWENOPS_LOG_LEVEL: process.env.QWENOPS_TEST_LOG_LEVEL ?? 'warn',
    ...(options.secrets ? { QWENOPS_SANDBOX_SECRETS: JSON.stringify(options.secrets) } : {}),
    ...options.storeEnv,
    ...options.extraEnv,
  };
  const daemon = startProcess(
    'sandbox-cluster',
    [...nodeEntrypoint('src/cluster/sandbox/main'), '--port', '0', '--state-dir', stateDir],
    { env, echo: options.echo },
  );
  const url = await readyUrl(daemon, 60_000);
  const tokenFile = tokenFileOf(stateDir);
  const authHeaders = () => ({ authorization: `Bearer ${readTokenFile(tokenFile) ?? ''}` });
  const backend = new SandboxClusterBackend({ url, pollIntervalMs: 100, tokenFile });
  const get = async <T>(p: string): Promise<T> => {
    const response = await fetch(`${url}${p}`, { headers: authHeaders() });
    if (!response.ok) throw new Error(`GET ${p}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  };
  return {
    url,
    backend,
    stateDir,
    tokenFile,
    authHeaders,
    storeDir,
    process: daemon,
    jobs: async () => (await get<{ items: JobView[] }>('/apis/batch/v1/jobs')).items,
    services: async () =>
      (await get<{ items: ServiceView[] }>('/apis/serving.kserve.io/v1beta1/inferenceservices')).items,
    async service(namespace, name) {
      const response = await fetch(
        `${url}/apis/serving.kserve.io/v1beta1/namespaces/${namespace}/inferenceservices/${name}`,
        { headers: authHeaders() },
      );
      return response.status === 404 ? undefined : ((await response.json()) as ServiceView);
    },
    async stop(stopOptions = {}) {
      await backend.close();
      await daemon.kill('SIGTERM');
      if (!stopOptions.keepState && !options.stateDir) await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** Waits for the {"event":"listening"} line a qwenops process prints when ready. */
export async function readyUrl(proc: ManagedProcess, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const line of proc.output().split('\n')) {
      if (!line.includes('"event":"listening"')) continue;
      try {
        return (JSON.parse(line) as { url: string }).url;
      } catch {
        // A partial line: read again.
      }
    }
    if (proc.child.exitCode !== null) {
      throw new Error(
        `${proc.name} exited with ${proc.child.exitCode} before it was ready:\n${proc.output()}`,
      );
    }
    if (Date.now() > deadline)
      throw new Error(`${proc.name} not ready after ${timeoutMs} ms:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
