import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createLogger, type Logger } from '../../observability/logger.js';
import { FaultInjector } from './faults.js';
import { GenerationEngine } from './generation.js';
import { createVllmMetrics } from './metrics.js';
import {
  type FaultSettings,
  type FaultSettingsInput,
  parseSimulatorOptions,
  type SimulatorOptions,
  type SimulatorOptionsInput,
} from './options.js';
import { createRouter } from './routes.js';
import { SimulatorRecorder, type SimulatorStats } from './stats.js';
import { LatencyModel } from './timing.js';

// The serving simulator: an OpenAI-compatible server imitating vLLM for ONE revision,
// because no GPU serves a model here. It is the project's one stand-in and says so on
// every surface (start-up log, /health, /v1/models owned_by, x-qwenops-simulated header).
// This file only wires the parts and runs the HTTP server: routes (./routes.ts,
// ./embeddings.ts), the engine and its answers (./generation.ts, ./answers.ts), the
// latency model (./timing.ts), injected faults (./faults.ts) and counters (./stats.ts).

export { SIMULATED_HEADER } from './http-io.js';
export { OWNED_BY } from './routes.js';
export type { SimulatorStats } from './stats.js';

export interface ServingSimulator {
  url: string;
  port: number;
  readonly options: SimulatorOptions;
  close(): Promise<void>;
  /** Merges the given fault settings into the current ones. */
  setFaults(faults: Partial<FaultSettingsInput>): FaultSettings;
  /** Back to the faults the simulator started with (env / options). */
  clearFaults(): FaultSettings;
  stats(): SimulatorStats;
  resetStats(): void;
}

export async function createServingSimulator(
  input: SimulatorOptionsInput = {},
  context: { logger?: Logger } = {},
): Promise<ServingSimulator> {
  const options = parseSimulatorOptions(input);
  const logger = context.logger ?? createLogger('serving-simulator');
  const startedAt = performance.now();

  // The gauges read the engine lazily: it is built below, and read only on a scrape.
  const metrics = createVllmMetrics(options.model, {
    running: () => engine.slots.running,
    waiting: () => engine.slots.waiting,
    kvCacheUsage: () => engine.kvCacheUsage(),
  });
  const recorder = new SimulatorRecorder(metrics);
  const faults = new FaultInjector(options.faults, options.seed, startedAt, recorder, logger);
  const engine = new GenerationEngine(options, faults, new LatencyModel(options), recorder);
  const stats = (): SimulatorStats =>
    recorder.snapshot({
      model: options.model,
      revision: options.revision,
      running: engine.slots.running,
      waiting: engine.slots.waiting,
      faults: faults.current,
    });

  const server = http.createServer(
    createRouter({
      options,
      logger,
      recorder,
      faults,
      engine,
      readyAt: startedAt + options.startupDelayMs,
      stats,
    }),
  );
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  // Load tests open many connections at once.
  server.maxHeadersCount = 200;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `http://${host}:${port}`;
  logger.info(
    {
      url,
      model: options.model,
      revision: options.revision,
      options: { ...options, faults: faults.current },
    },
    'SIMULATION: qwenops serving simulator (imitates a vLLM OpenAI server; no model is loaded)',
  );

  return {
    url,
    port,
    options,
    setFaults: (settings) => faults.set(settings),
    clearFaults: () => faults.clear(),
    stats,
    resetStats: () => recorder.reset(),
    async close() {
      engine.abortAll();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
