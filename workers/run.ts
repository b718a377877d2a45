import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { loadConfig, type QwenopsConfig, redactConfig } from '../src/config/config.js';
import { assertProductionSettings } from '../src/config/production.js';
import { createLogger, type Logger } from '../src/observability/logger.js';
import {
  freeLoopbackAddress,
  type MetricsServer,
  startMetricsServer,
} from '../src/observability/metrics-server.js';
import { startTracing, type Tracing } from '../src/observability/tracing.js';
import { modulePath } from '../src/runtime/entrypoints.js';
import { createDataConverter, workflowInterceptorModules } from '../src/temporal/data-converter.js';
import { temporalTls } from '../src/temporal/tls.js';
import { tracingWorkerOptions } from '../src/temporal/tracing.js';
import { TASK_QUEUES } from '../workflows/definitions.js';
import { compose, type TaskQueueName } from './compose.js';
import { MAX_HEARTBEAT_THROTTLE_INTERVAL } from './heartbeat-throttle.js';
import { workerDeployment, workerDeploymentOptions } from './versioning.js';

// Starts the workers for the given task queues in this process: one Temporal Runtime with
// Prometheus metrics and JSON logs, one Worker per queue. SIGINT/SIGTERM shut down
// gracefully: pollers stop, running activities get `shutdownGraceTime` to finish or
// heartbeat-cancel, then the process exits.

export interface RunWorkersOptions {
  queues: TaskQueueName[];
  config?: QwenopsConfig;
  /** Registers the workflow code (only the default queue runs workflows). */
  workflows?: boolean;
  /** service.name of the traces (default: qwenops-worker-<queue>, qwenops-worker for several queues). */
  serviceName?: string;
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The traces' service.name of a worker process: qwenops-worker-cluster, qwenops-worker-gpu-jobs, ... */
export function workerServiceName(queues: TaskQueueName[]): string {
  return queues.length === 1 ? `qwenops-worker-${kebab(queues[0] as string)}` : 'qwenops-worker';
}

function sdkLogger(logger: Logger) {
  const at =
    (level: 'trace' | 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, meta?: Record<string, unknown>) =>
      logger[level]({ ...meta, component: 'temporal-sdk' }, message);
  return {
    log: (level: string, message: string, meta?: Record<string, unknown>) =>
      logger.info({ level, ...meta }, message),
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  };
}

export async function runWorkers(options: RunWorkersOptions): Promise<void> {
  const config = options.config ?? loadConfig();
  const logger = createLogger('qwenops-worker', config.log.level);
  // Kubernetes mode: no silent fallback to the embedded stack's stand-ins (lexical embedder,
  // loopback database, pod-local store); every missing setting is named, before anything starts.
  try {
    assertProductionSettings(config, options.queues);
  } catch (error) {
    logger.fatal({ queues: options.queues, error: (error as Error).message }, 'refusing to start');
    throw error;
  }
  const deployment = workerDeployment(config);
  logger.info(
    { config: redactConfig(config), queues: options.queues, deployment: deployment ?? 'unversioned' },
    'starting workers',
  );
  // The SDK's exporter listens on a loopback port of its own; config.metrics.address serves
  // its metrics followed by the pipeline metrics the activities record (src/observability).
  const sdkMetricsAddress = config.metrics.address ? await freeLoopbackAddress() : undefined;
  Runtime.install({
    logger: sdkLogger(logger),
    shutdownSignals: ['SIGINT', 'SIGTERM'],
    telemetryOptions: sdkMetricsAddress
      ? { metrics: { prometheus: { bindAddress: sdkMetricsAddress }, metricPrefix: 'qwenops_' } }
      : undefined,
  });
  const metricsServer: MetricsServer | undefined = config.metrics.address
    ? await startMetricsServer({ address: config.metrics.address, upstream: sdkMetricsAddress })
    : undefined;
  // OpenTelemetry (README, "Tracing"): on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER says so.
  const tracing: Tracing | undefined = startTracing({
    serviceName: options.serviceName ?? workerServiceName(options.queues),
    settings: config.tracing,
    attributes: { 'qwenops.task_queues': options.queues.map((q) => TASK_QUEUES[q]).join(',') },
  });
  if (tracing) logger.info({ service: tracing.serviceName }, 'tracing on');
  const traced = tracingWorkerOptions(tracing);
  let connection: NativeConnection;
  let composition: Awaited<ReturnType<typeof compose>>;
  try {
    connection = await NativeConnection.connect({
      address: config.temporal.address,
      tls: temporalTls(config.temporal),
      apiKey: config.temporal.apiKey,
    });
    composition = await compose(config, logger);
  } catch (error) {
    await metricsServer?.close().catch(() => undefined);
    await tracing?.shutdown();
    throw error;
  }
  const dataConverter = createDataConverter(config.codecKey);
  try {
    const workers = await Promise.all(
      options.queues.map((queue) => {
        const workerOptions: WorkerOptions = {
          connection,
          namespace: config.temporal.namespace,
          taskQueue: TASK_QUEUES[queue],
          activities: composition.activitiesFor(queue),
          dataConverter,
          shutdownGraceTime: '20s',
          maxHeartbeatThrottleInterval: MAX_HEARTBEAT_THROTTLE_INTERVAL,
          identity: `${queue}@${process.pid}`,
          // Every queue of the process is the same version: a pinned workflow's activities
          // run on workers of its own version.
          ...(deployment ? { workerDeploymentOptions: workerDeploymentOptions(deployment) } : {}),
          ...(traced ? { interceptors: { activity: traced.interceptors.activity } } : {}),
        };
        if (queue === 'default' && options.workflows !== false) {
          workerOptions.workflowsPath = modulePath('workflows/index');
          // With a codec key: workflows keep failure text out of search attributes (visibility.ts);
          // with tracing, the OpenTelemetry workflow interceptors and their span sink.
          workerOptions.interceptors = {
            ...workerOptions.interceptors,
            workflowModules: [
              ...workflowInterceptorModules(config.codecKey),
              ...(traced?.interceptors.workflowModules ?? []),
            ],
          };
          if (traced) workerOptions.sinks = traced.sinks;
        }
        return Worker.create(workerOptions);
      }),
    );
    logger.info(
      { queues: options.queues.map((q) => TASK_QUEUES[q]), metrics: config.metrics.address || 'disabled' },
      'workers running',
    );
    // Runtime's signal handlers call shutdown() on every worker; run() resolves when drained.
    await Promise.all(workers.map((w) => w.run()));
    logger.info('workers stopped');
  } finally {
    await composition.close().catch(() => undefined);
    await connection.close().catch(() => undefined);
    await metricsServer?.close().catch(() => undefined);
    // Exports the spans still buffered.
    await tracing?.shutdown();
  }
}
