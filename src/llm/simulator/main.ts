import { Command, InvalidArgumentError } from 'commander';
import { InputValidationError } from '../../domain/validation.js';
import { createLogger } from '../../observability/logger.js';
import { simulatorOptionsFromEnv } from './options.js';
import { createServingSimulator } from './server.js';

// Process entrypoint of the serving simulator (one per sandbox revision). Options come
// from QWENOPS_SIM_* (so a revision's env carries its faults), then flags. Prints ONE JSON
// line {"event":"listening","url":...} on stdout when ready; SIGTERM/SIGINT close it.

const number = (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('must be a number');
  return n;
};

const program = new Command('qwenops-serving-simulator')
  .description('SIMULATION of a vLLM OpenAI-compatible server for one model revision')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port (0 = any free port)', number, 0)
  .option('--model <name>', 'served model name')
  .option('--embedding-model <name>', 'model name /v1/embeddings answers to')
  .option('--revision <name>', 'revision label (shown in /health and /admin/stats)')
  .option('--storage-uri <uri>', 'where the weights would be (informational)')
  .option('--ttft-ms <ms>', 'mean time to first token', number)
  .option('--tpot-ms <ms>', 'mean time per output token', number)
  .option('--max-concurrency <n>', 'requests decoded at once; others queue', number)
  .option('--max-model-len <n>', 'context length', number)
  .option('--seed <n>', 'seed of text and jitter', number)
  .option('--startup-delay-ms <ms>', '/health answers 503 for this long', number)
  .option('--extra-latency-ms <ms>', 'fault: added to every TTFT', number)
  .option('--error-rate-pct <pct>', 'fault: share of requests failing', number)
  .allowExcessArguments(false);

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<Record<string, unknown>>();
  const logger = createLogger('serving-simulator', undefined, 2);
  const fromEnv = simulatorOptionsFromEnv(process.env);
  const pick = <K extends string>(...keys: K[]) =>
    Object.fromEntries(keys.filter((k) => flags[k] !== undefined).map((k) => [k, flags[k]]));
  const faults = {
    ...fromEnv.faults,
    ...(flags.extraLatencyMs !== undefined ? { extraLatencyMs: flags.extraLatencyMs as number } : {}),
    ...(flags.errorRatePct !== undefined ? { errorRatePct: flags.errorRatePct as number } : {}),
  };
  const simulator = await createServingSimulator(
    {
      ...fromEnv,
      ...pick(
        'host',
        'port',
        'model',
        'embeddingModel',
        'revision',
        'storageUri',
        'ttftMs',
        'tpotMs',
        'maxConcurrency',
        'maxModelLen',
        'seed',
        'startupDelayMs',
      ),
      faults,
    },
    { logger },
  );
  process.stdout.write(
    `${JSON.stringify({
      event: 'listening',
      url: simulator.url,
      port: simulator.port,
      model: simulator.options.model,
      revision: simulator.options.revision,
      simulated: true,
      pid: process.pid,
    })}\n`,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    simulator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  const message = err instanceof InputValidationError ? err.message : (err as Error).stack;
  process.stderr.write(`serving simulator failed to start: ${message}\n`);
  process.exit(2);
});
