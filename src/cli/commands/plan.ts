import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { InputValidationError } from '../../domain/validation.js';
import { modelShapeFromConfig, PLAN_FLAGS, planCapacity, renderPlan } from '../../planning/index.js';
import type { CliContext } from '../context.js';
import type { CommandGroup } from './index.js';

// `qwenops plan`: how many of which GPU a model needs, with which vLLM args, for a target load.
// The model is a path to a config.json (or a folder holding one) or a hub id whose config.json
// is in --configs-dir as <org>__<name>.json.

export const DEFAULT_CONFIGS_DIR = 'test/fixtures/model-configs';

const flagError = (flag: string, message: string) =>
  new InputValidationError('plan options', [{ path: flag, message }]);

/** The config.json for --model: a file, a folder with config.json, or <configsDir>/<org>__<name>.json. */
export function resolveModelConfig(model: string, configsDir: string): { file: string; config: unknown } {
  let file: string | undefined;
  if (existsSync(model)) {
    file = statSync(model).isDirectory() ? path.join(model, 'config.json') : model;
    if (!existsSync(file)) throw flagError('--model', `${model} is a folder without a config.json`);
  } else if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(model)) {
    file = path.join(configsDir, `${model.replace('/', '__')}.json`);
    if (!existsSync(file))
      throw flagError(
        '--model',
        `no config.json for hub id "${model}" (looked for ${file}); pass a path to the model's config.json`,
      );
  } else {
    throw flagError(
      '--model',
      `"${model}" is neither an existing config.json path nor a hub id like qwen/Qwen-7B-Chat`,
    );
  }
  try {
    return { file, config: JSON.parse(readFileSync(file, 'utf8')) };
  } catch (err) {
    throw flagError('--model', `${file}: not readable JSON (${(err as Error).message})`);
  }
}

/** A numeric flag as a number, or the raw text (zod then names the flag and the rule it broke). */
const numberOrText = (text: string): number | string =>
  /^\s*-?\d+(\.\d+)?\s*$/.test(text) ? Number(text) : text;

/**
 * The serving block a capacity plan proposes for a promotion of `model` (`promote --plan-gpu`):
 * explicit spec fields win over it, so the plan only fills what the user left open.
 */
export function plannedServing(
  model: string,
  options: {
    gpu: string;
    quant?: string;
    maxModelLen?: number | string;
    qps?: number | string;
    p99Ms?: number | string;
    configsDir?: string;
  },
): Record<string, unknown> {
  const { file, config } = resolveModelConfig(model, options.configsDir ?? DEFAULT_CONFIGS_DIR);
  const plan = planCapacity(model, modelShapeFromConfig(config, file), {
    model,
    gpu: options.gpu as never,
    quant: (options.quant ?? 'awq') as never,
    maxModelLen: (options.maxModelLen ?? 8192) as never,
    qps: (options.qps ?? 10) as never,
    p99Ms: (options.p99Ms ?? 300) as never,
  });
  return plan.serving as unknown as Record<string, unknown>;
}

/** The planned serving block under the one the spec gives: the spec's fields (and vLLM args) win. */
export function mergePlannedServing(
  planned: Record<string, unknown>,
  given: unknown,
): Record<string, unknown> {
  const spec = (given && typeof given === 'object' ? given : {}) as Record<string, unknown>;
  const vllm = spec.vllm && typeof spec.vllm === 'object' ? spec.vllm : {};
  return { ...planned, ...spec, vllm: { ...(planned.vllm as object), ...vllm } };
}

export const registerPlanCommands: CommandGroup = (program: Command, context: () => CliContext) => {
  program
    .command('plan')
    .description(
      'capacity plan for a model on a GPU type: weights, KV cache, tensor parallelism, replicas, vLLM args',
    )
    .requiredOption(
      `${PLAN_FLAGS.model} <id|path>`,
      'hub id with a config in --configs-dir, or a path to config.json',
    )
    .requiredOption(`${PLAN_FLAGS.gpu} <type>`, 'A10, T4, L4, A100-40G, A100-80G or H100-80G')
    .option(`${PLAN_FLAGS.quant} <awq|none>`, 'weight quantization', 'none')
    .option(`${PLAN_FLAGS.maxModelLen} <tokens>`, 'vLLM --max-model-len', numberOrText, 8192)
    .option(`${PLAN_FLAGS.qps} <req/s>`, 'target requests per second', numberOrText, 10)
    .option(`${PLAN_FLAGS.p99Ms} <ms>`, 'p99 latency target in ms (the plan: 300)', numberOrText, 300)
    .option('--configs-dir <dir>', 'where hub ids find their config.json', DEFAULT_CONFIGS_DIR)
    .action(
      (opts: {
        model: string;
        gpu: string;
        quant: string;
        maxModelLen: number | string;
        qps: number | string;
        p99Ms: number | string;
        configsDir: string;
      }) => {
        const ctx = context();
        const { file, config } = resolveModelConfig(opts.model, opts.configsDir);
        const shape = modelShapeFromConfig(config, file);
        const plan = planCapacity(opts.model, shape, {
          model: opts.model,
          gpu: opts.gpu as never,
          quant: opts.quant as never,
          maxModelLen: opts.maxModelLen as never,
          qps: opts.qps as never,
          p99Ms: opts.p99Ms as never,
        });
        ctx.print(plan, () => renderPlan(plan));
      },
    );
};
