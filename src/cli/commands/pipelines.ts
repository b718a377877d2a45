import { type WorkflowHandle, WorkflowUpdateFailedError } from '@temporalio/client';
import type { Command } from 'commander';
import {
  abortUpdate,
  approveUpdate,
  pauseUpdate,
  rejectUpdate,
  resumeUpdate,
  setTrafficStepUpdate,
  statusQuery,
} from '../../../workflows/definitions.js';
import { parseCanaryReleaseSpec } from '../../domain/canary.js';
import { DECISION_GATES, type DecisionGate } from '../../domain/control.js';
import { parsePromotionSpec } from '../../domain/promotion-spec.js';
import type { PipelineStatus } from '../../domain/status.js';
import { InputValidationError } from '../../domain/validation.js';
import { createDataConverter } from '../../temporal/data-converter.js';
import type { CliContext } from '../context.js';
import { integerOption } from '../options.js';
import {
  listPipelines,
  pendingActivities,
  releaseWorkflowId,
  startOrAttachCanaryRelease,
  startPromotion,
} from '../pipeline-client.js';
import { renderStatus } from '../render.js';
import { applySets, readSpecFile } from '../spec-input.js';
import { CANCEL_REASON, concludeFinished, waitForRun } from '../wait.js';
import type { CommandGroup } from './index.js';
import { mergePlannedServing, plannedServing } from './plan.js';

// promote, canary, status, approve, reject, abort, pause, resume, list.

const collect = (value: string, previous: string[]) => [...previous, value];

async function watchToEnd(ctx: CliContext, workflowId: string): Promise<number> {
  return waitForRun(ctx, workflowId, { uiUrl: uiLink(ctx, workflowId) });
}

function secondsOption(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 1 || n > 3600) {
    throw new InputValidationError('--progress-every', [{ path: 'seconds', message: 'must be 1..3600' }]);
  }
  return n;
}

async function sendUpdate(
  ctx: CliContext,
  workflowId: string,
  name: string,
  send: (handle: WorkflowHandle) => Promise<PipelineStatus>,
): Promise<void> {
  const client = await ctx.client();
  const handle = client.workflow.getHandle(workflowId);
  try {
    const status = await send(handle);
    ctx.print(status, () => `${name}: done\n${renderStatus(status)}`);
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      throw new Error(`${name} refused by ${workflowId}: ${err.cause?.message ?? err.message}`);
    }
    if (err instanceof Error && /already completed/i.test(err.message)) {
      throw new Error(
        `${name} refused: ${workflowId} has already finished (see "qwenops status ${workflowId}")`,
      );
    }
    throw err;
  }
}

function gateOption(value: string): DecisionGate {
  if (!(DECISION_GATES as readonly string[]).includes(value)) {
    throw new InputValidationError('--gate', [
      { path: 'gate', message: `must be one of ${DECISION_GATES.join(', ')}` },
    ]);
  }
  return value as DecisionGate;
}

export const registerPipelineCommands: CommandGroup = (program: Command, context) => {
  program
    .command('promote')
    .description(
      'start a model promotion (promoteModel): download, AWQ, validate, canary, load test, promote',
    )
    .argument('<model>', 'hub model id, e.g. qwen/Qwen-7B-Chat')
    .option('--revision <rev>', 'hub branch, tag or commit')
    .option('--spec <file>', 'promotion spec (JSON or YAML; "-" for stdin); flags override it')
    .option(
      '--set <path=value>',
      'override one spec field, repeatable (e.g. --set canary.steps=[10,50,100])',
      collect,
      [],
    )
    .option('--id <workflowId>', 'workflow id (default: promote-<model>-<revision>)')
    .option('--requested-by <user>', 'who asks (audit records)', process.env.USER ?? 'cli')
    .option('--no-approvals', 'skip both approval gates')
    .option(
      '--plan-gpu <type>',
      'fill `serving` from `qwenops plan` for this GPU type (AWQ; --plan-qps, --plan-p99-ms); spec fields win',
    )
    .option('--plan-qps <req/s>', 'target load for --plan-gpu', '10')
    .option('--plan-p99-ms <ms>', 'p99 target for --plan-gpu', '300')
    .option('--wait', 'follow progress until the promotion ends; exit 0 promoted, 2 rolled back, 1 otherwise')
    .action(async (model: string, opts) => {
      const ctx = context();
      const raw: Record<string, unknown> = opts.spec ? readSpecFile(opts.spec) : {};
      if (opts.planGpu) {
        const planned = plannedServing(model, {
          gpu: opts.planGpu,
          qps: Number(opts.planQps),
          p99Ms: Number(opts.planP99Ms),
          maxModelLen:
            (raw.serving as { vllm?: { maxModelLen?: number } } | undefined)?.vllm?.maxModelLen ?? 8192,
        });
        raw.serving = mergePlannedServing(planned, raw.serving);
      }
      raw.model = model;
      if (opts.revision) raw.hub = { ...(raw.hub as object), revision: opts.revision };
      raw.requestedBy ??= opts.requestedBy;
      if (opts.approvals === false)
        raw.approvals = { ...(raw.approvals as object), beforeCanary: false, beforePromote: false };
      applySets(raw, opts.set);
      const spec = parsePromotionSpec(raw);
      const handle = await startPromotion(await ctx.client(), spec, opts.id);
      ctx.print(
        {
          workflowId: handle.workflowId,
          runId: handle.firstExecutionRunId,
          uiUrl: uiLink(ctx, handle.workflowId),
        },
        () =>
          `started ${handle.workflowId}\n  UI: ${uiLink(ctx, handle.workflowId)}\n  follow: qwenops status ${handle.workflowId} --follow`,
      );
      if (opts.wait) process.exitCode = await watchToEnd(ctx, handle.workflowId);
    });

  program
    .command('canary')
    .description('start a canary release (canaryRelease) of a new revision on an existing service')
    .requiredOption('--service <namespace/name>', 'the InferenceService, e.g. llm-prod/qwen-7b-chat')
    .option('--storage-uri <uri>', 'weights of the new revision (s3://, pvc://, hf://, file://)')
    .option('--spec <file>', 'canary release spec (JSON or YAML)')
    .option('--set <path=value>', 'override one spec field, repeatable', collect, [])
    .option(
      '--id <workflowId>',
      'workflow id; a second start with the same id attaches to that release instead of starting another',
    )
    .option(
      '--release <name>',
      'derive the id from the service and this release (a commit SHA, a tag): canary-<namespace>-<name>-<release>',
    )
    .option(
      '--requested-by <user>',
      'who asks (audit records)',
      process.env.CI ? 'ci' : (process.env.USER ?? 'cli'),
    )
    .option(
      '--wait',
      'wait for the end; exit 0 promoted, 2 rolled back, 4 service held by another release, 1 error (see README, Exit codes)',
    )
    .option(
      '--abort-on-cancel',
      `with --wait: on SIGINT/SIGTERM abort the release ("${CANCEL_REASON}") and exit 6, instead of detaching (exit 5)`,
    )
    .option('--junit <file>', 'write a JUnit XML report: one test case per analysis step and per gate')
    .option('--summary <file>', 'append a Markdown summary (e.g. "$GITHUB_STEP_SUMMARY")')
    .option(
      '--progress-every <seconds>',
      'while waiting, print a progress line at least this often, even when nothing changes',
      secondsOption,
      30,
    )
    .action(async (opts) => {
      const ctx = context();
      const raw: Record<string, unknown> = opts.spec ? readSpecFile(opts.spec) : {};
      const [namespace, name, extra] = String(opts.service).split('/');
      if (!namespace || !name || extra !== undefined) {
        throw new InputValidationError('canary', [
          { path: '--service', message: 'must be <namespace>/<name>' },
        ]);
      }
      if (opts.id && opts.release) {
        throw new InputValidationError('canary', [
          { path: '--release', message: '--id and --release are exclusive (--release derives the id)' },
        ]);
      }
      raw.serving = { ...(raw.serving as object), namespace, name };
      if (opts.storageUri) raw.storageUri = opts.storageUri;
      raw.requestedBy ??= opts.requestedBy;
      applySets(raw, opts.set);
      const spec = parseCanaryReleaseSpec(raw);
      const workflowId: string | undefined =
        opts.id ?? (opts.release ? releaseWorkflowId({ namespace, name }, String(opts.release)) : undefined);
      const { handle, state } = await startOrAttachCanaryRelease(await ctx.client(), spec, workflowId);
      const id = handle.workflowId;
      const ui = uiLink(ctx, id);
      const waitOptions = {
        junit: opts.junit as string | undefined,
        summary: opts.summary as string | undefined,
        abortOnCancel: Boolean(opts.abortOnCancel),
        by: spec.requestedBy,
        progressEverySeconds: opts.progressEvery as number,
        startState: state,
        uiUrl: ui,
      };
      const said =
        state === 'started'
          ? `started ${id}`
          : state === 'running'
            ? `${id} is already running: ${opts.wait ? 'attaching to it' : 'not starting another'}`
            : `${id} has already finished: not starting it again`;
      if (state === 'finished') {
        process.stderr.write(`${said}\n`);
        process.exitCode = await concludeFinished(ctx, id, waitOptions);
        return;
      }
      if (opts.wait) {
        // One JSON document on stdout (the final one); the rest is progress on stderr.
        process.stderr.write(`${said}\n  UI: ${ui}\n`);
        process.exitCode = await waitForRun(ctx, id, waitOptions);
        return;
      }
      ctx.print({ workflowId: id, startState: state, uiUrl: ui }, () => `${said}\n  UI: ${ui}`);
    });

  program
    .command('status')
    .description('show a pipeline: stage, progress, traffic split, last analysis, pending decision')
    .argument('<workflowId>')
    .option('--follow', 'keep printing changes until it ends (exit code as with --wait)')
    .action(async (workflowId: string, opts) => {
      const ctx = context();
      if (opts.follow) {
        process.exitCode = await watchToEnd(ctx, workflowId);
        return;
      }
      const client = await ctx.client();
      const handle = client.workflow.getHandle(workflowId);
      const status = await handle.query(statusQuery);
      const codec = createDataConverter(ctx.config.codecKey).payloadCodecs?.[0];
      const pending = await pendingActivities(handle, codec).catch(() => []);
      ctx.print({ ...status, pendingActivities: pending }, () => renderStatus(status, pending));
    });

  const decision = (name: 'approve' | 'reject', description: string) =>
    program
      .command(name)
      .description(description)
      .argument('<workflowId>')
      .option('--by <user>', 'who decides (audit records)', process.env.USER ?? 'cli')
      .option('--comment <text>', 'why')
      .option(
        '--gate <gate>',
        `the gate this answers (${DECISION_GATES.join(', ')}); default: the one the pipeline waits at now, printed`,
        gateOption,
      )
      .action(async (workflowId: string, opts: { by: string; comment?: string; gate?: DecisionGate }) => {
        const update = name === 'approve' ? approveUpdate : rejectUpdate;
        await sendUpdate(context(), workflowId, name, async (h) => {
          // The workflow refuses a decision for any other gate than the one it waits at, so a
          // decision typed for one gate can never answer the next.
          let gate = opts.gate;
          if (!gate) {
            const status = await h.query(statusQuery);
            if (status.outcome !== 'running') {
              throw new Error(
                `${name} refused: ${workflowId} has already finished (${status.outcome}; see "qwenops status ${workflowId}")`,
              );
            }
            gate = status.pendingDecision?.gate;
            if (!gate) {
              throw new Error(
                `${name} refused: ${workflowId} is not waiting for a decision (stage ${status.stage})`,
              );
            }
          }
          if (!opts.gate) process.stderr.write(`${name}: answering gate ${gate}\n`);
          return h.executeUpdate(update, { args: [{ gate, by: opts.by, comment: opts.comment }] });
        });
      });
  decision(
    'approve',
    'approve the gate a pipeline waits at (before canary, before promote, or an inconclusive analysis)',
  );
  decision('reject', 'reject the gate a pipeline waits at (rolls back / stops)');

  program
    .command('abort')
    .description('abort a pipeline: a running canary rolls back at once, without analysis')
    .argument('<workflowId>')
    .option('--by <user>', 'who aborts', process.env.USER ?? 'cli')
    .requiredOption('--reason <text>', 'why (shown in status, search attributes and the failure)')
    .action(async (workflowId: string, opts) => {
      await sendUpdate(context(), workflowId, 'abort', (h) =>
        h.executeUpdate(abortUpdate, { args: [{ by: opts.by, reason: opts.reason }] }),
      );
    });

  for (const [name, update, description] of [
    ['pause', pauseUpdate, 'pause a running canary before its next traffic step'],
    ['resume', resumeUpdate, 'resume a paused canary'],
  ] as const) {
    program
      .command(name)
      .description(description)
      .argument('<workflowId>')
      .option('--by <user>', 'who', process.env.USER ?? 'cli')
      .action(async (workflowId: string, opts) => {
        await sendUpdate(context(), workflowId, name, (h) =>
          h.executeUpdate(update, { args: [{ by: opts.by }] }),
        );
      });
  }

  program
    .command('set-step')
    .description('jump a running canary to a later step of its plan (it is still analysed)')
    .argument('<workflowId>')
    .argument('<percent>', 'one of the plan steps above the current one')
    .option('--by <user>', 'who', process.env.USER ?? 'cli')
    .action(async (workflowId: string, percent: string, opts) => {
      const value = Number(percent);
      if (!Number.isFinite(value))
        throw new InputValidationError('set-step', [{ path: 'percent', message: 'must be a number' }]);
      await sendUpdate(context(), workflowId, 'set-step', (h) =>
        h.executeUpdate(setTrafficStepUpdate, { args: [{ percent: value, by: opts.by }] }),
      );
    });

  program
    .command('list')
    .description('list promotions and canary releases with their stage and outcome')
    .option('--running', 'only running ones')
    .option('--limit <n>', 'at most n rows (1-10000)', integerOption('--limit', { max: 10_000 }), 50)
    .action(async (opts: { running?: boolean; limit: number }) => {
      const ctx = context();
      const rows = await listPipelines(await ctx.client(), {
        running: opts.running,
        limit: opts.limit,
      });
      ctx.print(rows, () =>
        rows.length === 0
          ? 'no pipelines'
          : rows
              .map(
                (r) =>
                  `${r.workflowId.padEnd(40)} ${r.type.padEnd(14)} ${r.status.padEnd(10)} ${(r.stage ?? '').padEnd(16)} ${(r.outcome ?? '').padEnd(12)} ${r.model ?? r.service ?? ''}`,
              )
              .join('\n'),
      );
    });
};

export function uiLink(ctx: CliContext, workflowId: string): string {
  return `${ctx.config.temporal.uiUrl}/namespaces/${ctx.config.temporal.namespace}/workflows/${encodeURIComponent(workflowId)}`;
}
