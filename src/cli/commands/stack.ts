import path from 'node:path';
import { parseEngineName } from '../../cluster/sandbox/engine.js';
import { runDemo } from '../demo.js';
import { DEFAULT_STACK_PORTS, startEmbeddedStack } from '../embedded-stack.js';
import { portOption } from '../options.js';
import type { CommandGroup } from './index.js';

// `qwenops dev` (start the embedded stack and keep it) and `qwenops demo` (run the main job on it).

export const registerStackCommands: CommandGroup = (program) => {
  const withPorts = (command: ReturnType<typeof program.command>) =>
    command
      .option('--state-dir <dir>', 'where the stack keeps its data', '.qwenops')
      .option(
        '--temporal-port <port>',
        'Temporal frontend port',
        portOption('--temporal-port'),
        DEFAULT_STACK_PORTS.temporal,
      )
      .option('--ui-port <port>', 'Temporal UI port', portOption('--ui-port'), DEFAULT_STACK_PORTS.ui)
      .option(
        '--sandbox-port <port>',
        'sandbox cluster control API port',
        portOption('--sandbox-port'),
        DEFAULT_STACK_PORTS.sandbox,
      )
      // No commander default: unset means "9464, or a free port if 9464 is taken" (logged).
      .option(
        '--metrics-port <port>',
        `worker Prometheus port (default ${DEFAULT_STACK_PORTS.metrics}, or a free one if that is in use)`,
        portOption('--metrics-port'),
      )
      .option(
        '--database-port <port>',
        'embedded PostgreSQL port',
        portOption('--database-port'),
        DEFAULT_STACK_PORTS.database,
      );

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
    // The CLI needs no metrics address; exporting it would make a worker started from that
    // shell try to bind the stack's own metrics port.
    const exports = Object.entries(stack.env)
      .filter(([k]) => k !== 'QWENOPS_METRICS_ADDRESS')
      .map(([k, v]) => `export ${k}=${v}`)
      .join('\n');
    process.stdout.write(
      `[dev] ready. Temporal UI: ${stack.uiUrl}\n[dev] worker metrics: http://${stack.metricsAddress}/metrics\n[dev] to use the CLI from another shell:\n${exports}\n[dev] Ctrl-C stops everything\n`,
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
