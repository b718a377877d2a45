#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { InputValidationError } from '../domain/validation.js';
import { COMMAND_GROUPS } from './commands/index.js';
import { CliContext } from './context.js';
import { EXIT } from './exit-codes.js';

// `qwenops`: start, watch and steer promotions and canaries; run the embedded stack.
export function buildProgram(): { program: Command; context: () => CliContext } {
  const program = new Command();
  let ctx: CliContext | undefined;
  const context = () => {
    ctx ??= new CliContext(program.opts());
    return ctx;
  };
  program
    .name('qwenops')
    .description('Promote open-source LLMs to production on Kubernetes + KServe + vLLM with Temporal')
    .option('--config <file>', 'config file (YAML or JSON); env QWENOPS_* overrides it')
    .option('--address <host:port>', 'Temporal frontend address (QWENOPS_TEMPORAL_ADDRESS)')
    .option('--namespace <ns>', 'Temporal namespace (QWENOPS_TEMPORAL_NAMESPACE)')
    .option('--json', 'machine-readable output')
    .showHelpAfterError()
    .exitOverride();
  for (const register of COMMAND_GROUPS) register(program, context);
  return { program, context };
}

export async function main(argv: string[]): Promise<number> {
  const { program, context } = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof InputValidationError) {
      process.stderr.write(`qwenops: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`qwenops: ${(err as Error).message ?? String(err)}\n`);
    return EXIT.error;
  } finally {
    await context()
      .close()
      .catch(() => undefined);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`qwenops: ${String(err)}\n`);
      process.exit(EXIT.error);
    },
  );
}
