// Which environment variables a Job or serving revision spec may set in the sandbox, where
// Jobs and revisions are processes on the daemon's own machine and user. Anything that
// changes how a process loads code (LD_PRELOAD, NODE_OPTIONS, PYTHONPATH, PYTHONSTARTUP,
// BASH_ENV, ...) or where it reads its configuration is refused; what the engines and
// their tests legitimately pass is allowed:
//   QWENOPS_*   store settings (QWENOPS_STORE, QWENOPS_STORE_DIR, QWENOPS_S3_*), simulator
//               and job knobs (QWENOPS_SIM_*, QWENOPS_JOB_*), except QWENOPS_CONFIG (a
//               config file to read) and QWENOPS_SANDBOX_* (the daemon's own settings);
//   VLLM_*      vLLM engine settings (VLLM_ATTENTION_BACKEND, the spec's default);
//   HF_*, HUGGINGFACE_*, TRANSFORMERS_*   hub / transformers settings (HF_HUB_OFFLINE ...);
//   NCCL_*      collective-communication tuning for tensor parallelism;
//   OMP_NUM_THREADS, MKL_NUM_THREADS, TOKENIZERS_PARALLELISM, CUDA_VISIBLE_DEVICES,
//   NVIDIA_VISIBLE_DEVICES, PYTORCH_CUDA_ALLOC_CONF, TQDM_DISABLE, DO_NOT_TRACK, TZ.
// The engines' own env (PYTHONPATH for the jobs venv, VLLM_CACHE_ROOT ...) is laid by the
// daemon, not taken from specs, and is not subject to this list.

export const ALLOWED_SPEC_ENV =
  /^(QWENOPS_[A-Z0-9_]+|VLLM_[A-Z0-9_]+|HF_[A-Z0-9_]+|HUGGINGFACE_[A-Z0-9_]+|TRANSFORMERS_[A-Z0-9_]+|NCCL_[A-Z0-9_]+|OMP_NUM_THREADS|MKL_NUM_THREADS|TOKENIZERS_PARALLELISM|CUDA_VISIBLE_DEVICES|NVIDIA_VISIBLE_DEVICES|PYTORCH_CUDA_ALLOC_CONF|TQDM_DISABLE|DO_NOT_TRACK|TZ)$/;
const DENIED_SPEC_ENV = /^(QWENOPS_CONFIG|QWENOPS_SANDBOX_[A-Z0-9_]*)$/;

export const ALLOWED_SPEC_ENV_TEXT =
  'QWENOPS_* (not QWENOPS_CONFIG, QWENOPS_SANDBOX_*), VLLM_*, HF_*, HUGGINGFACE_*, TRANSFORMERS_*, NCCL_*, OMP_NUM_THREADS, MKL_NUM_THREADS, TOKENIZERS_PARALLELISM, CUDA_VISIBLE_DEVICES, NVIDIA_VISIBLE_DEVICES, PYTORCH_CUDA_ALLOC_CONF, TQDM_DISABLE, DO_NOT_TRACK, TZ';

export function specEnvAllowed(name: string): boolean {
  return ALLOWED_SPEC_ENV.test(name) && !DENIED_SPEC_ENV.test(name);
}

/** A spec names environment variables the sandbox does not allow (answered 422). */
export class EnvNotAllowedError extends Error {
  override readonly name = 'EnvNotAllowedError';
  constructor(
    readonly subject: string,
    readonly fields: string[],
  ) {
    super(
      `invalid ${subject}: ${fields.map((f) => `${f}: not an allowed environment variable`).join('; ')} (allowed: ${ALLOWED_SPEC_ENV_TEXT})`,
    );
  }
}

/** Throws EnvNotAllowedError naming every disallowed variable (`field` prefixes the names). */
export function assertSpecEnv(subject: string, entries: Array<{ field: string; name: string }>): void {
  const bad = entries.filter((e) => !specEnvAllowed(e.name)).map((e) => e.field);
  if (bad.length > 0) throw new EnvNotAllowedError(subject, bad);
}

/** Only the allowed entries (a spec persisted before the rule, relaunched after a restart). */
export function allowedSpecEnv(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([name]) => specEnvAllowed(name)));
}

/** Store credentials: the storage initializer's business, never a serving process's. */
const STORE_CREDENTIALS =
  /^(QWENOPS_S3_ACCESS_KEY|QWENOPS_S3_SECRET_KEY|AWS_[A-Z0-9_]+|QWENOPS_SANDBOX_SECRETS)$/;

export function withoutStoreCredentials(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !STORE_CREDENTIALS.test(name)));
}
