import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterError } from '../../src/cluster/port.js';
import { isAlive } from '../../src/cluster/sandbox/process-group.js';
import { parsePromotionSpec } from '../../src/domain/promotion-spec.js';
import { buildRevisionSpec, type ServingRef } from '../../src/domain/serving-revision.js';
import { tinyModelDir } from '../../src/hub/tiny-model.js';
import { createArtifactStore } from '../../src/storage/index.js';
import { startSandboxCluster, type TestSandboxCluster } from '../support/sandbox.js';

// Bad input on the real serving engine ends with a clear, non-retryable reason and leaves
// nothing running: a checkpoint vLLM cannot load (crash loop), a server that does not become
// ready within the progress deadline, and a storageUri with no complete model behind it.

let sandbox: TestSandboxCluster | undefined;

afterEach(async () => {
  await sandbox?.stop();
  sandbox = undefined;
});

const ref: ServingRef = { namespace: 'llm-test', name: 'broken', deploymentMode: 'Serverless' };

/** The tiny model's files into the sandbox's fs store under `prefix`, optionally altered. */
async function storeModel(
  storeDir: string,
  prefix: string,
  alter: (name: string, bytes: Buffer) => Buffer = (_n, b) => b,
): Promise<string> {
  const store = await createArtifactStore({
    kind: 'fs',
    dir: storeDir,
    endpoint: 'http://127.0.0.1:9',
    bucket: 'unused',
    region: 'us-east-1',
    credentialsSecret: 'unused',
  });
  const dir = tinyModelDir();
  const files = [];
  for (const name of (await readdir(dir)).filter((n) => !n.startsWith('.')).sort()) {
    const info = await store.put(`${prefix}/${name}`, alter(name, await readFile(path.join(dir, name))));
    files.push({ path: name, size: info.size, sha256: info.sha256 as string });
  }
  await store.writeManifest(prefix, files, { test: 'serving-failures' });
  return store.uri(prefix);
}

function revision(storageUri: string) {
  const spec = parsePromotionSpec({
    model: 'qwenops/qwen2-tiny-zh',
    serving: { name: 'broken', env: {}, vllm: { trustRemoteCode: false, maxModelLen: 2048 } },
  });
  return buildRevisionSpec(spec.serving, storageUri, { quantized: false, labels: {} });
}

async function waitError(cluster: TestSandboxCluster): Promise<ClusterError> {
  const error = await cluster.backend.waitForTraffic(ref, undefined, { deadline: Date.now() + 240_000 }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ClusterError);
  expect((error as ClusterError).retryable).toBe(false);
  return error as ClusterError;
}

async function expectNothingRunning(cluster: TestSandboxCluster) {
  const view = await cluster.service(ref.namespace, ref.name);
  for (const r of view?.revisions ?? []) {
    expect(r.healthy).toBe(false);
    // The server is stopped (SIGTERM, then SIGKILL after a grace period): on a busy host a
    // vLLM process can take several seconds to exit, so wait for it rather than sample once.
    const pid = r.pid;
    if (pid) {
      const deadline = Date.now() + 60_000;
      while (isAlive(pid) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 250));
      expect(isAlive(pid)).toBe(false);
    }
  }
  expect((await fetch(`${cluster.url}/prometheus/targets`).then((r) => r.json())) as unknown[]).toEqual([]);
}

describe('the vllm engine refuses what it cannot serve, clearly and without leftovers', () => {
  it('a checkpoint vLLM cannot load: the revision fails with the loader error, not a timeout', async () => {
    sandbox = await startSandboxCluster({
      extraEnv: { QWENOPS_ENGINE: 'vllm', QWENOPS_SANDBOX_CRASH_LIMIT: '1' },
    });
    // Weights cut off after their header: the file exists, the tensors do not.
    const uri = await storeModel(sandbox.storeDir, 'models/broken/truncated', (name, bytes) =>
      name.endsWith('.safetensors') ? bytes.subarray(0, 4096) : bytes,
    );
    await sandbox.backend.deployService(ref, revision(uri));
    const error = await waitError(sandbox);
    expect(error.message).toMatch(/CrashLoopBackOff: revision broken-predictor-00001 exited 1 time/);
    expect(error.message).toMatch(/first error: .*SafetensorError: Error while deserializing header/);
    await expectNothingRunning(sandbox);
  });

  it('a server that is not ready within the progress deadline is stopped and reported', async () => {
    sandbox = await startSandboxCluster({
      extraEnv: { QWENOPS_ENGINE: 'vllm', QWENOPS_SANDBOX_PROGRESS_DEADLINE_SECONDS: '3' },
    });
    const uri = await storeModel(sandbox.storeDir, 'models/slow/original');
    await sandbox.backend.deployService(ref, revision(uri));
    const error = await waitError(sandbox);
    expect(error.message).toMatch(
      /ProgressDeadlineExceeded: revision broken-predictor-00001 did not become ready within 3s/,
    );
    await expectNothingRunning(sandbox);
  });

  it('a storageUri with no complete model behind it fails in the storage initializer', async () => {
    sandbox = await startSandboxCluster({ extraEnv: { QWENOPS_ENGINE: 'vllm' } });
    await sandbox.backend.deployService(ref, revision(`file://${sandbox.storeDir}/models/never-written`));
    const error = await waitError(sandbox);
    expect(error.message).toMatch(
      /StorageInitializerFailed: .* has no manifest: the model was never completely written there/,
    );
    await expectNothingRunning(sandbox);
  });
});
