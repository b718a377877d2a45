import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ServingRef } from '../../src/domain/serving-revision.js';
import { repoRoot } from '../../src/runtime/entrypoints.js';
import type { TestSandboxCluster } from './sandbox.js';

// What the CI-release tests (test/e2e/ci-canary.test.ts, test/e2e/ci-examples.test.ts) set up
// besides the stack: the stable revision a canary is released against, and the package
// `npm pack` makes of the CLI.

const exec = promisify(execFile);

/** Deploys `storageUri` as the stable revision of `ref` (one replica) and waits until it is ready. */
export async function deployStableRevision(
  sandbox: TestSandboxCluster,
  ref: ServingRef,
  storageUri: string,
  timeoutMs = 120_000,
): Promise<void> {
  await sandbox.backend.deployService(ref, {
    storageUri,
    image: 'vllm/vllm-openai:v0.11.0',
    servedModelName: ref.name,
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
    gpuType: 'A10',
    labels: {},
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await sandbox.backend.getService(ref);
    if (s?.ready) return;
    if (Date.now() > deadline) {
      throw new Error(`${ref.namespace}/${ref.name} not ready after ${timeoutMs} ms: ${JSON.stringify(s)}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

export interface PackedCli {
  /** Absolute path of the .tgz. */
  tarball: string;
  filename: string;
  size: number;
  unpackedSize: number;
  /** Paths inside the package. */
  files: string[];
  seconds: number;
}

/** `npm pack` of this repository into `dest` (its prepack builds dist/ first). */
export async function packCli(dest: string): Promise<PackedCli> {
  const t = Date.now();
  const packed = await exec('npm', ['pack', '--json', '--pack-destination', dest], {
    cwd: repoRoot,
    maxBuffer: 64 * 1024 * 1024,
  });
  const seconds = (Date.now() - t) / 1000;
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{
    filename: string;
    size: number;
    unpackedSize: number;
    files: Array<{ path: string }>;
  }>;
  if (!info) throw new Error(`npm pack printed no package:\n${packed.stdout}\n${packed.stderr}`);
  return {
    tarball: path.join(dest, info.filename),
    filename: info.filename,
    size: info.size,
    unpackedSize: info.unpackedSize,
    files: info.files.map((f) => f.path),
    seconds,
  };
}
