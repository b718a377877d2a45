import path from 'node:path';
import { parseEngineName } from '../../cluster/sandbox/engine.js';
import { runDemo } from '../demo.js';
import { DEFAULT_STACK_PORTS, type EmbeddedStack, startEmbeddedStack } from '../embedded-stack.js';
import { EXIT } from '../exit-codes.js';
import { DEMO_MODEL, seedDemoMirror } from '../mirror-seed.js';
import { portOption } from '../options.js';
import type { CommandGroup } from './index.js';

// `qwenops dev` (start the embedded stack and keep it) and `qwenops demo` (run the main job on it).

const STOP_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM'] as const;

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
    const say = (line: string) => process.stdout.write(`[dev] ${line}\n`);
    // After SIGHUP the terminal may be gone: a failed write must not cut the stop short.
    process.stdout.on('error', () => undefined);
    // SIGHUP (terminal closed), SIGINT (Ctrl-C), SIGTERM: stop every process, then exit. The
    // processes run in process groups of their own, so only this one gets the signal.
    const stopping = new AbortController();
    let received: NodeJS.Signals | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) {
        say(`${signal}: already stopping (${received})`);
        return;
      }
      received = signal;
      say(`${signal} received: stopping every process of the stack`);
      stopping.abort();
    };
    for (const name of STOP_SIGNALS) process.on(name, onSignal);
    try {
      let stack: EmbeddedStack;
      try {
        stack = await startEmbeddedStack({
          stateDir: path.resolve(opts.stateDir),
          temporalPort: opts.temporalPort,
          uiPort: opts.uiPort,
          sandboxPort: opts.sandboxPort,
          metricsPort: opts.metricsPort,
          databasePort: opts.databasePort,
          freshCluster: true,
          log: say,
          signal: stopping.signal,
        });
      } catch (err) {
        if (!received) throw err;
        say(`stopped by ${received} before the stack was ready; no process is left`);
        return;
      }
      // What the demo seeds: a promotion started from the UI finds qwen/Qwen-7B-Chat.
      const mirrorDir = stack.env.QWENOPS_HUB_MIRROR_DIR as string;
      const mirror = await seedDemoMirror(mirrorDir);
      say(
        `local model mirror ${mirrorDir}: ${DEMO_MODEL} ${[
          ...(mirror.seeded.length > 0
            ? [`${mirror.seeded.join(', ')} seeded with a FIXTURE (not real weights)`]
            : []),
          ...(mirror.present.length > 0 ? [`${mirror.present.join(', ')} already there`] : []),
        ].join('; ')}`,
      );
      // The CLI needs no metrics address; exporting it would make a worker started from that
      // shell try to bind the stack's own metrics port.
      const exports = Object.entries(stack.env)
        .filter(([k]) => k !== 'QWENOPS_METRICS_ADDRESS')
        .map(([k, v]) => `export ${k}=${v}`)
        .join('\n');
      say(
        `ready. Temporal UI: ${stack.uiUrl}\n[dev] worker metrics: http://${stack.metricsAddress}/metrics\n[dev] to use the CLI from another shell:\n${exports}\n[dev] Ctrl-C stops everything`,
      );
      const signalled = new Promise<void>((resolve) => {
        if (stopping.signal.aborted) resolve();
        else stopping.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      const failure = await Promise.race([signalled, stack.failure]);
      await stack.stop();
      if (failure) {
        say(`FAILED: ${failure.message}`);
        process.exitCode = EXIT.error;
      } else {
        say(`stopped (${received}); no process of the stack is left`);
      }
    } finally {
      for (const name of STOP_SIGNALS) process.removeListener(name, onSignal);
    }
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
