import { type Command, InvalidArgumentError } from 'commander';
import { StoreAuditLog } from '../../audit/audit-log.js';
import { createClusterBackend } from '../../cluster/index.js';
import type { ServingRef } from '../../domain/serving-revision.js';
import {
  type BreakLeaseResult,
  type ServiceLeaseView,
  ServingService,
} from '../../services/serving-rollout.js';
import { createArtifactStore } from '../../storage/index.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exit-codes.js';
import type { CommandGroup } from './index.js';

// `qwenops lease`: the rollout lease a promotion or canary holds on a service.
//   show  <namespace>/<service>            holder, last renewal, expiry
//   break <namespace>/<service> [--force]  delete a stale lease (its workflow is gone), audited
// A lease whose holder still renews it is refused unless --force: breaking it lets a second
// rollout drive the service while the first one still does.

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** `<namespace>/<service>` into a ServingRef (the lease does not depend on the deployment mode). */
export function parseServiceArgument(text: string): ServingRef {
  const [namespace, name, ...rest] = text.split('/');
  if (rest.length > 0 || !namespace || !name || !DNS_LABEL.test(namespace) || !DNS_LABEL.test(name))
    throw new InvalidArgumentError(`expected <namespace>/<service> (DNS-1123 labels), got "${text}"`);
  return { namespace, name, deploymentMode: 'Serverless' };
}

function describeLease(lease: ServiceLeaseView): string {
  const state = lease.expired
    ? `expired${lease.expiresAt ? ` at ${lease.expiresAt}` : ''}`
    : `live for ${lease.secondsLeft}s more (until ${lease.expiresAt})`;
  return `held by ${lease.holder || '(nobody)'}, acquired ${lease.acquireTime ?? '?'}, last renewed ${lease.renewTime ?? 'never'}, ${state}`;
}

async function withServing<T>(ctx: CliContext, fn: (serving: ServingService) => Promise<T>): Promise<T> {
  const { config } = ctx;
  const cluster = await createClusterBackend(config.cluster);
  try {
    const store = await createArtifactStore(config.store);
    const serving = new ServingService(cluster, new StoreAuditLog(store), store, {
      leaseSeconds: config.cluster.rolloutLeaseSeconds,
    });
    return await fn(serving);
  } finally {
    await cluster.close();
  }
}

export const registerLeaseCommands: CommandGroup = (program: Command, context: () => CliContext) => {
  const lease = program
    .command('lease')
    .description('the rollout lease a promotion or canary holds on a service (show, break)');

  lease
    .command('show')
    .description('who holds the rollout lease of a service, and until when')
    .argument('<namespace/service>', 'the InferenceService, e.g. llm-prod/qwen-7b-chat', parseServiceArgument)
    .action(async (ref: ServingRef) => {
      const ctx = context();
      const view = await withServing(ctx, (serving) => serving.lease(ref));
      ctx.print(view ?? null, () =>
        view
          ? `${ref.namespace}/${ref.name}: ${describeLease(view)}`
          : `${ref.namespace}/${ref.name}: no rollout lease`,
      );
    });

  lease
    .command('break')
    .description(
      'delete the rollout lease of a service whose workflow is gone (terminated, lost); refuses a lease still being renewed unless --force',
    )
    .argument('<namespace/service>', 'the InferenceService, e.g. llm-prod/qwen-7b-chat', parseServiceArgument)
    .option(
      '--force',
      'break it even though its holder still renews it (the holder then fails at its next renewal)',
    )
    .option('--reason <text>', 'why (goes into the audit record)')
    .option('--requested-by <user>', 'who breaks it (audit records)', process.env.USER ?? 'cli')
    .action(async (ref: ServingRef, opts: { force?: boolean; reason?: string; requestedBy: string }) => {
      const ctx = context();
      const result: BreakLeaseResult = await withServing(ctx, (serving) =>
        serving.breakLease(ref, { force: Boolean(opts.force), actor: opts.requestedBy, reason: opts.reason }),
      );
      const what = `${ref.namespace}/${ref.name}`;
      ctx.print({ service: what, ...result }, () => {
        if (result.broken) return `${what}: broke the rollout lease (${describeLease(result.lease)})`;
        switch (result.reason) {
          case 'none':
            return `${what}: no rollout lease to break`;
          case 'live':
            return `${what}: refused: the lease is still being renewed, ${describeLease(result.lease as ServiceLeaseView)}; is workflow ${result.lease?.holder} still running? --force breaks it anyway`;
          case 'changed':
            return `${what}: refused: the lease changed while breaking it (a new holder took it); look again`;
        }
      });
      if (!result.broken && result.reason !== 'none') process.exitCode = EXIT.error;
    });
};
