import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MinioArtifactStore } from '../../src/storage/minio.js';
import { freePort } from './ports.js';
import { startProcess } from './processes.js';
import { toolPath } from './tools.js';

// A real MinIO server on loopback for one test file: its own data directory, its own ports,
// root credentials made up per run. `store` is ready to use (bucket created).

export interface RunningMinio {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  store: MinioArtifactStore;
  /** Data directory (to assert on what the server holds on disk, if ever needed). */
  dataDir: string;
  output(): string;
  stop(): Promise<void>;
}

export async function startMinio(
  options: { bucket?: string; timeoutMs?: number } = {},
): Promise<RunningMinio> {
  const binary = toolPath('minio');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-minio-'));
  const [port, consolePort] = [await freePort(), await freePort()];
  const accessKey = 'qwenops-test';
  const secretKey = `secret-${Math.random().toString(36).slice(2)}${Date.now().toString(36)}`;
  const endpoint = `http://127.0.0.1:${port}`;
  const server = startProcess(
    'minio',
    [
      binary,
      'server',
      dataDir,
      '--address',
      `127.0.0.1:${port}`,
      '--console-address',
      `127.0.0.1:${consolePort}`,
      '--quiet',
    ],
    {
      env: {
        MINIO_ROOT_USER: accessKey,
        MINIO_ROOT_PASSWORD: secretKey,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
        // Keep the test server from phoning home or scanning heavily on a 2-core machine.
        MINIO_CALLHOME_ENABLE: 'off',
      },
    },
  );
  const stop = async () => {
    await server.kill();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await waitForLive(endpoint, options.timeoutMs ?? 60_000, () => server.child.exitCode !== null);
  } catch (err) {
    const output = server.output();
    await stop();
    throw new Error(`MinIO did not become live at ${endpoint}: ${(err as Error).message}\n${output}`);
  }
  const bucket = options.bucket ?? 'qwenops-test';
  const store = await MinioArtifactStore.open({
    endpoint,
    bucket,
    accessKey,
    secretKey,
    region: 'us-east-1',
  });
  return { endpoint, accessKey, secretKey, bucket, store, dataDir, output: server.output, stop };
}

async function waitForLive(endpoint: string, timeoutMs: number, exited: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (exited()) throw new Error('the minio process exited');
    try {
      const res = await fetch(`${endpoint}/minio/health/live`);
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`not live after ${timeoutMs} ms (${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
