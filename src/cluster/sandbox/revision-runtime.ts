import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ServingRevisionSpec } from '../../domain/serving-revision.js';
import { nodeEntrypoint, repoRoot } from '../../runtime/entrypoints.js';
import { freeLoopbackPort } from '../../runtime/ports.js';
import { ClusterError } from '../port.js';
import type { StorageInitializer } from './storage-initializer.js';

// What runs as a serving revision's "pod" in the sandbox, per engine:
//   simulator: the project's OpenAI-compatible serving simulator (fast, the default);
//   vllm:      a real vLLM OpenAI server for CPU serving the revision's model, copied to
//              local disk first by the storage initializer (as KServe's init container does).
// A runtime says how to start the process and where it will listen; RevisionProcess does
// the rest (health, restarts, failure), the same for both.

export type SandboxEngineName = 'simulator' | 'vllm';

export interface RevisionLaunch {
  argv: string[];
  /** Laid over the daemon's base env and the revision's own env. */
  env: NodeJS.ProcessEnv;
  /** The port the process will listen on, or 'announced' when it prints it (listening line). */
  port: number | 'announced';
}

export interface RevisionRuntime {
  readonly engine: SandboxEngineName;
  /** Text in the process's command line that identifies it after a daemon restart. */
  readonly processMark: string;
  /** Readiness path answering 200 once the server serves. */
  readonly healthPath: string;
  launch(revision: string, spec: ServingRevisionSpec, signal: AbortSignal): Promise<RevisionLaunch>;
  /**
   * Work the server must have done before it takes traffic (a startup probe that runs a real
   * request): resolves when done, rejects while the server cannot do it yet.
   */
  warmUp?(serverUrl: string, spec: ServingRevisionSpec, signal: AbortSignal): Promise<void>;
}

export const SIMULATOR_MODULE = 'src/llm/simulator/main';

export class SimulatorRuntime implements RevisionRuntime {
  readonly engine = 'simulator' as const;
  readonly processMark = SIMULATOR_MODULE;
  readonly healthPath = '/health';

  async launch(revision: string, spec: ServingRevisionSpec): Promise<RevisionLaunch> {
    return {
      argv: [
        ...nodeEntrypoint(SIMULATOR_MODULE),
        ...['--port', '0', '--model', spec.servedModelName, '--revision', revision],
        ...['--storage-uri', spec.storageUri, '--max-model-len', String(spec.vllm.maxModelLen)],
      ],
      env: {},
      port: 'announced',
    };
  }
}

export const VLLM_SERVER_MODULE = 'vllm.entrypoints.openai.api_server';

/** Engine env that only means something on a GPU; vLLM for CPU refuses some of it. */
const GPU_ONLY_ENV = new Set(['VLLM_ATTENTION_BACKEND', 'CUDA_VISIBLE_DEVICES', 'NVIDIA_VISIBLE_DEVICES']);

export interface VllmRuntimeOptions {
  /** Python of the serve venv (`make setup`: .tools/serve-venv). */
  python: string;
  storage: StorageInitializer;
  /** OpenMP threads per server; two servers side by side must not pin the same cores. */
  threadsPerServer: number;
  /** KV cache per server, GiB (VLLM_CPU_KVCACHE_SPACE). */
  kvCacheGiB: number;
}

export class VllmRuntime implements RevisionRuntime {
  readonly engine = 'vllm' as const;
  readonly processMark = VLLM_SERVER_MODULE;
  readonly healthPath = '/health';

  constructor(private readonly options: VllmRuntimeOptions) {}

  async launch(_revision: string, spec: ServingRevisionSpec, signal: AbortSignal): Promise<RevisionLaunch> {
    const modelDir = await this.options.storage.localModelDir(spec.storageUri, signal);
    const port = await freeLoopbackPort();
    const v = spec.vllm;
    // The spec's flags where they mean something on CPU. --enforce-eager: torch.compile
    // start-up takes minutes on CPU and its cache does not reload between runs.
    const argv = [
      this.options.python,
      '-m',
      VLLM_SERVER_MODULE,
      ...['--model', modelDir, '--served-model-name', spec.servedModelName],
      ...['--host', '127.0.0.1', '--port', String(port)],
      ...['--max-model-len', String(v.maxModelLen), '--dtype', v.dtype === 'auto' ? 'auto' : v.dtype],
      '--enforce-eager',
      ...(v.trustRemoteCode ? ['--trust-remote-code'] : []),
      ...(v.enablePrefixCaching ? ['--enable-prefix-caching'] : ['--no-enable-prefix-caching']),
      ...(v.tensorParallelSize > 1 ? ['--tensor-parallel-size', String(v.tensorParallelSize)] : []),
      ...v.extraArgs,
    ];
    const env: NodeJS.ProcessEnv = {
      HF_HUB_OFFLINE: '1',
      TRANSFORMERS_OFFLINE: '1',
      VLLM_NO_USAGE_STATS: '1',
      DO_NOT_TRACK: '1',
      TQDM_DISABLE: '1',
      VLLM_CPU_KVCACHE_SPACE: String(this.options.kvCacheGiB),
      VLLM_CPU_OMP_THREADS_BIND: 'nobind',
      OMP_NUM_THREADS: String(this.options.threadsPerServer),
      // Writable caches inside the state dir, never the user's home.
      VLLM_CACHE_ROOT: path.join(path.dirname(modelDir), '..', 'vllm-cache'),
    };
    for (const name of Object.keys(spec.env)) if (GPU_ONLY_ENV.has(name)) env[name] = undefined;
    return { argv, env, port };
  }

  /**
   * vLLM answers /health before its first generations, which on the CPU are several times
   * slower than the rest (allocations and kernel set-up per batch shape): a canary measured
   * from its first request would be judged on that cold start. Like a startup probe that
   * runs real requests, a few short streamed completions go first, one at a time and then
   * a small concurrent batch.
   */
  async warmUp(serverUrl: string, spec: ServingRevisionSpec, signal: AbortSignal): Promise<void> {
    const complete = async () => {
      const res = await fetch(`${serverUrl}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: spec.servedModelName, prompt: '你好', max_tokens: 8, stream: true }),
        signal: AbortSignal.any([signal, AbortSignal.timeout(60_000)]),
      });
      if (res.status !== 200) throw new Error(`warm-up request answered ${res.status}`);
      await res.text();
    };
    for (let i = 0; i < 2; i++) await complete();
    await Promise.all(Array.from({ length: 4 }, complete));
  }
}

/** Paths of the real model path's Python environments, with a clear error when missing. */
export function realModelPythons(): { serve: string; jobs: string; jobsPath: string } {
  const serve = path.join(repoRoot, '.tools', 'serve-venv', 'bin', 'python');
  const jobs = path.join(repoRoot, '.tools', 'jobs-model-venv', 'bin', 'python');
  for (const p of [serve, jobs]) {
    if (!existsSync(p)) {
      throw new ClusterError(
        'Unavailable',
        `the vllm engine needs ${p}: run "make setup" (scripts/setup/60-model-venvs.sh builds the model venvs)`,
        false,
      );
    }
  }
  return { serve, jobs, jobsPath: path.join(repoRoot, 'jobs') };
}
