import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../../config/config.js';
import { createArtifactStore } from '../../../storage/index.js';
import type { ArtifactStore } from '../../../storage/port.js';

// Shared frame of the simulated GPU Jobs the sandbox runs by default. They do the store
// I/O for real (read manifests, write files, manifests and result JSON through the same
// artifact store factory the workers use) but no GPU work: they say "SIMULATION" in the
// log and `simulated: true` in their results. Knobs (env):
//   QWENOPS_SIM_JOB_SECONDS       how long the Job takes (default 3)
//   QWENOPS_SIM_JOB_FAIL          "1"/"true" = every template fails; or a comma list of templates
//   QWENOPS_SIM_JOB_FAIL_ATTEMPTS fail only attempts <= N (so a retry succeeds)
//   QWENOPS_SIM_QUALITY_DROP_PCT  evaluate: force the candidate's quality drop

export const PROGRESS_PREFIX = 'QWENOPS_PROGRESS';
/**
 * The last line a Job process prints, on every exit: its own clock, process start (Node's
 * time origin, i.e. before any module loaded) to exit, in epoch ms. The orchestration
 * benchmark reads it from the Job log to tell the Jobs' run time from the dispatch gaps.
 */
export const PROCESS_CLOCK_PREFIX = 'QWENOPS_PROCESS_CLOCK';

export interface ProcessClock {
  template: string;
  startedAtMs: number;
  /** When the Job's own code began (modules loaded): start -> here is the runtime's start-up. */
  bodyStartedAtMs: number;
  exitedAtMs: number;
  runMs: number;
  exitCode: number;
}

/** Prints the process clock line (stdout is a file or a pipe: synchronous on Linux) and exits. */
function exitWithClock(template: string, bodyStartedAtMs: number, code: number): never {
  const startedAtMs = performance.timeOrigin;
  const exitedAtMs = performance.timeOrigin + performance.now();
  const clock: ProcessClock = {
    template,
    startedAtMs: Math.round(startedAtMs * 1000) / 1000,
    bodyStartedAtMs: Math.round(bodyStartedAtMs * 1000) / 1000,
    exitedAtMs: Math.round(exitedAtMs * 1000) / 1000,
    runMs: Math.round((exitedAtMs - startedAtMs) * 1000) / 1000,
    exitCode: code,
  };
  process.stdout.write(`${PROCESS_CLOCK_PREFIX} ${JSON.stringify(clock)}\n`);
  process.exit(code);
}

export interface JobContext {
  template: string;
  store: ArtifactStore;
  durationMs: number;
  /** Prints a progress line and waits until `fraction` of the Job's duration has passed. */
  step(fraction: number, message: string): Promise<void>;
  log(message: string): void;
  elapsedSeconds(): number;
}

export class JobInputError extends Error {}

export function requireArg(values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value === '')
    throw new JobInputError(`missing required argument --${name}`);
  return value;
}

export function intArg(values: Record<string, unknown>, name: string, fallback: number, min = 1): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min)
    throw new JobInputError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

export function boolArg(values: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new JobInputError(`--${name} must be true or false, got ${JSON.stringify(raw)}`);
}

function shouldFail(template: string, env: NodeJS.ProcessEnv): boolean {
  const raw = env.QWENOPS_SIM_JOB_FAIL?.trim();
  if (!raw || raw === '0' || raw === 'false') return false;
  const targeted =
    raw === '1' ||
    raw === 'true' ||
    raw
      .split(',')
      .map((s) => s.trim())
      .includes(template);
  if (!targeted) return false;
  const onlyAttempts = Number(env.QWENOPS_SIM_JOB_FAIL_ATTEMPTS ?? '');
  const attempt = Number(env.QWENOPS_JOB_ATTEMPT ?? '1');
  return !(Number.isFinite(onlyAttempts) && onlyAttempts > 0 && attempt > onlyAttempts);
}

export async function runSimulatedJob(
  template: string,
  options: Record<string, { type: 'string' }>,
  body: (ctx: JobContext, values: Record<string, string | undefined>) => Promise<void>,
): Promise<void> {
  const started = Date.now();
  const bodyStartedAtMs = performance.timeOrigin + performance.now();
  const seconds = Number(process.env.QWENOPS_SIM_JOB_SECONDS ?? '3');
  const durationMs = Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 3000;
  const log = (message: string) => process.stdout.write(`${new Date().toISOString()} ${message}\n`);
  process.on('SIGTERM', () => {
    log(`${template}: SIGTERM received, stopping`);
    exitWithClock(template, bodyStartedAtMs, 143);
  });
  log(
    `SIMULATION: qwenops simulated ${template} job (no GPU work is done; results carry simulated=true); attempt ${process.env.QWENOPS_JOB_ATTEMPT ?? '1'}`,
  );
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      options,
      strict: true,
      allowPositionals: false,
    });
    const store = await createArtifactStore(loadConfig().store);
    log(`${template}: artifact store ${store.kind}`);
    const failing = shouldFail(template, process.env);
    const ctx: JobContext = {
      template,
      store,
      durationMs,
      log,
      elapsedSeconds: () => (Date.now() - started) / 1000,
      async step(fraction, message) {
        const wait = started + fraction * durationMs - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const percent = Math.round(fraction * 100);
        process.stdout.write(`${PROGRESS_PREFIX} ${JSON.stringify({ percent, message })}\n`);
        if (failing && fraction >= 0.5) {
          throw new Error(
            `simulated failure of the ${template} job (QWENOPS_SIM_JOB_FAIL=${process.env.QWENOPS_SIM_JOB_FAIL})`,
          );
        }
      },
    };
    await body(ctx, values as Record<string, string | undefined>);
    log(`${template}: done in ${ctx.elapsedSeconds().toFixed(1)}s`);
    exitWithClock(template, bodyStartedAtMs, 0);
  } catch (err) {
    const message = (err as Error).message;
    process.stderr.write(`ERROR: ${template} failed: ${message}\n`);
    exitWithClock(
      template,
      bodyStartedAtMs,
      err instanceof JobInputError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? 2 : 1,
    );
  }
}
