import path from 'node:path';
import { parseEngineName } from '../../cluster/sandbox/engine.js';
import { runDemo } from '../demo.js';
import { startEmbeddedStack } from '../embedded-stack.js';
import type { CommandGroup } from './index.js';

// `qwenops dev` (start the embedded stack and keep it) and `qwenops demo` (run the main job on it).

const portOption = (value: string) => {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port ${value}`);
  return port;
};

export const registerStackCommands: CommandGroup = (program) => {
  const withPorts = (command: ReturnType<typeof program.command>) =>
    command
      .option('--state-dir <dir>', 'where the stack keeps its data', '.qwenops')
      .option('--temporal-port <port>', 'Temporal frontend port', portOption, 7233)
      .option('--ui-port <port>', 'Temporal UI port', portOption, 8233)
      .option('--sandbox-port <port>', 'sandbox cluster control API port', portOption, 7480)
      .option('--metrics-port <port>', 'worker Prometheus port', portOption, 9464)
      .option('--database-port <port>', 'embedded PostgreSQL port', portOption, 54329);

  withPorts(
    program
      .command('dev')
      .description('start the embedded stack (Temporal + UI, sandbox cluster, worker) and keep it running'),
  ).action(async (opts) => {
    const stack = await startEmbeddedStack({
      stateDir: path.resolve(opts.stateDir),
      temporalPort: opts.temporalPort,
      uiPort: opts.uiPort,
      sandboxPort: opts.sandboxPort,
      metricsPort: opts.metricsPort,
      databasePort: opts.databasePort,
      freshCluster: true,
      log: (line) => process.stdout.write(`[dev] ${line}\n`),
    });
    const exports = Object.entries(stack.env)
      .map(([k, v]) => `export ${k}=${v}`)
      .join('\n');
    process.stdout.write(
      `[dev] ready. Temporal UI: ${stack.uiUrl}\n[dev] to use the CLI from another shell:\n${exports}\n[dev] Ctrl-C stops everything\n`,
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await stack.stop();
  });

  withPorts(
    program
      .command('demo')
      .description(
        'run the main job on the embedded stack: one promotion to production, one that rolls back',
      ),
  )
    .option('--keep-running', 'leave the stack running afterwards (Ctrl-C stops it)')
    .option(
      '--engine <engine>',
      'simulator (fast, labelled simulation) or vllm (the tiny Qwen2 model on real engines; needs make setup)',
      process.env.QWENOPS_ENGINE || 'simulator',
    )
    .action(async (opts) => {
      process.exitCode = await runDemo({
        engine: parseEngineName(opts.engine),
        stateDir: path.resolve(opts.stateDir),
        keepRunning: Boolean(opts.keepRunning),
        temporalPort: opts.temporalPort,
        uiPort: opts.uiPort,
        sandboxPort: opts.sandboxPort,
        metricsPort: opts.metricsPort,
        databasePort: opts.databasePort,
      });
    });
};
