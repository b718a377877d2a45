import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../config/config.js';
import { createArtifactStore } from '../../storage/index.js';
import type { ArtifactStore } from '../../storage/port.js';
import type { JobTemplateName } from '../port.js';
import {
  type RevisionRuntime,
  realModelPythons,
  type SandboxEngineName,
  SimulatorRuntime,
  VllmRuntime,
} from './revision-runtime.js';
import type { SandboxSecrets } from './secrets.js';
import { StorageInitializer } from './storage-initializer.js';

// The sandbox cluster's two engines (QWENOPS_ENGINE):
//   simulator (default): simulated GPU Jobs and the serving simulator; fast, labelled simulation.
//   vllm: the real jobs/ entrypoints (llm-compressor AWQ, transformers evaluation) on the CPU,
//         run in the model venv `make setup` builds, and real vLLM servers for CPU per revision.

export interface SandboxEngine {
  name: SandboxEngineName;
  runtime: RevisionRuntime;
  jobCommands: Partial<Record<JobTemplateName, string[]>>;
  /** Laid over the base env of every Job process. */
  jobEnv: Record<string, string>;
  /** The flag that gives a Job its scratch directory, for the templates whose entrypoint takes one. */
  workDir?: { flag: string; templates: JobTemplateName[] };
}

export function parseEngineName(raw: string | undefined): SandboxEngineName {
  const value = (raw ?? '').trim() || 'simulator';
  if (value !== 'simulator' && value !== 'vllm') {
    throw new Error(`QWENOPS_ENGINE must be "simulator" or "vllm", got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * The artifact store as the storage initializer sees it: the daemon's store settings with
 * the credentials Secret KServe's storage initializer would mount.
 */
function storeFor(childEnv: NodeJS.ProcessEnv, secrets: SandboxSecrets): () => Promise<ArtifactStore> {
  let store: Promise<ArtifactStore> | undefined;
  return () => {
    store ??= (async () => {
      const secretName = childEnv.QWENOPS_S3_CREDENTIALS_SECRET ?? 'qwenops-s3';
      const credentials = secrets[secretName] ?? {};
      const config = loadConfig({
        env: {
          ...childEnv,
          QWENOPS_S3_ACCESS_KEY: childEnv.QWENOPS_S3_ACCESS_KEY ?? credentials.AWS_ACCESS_KEY_ID,
          QWENOPS_S3_SECRET_KEY: childEnv.QWENOPS_S3_SECRET_KEY ?? credentials.AWS_SECRET_ACCESS_KEY,
        },
      });
      return createArtifactStore(config.store);
    })();
    return store;
  };
}

export function createSandboxEngine(options: {
  name: SandboxEngineName;
  stateDir: string;
  childEnv: NodeJS.ProcessEnv;
  secrets: SandboxSecrets;
  jobCommands: Partial<Record<JobTemplateName, string[]>>;
}): SandboxEngine {
  if (options.name === 'simulator') {
    return {
      name: 'simulator',
      runtime: new SimulatorRuntime(),
      jobCommands: options.jobCommands,
      jobEnv: {},
    };
  }
  const pythons = realModelPythons();
  const cores = Math.max(1, os.availableParallelism());
  const runtime = new VllmRuntime({
    python: pythons.serve,
    storage: new StorageInitializer(
      path.join(options.stateDir, 'models'),
      storeFor(options.childEnv, options.secrets),
    ),
    // A stable and a canary server share the machine during a canary.
    threadsPerServer: Math.max(1, Math.floor(cores / 2)),
    kvCacheGiB: Number(options.childEnv.QWENOPS_VLLM_KVCACHE_GIB ?? 1),
  });
  const python = (module: string) => [pythons.jobs, '-m', module];
  return {
    name: 'vllm',
    runtime,
    jobCommands: {
      quantize: python('qwenops_jobs.quantize'),
      evaluate: python('qwenops_jobs.evaluate'),
      ...options.jobCommands,
    },
    jobEnv: {
      // The Job templates default to CUDA; here the model work runs on the CPU.
      QWENOPS_JOB_DEVICE: 'cpu',
      PYTHONPATH: pythons.jobsPath,
      PYTHONUNBUFFERED: '1',
      HF_HUB_OFFLINE: '1',
      TRANSFORMERS_OFFLINE: '1',
      TQDM_DISABLE: '1',
      OMP_NUM_THREADS: String(cores),
    },
    workDir: { flag: '--work-dir', templates: ['quantize', 'evaluate'] },
  };
}
