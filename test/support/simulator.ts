import type { SimulatorOptionsInput } from '../../src/llm/simulator/options.js';
import { createServingSimulator, type ServingSimulator } from '../../src/llm/simulator/server.js';
import { createLogger } from '../../src/observability/logger.js';

// An in-process serving simulator on a free loopback port, for tests that need an
// OpenAI-compatible server (knowledge embeddings, load tests, analysis probes).
// Logs are silent unless QWENOPS_TEST_LOG_LEVEL asks for them.

export interface TestSimulator extends ServingSimulator {
  /** OpenAI API root: `${url}/v1`. */
  baseUrl: string;
}

export async function startSimulator(options: SimulatorOptionsInput = {}): Promise<TestSimulator> {
  const simulator = await createServingSimulator(
    { port: 0, ...options },
    { logger: createLogger('serving-simulator', process.env.QWENOPS_TEST_LOG_LEVEL ?? 'silent') },
  );
  return Object.assign(simulator, { baseUrl: `${simulator.url}/v1` });
}
