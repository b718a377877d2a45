import type { ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { SEARCH_ATTRIBUTES } from '../../workflows/definitions.js';
import { createLogger } from '../observability/logger.js';
import { nodeEntrypoint } from '../runtime/entrypoints.js';
import { freeLoopbackPort, waitForListening } from '../runtime/ports.js';
import { toolBinary } from '../runtime/tools.js';
import { Supervisor, type SupervisorFailure, type SupervisorLogger } from './supervisor.js';

// The embedded stack `qwenops dev` and `make demo` run on one laptop: the Temporal dev
// server (persisted DB + UI), the sandbox cluster (GPU Jobs as local processes, serving
// simulators behind a traffic-splitting proxy), and an all-in-one worker. Each runs as its
// own process (as in production) with logs under <stateDir>/logs, supervised (./supervisor.ts):
// one that exits unexpectedly is logged and restarted with backoff; one that keeps crashing
// stops the whole stack (`failure`).

export interface EmbeddedStackOptions {
  stateDir: string;
  temporalPort: number;
  uiPort: number;
  sandboxPort: number;
  /**
   * The worker's Prometheus port. Unset: DEFAULT_METRICS_PORT, or a free port when that one
   * is taken (logged); set (--metrics-port): exactly this port, or a clear error.
   */
  metricsPort?: number;
  /** Embedded PostgreSQL (PGlite + pgvector) for the knowledge base. */
  databasePort: number;
  /** Wipe the sandbox cluster's state first (it holds local processes, which died with it). */
  freshCluster: boolean;
  log: (line: string) => void;
  /** Extra env for the sandbox cluster (simulated Job durations etc.). */
  clusterEnv?: Record<string, string>;
  /** Aborting it (a signal to the CLI) stops every process, also while the stack starts. */
  signal?: AbortSignal;
  /** Structured logs of the supervision (JSON lines on stderr by default). */
  logger?: SupervisorLogger;
  /** Supervision limits (defaults: 5 restarts within 60 s, backoff from 500 ms). */
  restartLimit?: { maxRestarts: number; windowMs: number };
}

export interface EmbeddedStack {
  env: Record<string, string>;
  temporalAddress: string;
  uiUrl: string;
  sandboxUrl: string;
  databaseUrl: string;
  /** host:port of the worker's Prometheus endpoint (may differ from the default; see metricsPort). */
  metricsAddress: string;
  logsDir: string;
  /** PID (= process group id) of each process the stack runs now, by name. */
  pids(): Record<string, number>;
  /** Resolves when a process kept crashing and the stack stopped itself (see Supervisor). */
  failure: Promise<SupervisorFailure>;
  stop(): Promise<void>;
}

/** What `qwenops dev` / `demo` use when no port flag is given. */
export const DEFAULT_STACK_PORTS = {
  temporal: 7233,
  ui: 8233,
  sandbox: 7480,
  metrics: 9464,
  database: 54329,
} as const;

export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Resolves with the first stdout line matching `pattern` (the child's own readiness signal). */
function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what} was not ready within ${timeoutMs / 1000}s (see its log)`)),
      timeoutMs,
    );
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (pattern.test(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with code ${code} before it was ready (see its log)`));
    });
  });
}

export function embeddedConfigEnv(
  stateDir: string,
  ports: { temporal: number; ui: number; sandbox: number; metrics: number; database: number },
): Record<string, string> {
  return {
    QWENOPS_DATABASE_URL: `postgres://postgres@127.0.0.1:${ports.database}/postgres`,
    QWENOPS_STATE_DIR: stateDir,
    QWENOPS_TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
    QWENOPS_TEMPORAL_UI_URL: `http://127.0.0.1:${ports.ui}`,
    QWENOPS_CLUSTER: 'sandbox',
    QWENOPS_SANDBOX_URL: `http://127.0.0.1:${ports.sandbox}`,
    QWENOPS_STORE: 'fs',
    QWENOPS_STORE_DIR: path.join(stateDir, 'store'),
    QWENOPS_HUB: 'local',
    QWENOPS_HUB_MIRROR_DIR: path.join(stateDir, 'hub-mirror'),
    QWENOPS_METRICS_ADDRESS: `127.0.0.1:${ports.metrics}`,
    QWENOPS_ANALYSIS: 'probe',
  };
}

/**
 * Checks the stack's ports before anything starts. The ports other processes and the user
 * depend on (Temporal, its UI, the sandbox API, the database: the CLI's exported env and the
 * UI link name them) must be free: a taken one is an error naming the port and its flag. The
 * worker's metrics port is only a scrape endpoint: when the user did not choose it and the
 * default is taken (another stack, another exporter), a free port is used instead and logged,
 * rather than the whole stack refusing to start; a port the user chose is never swapped.
 */
export async function resolveStackPorts(
  options: Pick<
    EmbeddedStackOptions,
    'temporalPort' | 'uiPort' | 'sandboxPort' | 'metricsPort' | 'databasePort'
  >,
  log: (line: string) => void,
  defaultMetricsPort: number = DEFAULT_STACK_PORTS.metrics,
): Promise<{ temporal: number; ui: number; sandbox: number; metrics: number; database: number }> {
  for (const [port, what, flag] of [
    [options.temporalPort, 'Temporal frontend', '--temporal-port'],
    [options.uiPort, 'Temporal UI', '--ui-port'],
    [options.sandboxPort, 'sandbox cluster', '--sandbox-port'],
    [options.databasePort, 'embedded PostgreSQL', '--database-port'],
  ] as const) {
    if (!(await portFree(port))) {
      throw new Error(
        `port ${port} (${what}) is in use: is another "qwenops dev" running? Stop it, or choose another port with ${flag}`,
      );
    }
  }
  let metrics = options.metricsPort ?? defaultMetricsPort;
  if (!(await portFree(metrics))) {
    if (options.metricsPort !== undefined) {
      throw new Error(
        `port ${metrics} (worker metrics, --metrics-port ${metrics}) is in use: choose another port with --metrics-port, or leave the flag out to use a free one`,
      );
    }
    const taken = metrics;
    metrics = await freeLoopbackPort();
    log(
      `worker metrics: port ${taken} is in use (another qwenops stack or exporter?); serving them on 127.0.0.1:${metrics} instead (--metrics-port chooses the port)`,
    );
  }
  return {
    temporal: options.temporalPort,
    ui: options.uiPort,
    sandbox: options.sandboxPort,
    metrics,
    database: options.databasePort,
  };
}

export async function startEmbeddedStack(options: EmbeddedStackOptions): Promise<EmbeddedStack> {
  const { stateDir, log } = options;
  const logsDir = path.join(stateDir, 'logs');
  mkdirSync(logsDir, { recursive: true });
  const ports = await resolveStackPorts(options, log);
  const env = embeddedConfigEnv(stateDir, ports);
  const supervisor = new Supervisor({
    logger: options.logger ?? createLogger('qwenops-stack', 'info', 2),
    ...options.restartLimit,
  });
  const launch = (
    name: string,
    argv: string[],
    ready: (child: ChildProcess) => Promise<void>,
    extraEnv: Record<string, string> = {},
  ) =>
    supervisor.start({
      name,
      argv,
      env: { ...process.env, ...env, ...extraEnv },
      logFile: path.join(logsDir, `${name}.log`),
      ready,
    });
  const stop = () => supervisor.stop(log);
  const onExit = () => supervisor.killAll();
  process.once('exit', onExit);
  const onAbort = () => {
    log('stop requested: stopping every process of the stack');
    void stop();
  };
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    const temporal = toolBinary('temporal');
    log(
      `starting Temporal dev server on 127.0.0.1:${options.temporalPort} (UI :${options.uiPort}, DB ${path.join(stateDir, 'temporal.db')})`,
    );
    await launch(
      'temporal',
      [
        temporal,
        'server',
        'start-dev',
        '--ip',
        '127.0.0.1',
        '--port',
        String(options.temporalPort),
        '--ui-port',
        String(options.uiPort),
        '--db-filename',
        path.join(stateDir, 'temporal.db'),
        '--log-level',
        'warn',
        ...Object.values(SEARCH_ATTRIBUTES).flatMap((k) => [
          '--search-attribute',
          `${k.name}=${k.type === 'TEXT' ? 'Text' : 'Keyword'}`,
        ]),
      ],
      (child) => waitForListening(options.temporalPort, 60_000, child, 'Temporal dev server'),
    );

    const sandboxState = path.join(stateDir, 'sandbox');
    if (options.freshCluster) rmSync(sandboxState, { recursive: true, force: true });
    log(
      `starting the sandbox cluster on 127.0.0.1:${options.sandboxPort} (GPU Jobs and serving run as local processes)`,
    );
    // A restarted daemon keeps its state: it serves its revisions again and relaunches the
    // Jobs it lost while they have attempts left.
    await launch(
      'sandbox-cluster',
      [
        ...nodeEntrypoint('src/cluster/sandbox/main'),
        '--port',
        String(options.sandboxPort),
        '--state-dir',
        sandboxState,
      ],
      (child) => waitForLine(child, /"url"/, 60_000, 'sandbox cluster').then(() => undefined),
      options.clusterEnv,
    );

    log(`starting the embedded PostgreSQL (PGlite + pgvector) on 127.0.0.1:${options.databasePort}`);
    await launch(
      'postgres',
      [
        ...nodeEntrypoint('src/knowledge/pglite/main'),
        '--data-dir',
        path.join(stateDir, 'pgdata'),
        '--port',
        String(options.databasePort),
      ],
      (child) => waitForListening(options.databasePort, 60_000, child, 'embedded PostgreSQL'),
    );

    log(
      `starting the all-in-one worker (task queues default, gpu-jobs, cluster, knowledge; metrics on http://127.0.0.1:${ports.metrics}/metrics)`,
    );
    // Its readiness line is logged at info level, whatever level the user asked for elsewhere.
    await launch(
      'worker',
      nodeEntrypoint('workers/all-in-one'),
      (child) => waitForLine(child, /workers running/, 120_000, 'worker').then(() => undefined),
      { QWENOPS_LOG_LEVEL: 'info' },
    );
  } catch (err) {
    const interrupted = options.signal?.aborted;
    await stop();
    process.removeListener('exit', onExit);
    throw interrupted ? new Error('stopped while starting (signal received); no process left running') : err;
  }
  return {
    env,
    temporalAddress: `127.0.0.1:${options.temporalPort}`,
    uiUrl: `http://127.0.0.1:${options.uiPort}`,
    sandboxUrl: `http://127.0.0.1:${options.sandboxPort}`,
    databaseUrl: env.QWENOPS_DATABASE_URL as string,
    metricsAddress: env.QWENOPS_METRICS_ADDRESS as string,
    logsDir,
    pids: () => supervisor.pids(),
    failure: supervisor.failure,
    stop: async () => {
      await stop();
      process.removeListener('exit', onExit);
      options.signal?.removeEventListener('abort', onAbort);
    },
  };
}
