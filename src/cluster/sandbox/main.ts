import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { InputValidationError, issuesFromZod } from '../../domain/validation.js';
import { createLogger } from '../../observability/logger.js';
import { passThroughEnv, startSandboxDaemon } from './daemon.js';
import { parseEngineName } from './engine.js';
import { loadSecrets } from './secrets.js';

// Process entrypoint of the sandbox cluster daemon. Prints ONE JSON line
// {"event":"listening","url":...} on stdout when ready; SIGTERM/SIGINT stop every Job,
// revision and proxy it started, then exit.

const jobCommandsSchema = z.record(z.enum(['download', 'quantize', 'evaluate']), z.array(z.string()).min(1));

const integer = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new InvalidArgumentError('must be a port number (0 = any)');
  return n;
};

const program = new Command('qwenops-sandbox')
  .description('the embedded sandbox cluster: Jobs and KServe-like serving as local processes')
  .option('--port <port>', 'control API port (0 = any free port)', integer, 7480)
  .option('--state-dir <dir>', 'where Job and service state and logs are kept', '.qwenops/sandbox')
  .option('--secrets-file <file>', 'JSON {secretName: {key: value}} (else QWENOPS_SANDBOX_SECRETS)')
  .allowExcessArguments(false);

function positiveEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

async function main(): Promise<void> {
  program.parse();
  const flags = program.opts<{ port: number; stateDir: string; secretsFile?: string }>();
  const logger = createLogger('sandbox-cluster', undefined, 2);
  let jobCommands = {};
  if (process.env.QWENOPS_SANDBOX_JOB_COMMANDS) {
    const parsed = jobCommandsSchema.safeParse(JSON.parse(process.env.QWENOPS_SANDBOX_JOB_COMMANDS));
    if (!parsed.success)
      throw new InputValidationError('QWENOPS_SANDBOX_JOB_COMMANDS', issuesFromZod(parsed.error));
    jobCommands = parsed.data;
  }
  const stateDir = path.resolve(flags.stateDir);
  const daemon = await startSandboxDaemon({
    port: flags.port,
    stateDir,
    secrets: loadSecrets(process.env, flags.secretsFile),
    childEnv: passThroughEnv(process.env),
    jobCommands,
    engine: parseEngineName(process.env.QWENOPS_ENGINE),
    crashLimit: positiveEnv('QWENOPS_SANDBOX_CRASH_LIMIT', 3),
    progressDeadlineSeconds: positiveEnv('QWENOPS_SANDBOX_PROGRESS_DEADLINE_SECONDS', 600),
    retryBackoffMs: Number(process.env.QWENOPS_SANDBOX_RETRY_BACKOFF_MS ?? 1000),
    killGraceMs: Number(process.env.QWENOPS_SANDBOX_KILL_GRACE_MS ?? 5000),
    logger,
  });
  logger.info({ url: daemon.url, stateDir }, 'sandbox cluster ready');
  process.stdout.write(
    `${JSON.stringify({ event: 'listening', url: daemon.url, port: daemon.port, stateDir, tokenFile: daemon.tokenFile, pid: process.pid })}\n`,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: killing every Job, revision and proxy');
    daemon.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `sandbox cluster failed to start: ${err instanceof InputValidationError ? err.message : (err as Error).stack}\n`,
  );
  process.exit(2);
});
