import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { type Command, Option } from 'commander';
import { reindexStatusQuery, TASK_QUEUES } from '../../../workflows/definitions.js';
import { reindexKnowledgeBase } from '../../../workflows/index.js';
import { StoreAuditLog } from '../../audit/audit-log.js';
import { RagAuditLog } from '../../audit/rag-audit.js';
import {
  REINDEX_MODES,
  type ReindexReport,
  type ReindexRequestInput,
  type ReindexStatus,
  reindexRequestSchema,
} from '../../domain/knowledge.js';
import { InputValidationError, parseInput } from '../../domain/validation.js';
import {
  type ComposeKnowledgeOptions,
  composeKnowledge,
  createChatClient,
  type KnowledgeComposition,
} from '../../knowledge/compose.js';
import { startEmbeddedPostgres } from '../../knowledge/pglite/embedded.js';
import { searchKnowledge } from '../../knowledge/retrieval.js';
import { EMBEDDED_DATABASE_PORT } from '../../knowledge/store/pgvector-store.js';
import type { SearchHit } from '../../knowledge/store/port.js';
import { createLogger } from '../../observability/logger.js';
import { guardedAsk } from '../../safety/guarded-ask.js';
import { createGuard, guardSettingsFromEnv } from '../../safety/index.js';
import { createArtifactStore } from '../../storage/index.js';
import type { CliContext } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { integerOption, portOption, tableNameOption } from '../options.js';
import { renderReindexProgressLine, renderReindexStatus, renderReportThroughput } from '../render.js';
import type { CommandGroup } from './index.js';

// `qwenops kb`: db (run the embedded database), reindex (through the workflow, or --local
// in this process), status, search, ask (RAG answer from the chat endpoint), rollback.

/** Top-k of a search: the HNSW search list (hnsw.ef_search) holds at most 1000. */
const MAX_TOP_K = 1000;

export interface SourceFlags {
  dir?: string;
  prefix?: string;
  table: string;
  mode: string;
}

/** The re-index request from CLI flags; bad flags fail naming the field. */
export function reindexRequestFromFlags(flags: SourceFlags, requestedBy: string): ReindexRequestInput {
  if ((flags.dir === undefined) === (flags.prefix === undefined)) {
    throw new InputValidationError('knowledge source', [
      { path: '--dir / --prefix', message: 'give exactly one: a local directory or an object-store prefix' },
    ]);
  }
  const request: ReindexRequestInput = {
    table: flags.table,
    mode: flags.mode as ReindexRequestInput['mode'],
    source:
      flags.dir !== undefined
        ? { kind: 'directory', path: path.resolve(flags.dir) }
        : { kind: 'object-store', prefix: flags.prefix as string },
    requestedBy,
  };
  parseInput('knowledge re-index request', reindexRequestSchema, request);
  return request;
}

export function renderReport(report: ReindexReport): string {
  const c = report.counters;
  const lines = [
    `re-index ${report.outcome} (${report.mode}) of ${report.table} from ${report.source}`,
    `  documents: ${c.documents} (${c.documentsChanged} new/changed, ${c.documentsUnchanged} unchanged, ${c.documentsRemoved} removed, ${c.documentsFailed} failed, ${c.documentsSkipped} skipped)`,
    `  chunks: ${c.chunksAdded} added, ${c.chunksKept} kept, ${c.chunksRemoved} removed; rows ${report.rowsBefore} -> ${report.rowsAfter}`,
    `  embedding: ${c.embeddingCalls} calls, ${c.embeddedInputs} inputs, ${c.vectorsReused} vectors reused (${report.embedder})`,
  ];
  const throughput = renderReportThroughput(report);
  if (throughput) lines.push(throughput);
  if (report.verification)
    lines.push(
      `  verification: recall@10 ${report.verification.recallAt10.toFixed(3)}, ${report.verification.rows} rows`,
    );
  if (report.reason) lines.push(`  reason: ${report.reason}`);
  for (const failure of report.failures) lines.push(`  not indexed: ${failure.source}: ${failure.reason}`);
  return lines.join('\n');
}

function renderHits(hits: SearchHit[]): string {
  if (hits.length === 0) return '(no results: is the knowledge base indexed?)';
  return hits
    .map((hit, i) => {
      const heading = Array.isArray(hit.metadata.headingPath)
        ? (hit.metadata.headingPath as string[]).join(' > ')
        : '';
      const preview = hit.content.replace(/\s+/g, ' ').slice(0, 160);
      return `${i + 1}. [${hit.score.toFixed(3)}] ${hit.source}${heading ? ` (${heading})` : ''}\n   ${preview}`;
    })
    .join('\n');
}

/**
 * While `kb reindex --wait` waits: the status query every `everyMs`, a line (phase, sources,
 * rates, ETA) when it changed. A failed query (a worker restarting, the run between two
 * runs of continue-as-new) is skipped. Returns the function that stops it.
 */
export function followReindexProgress(
  query: () => Promise<ReindexStatus>,
  everyMs: number,
  write: (line: string) => void,
): () => void {
  if (everyMs <= 0) return () => undefined;
  let last = '';
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    query()
      .then((status) => {
        const line = renderReindexProgressLine(status);
        if (line !== last) write(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
        last = line;
      })
      .catch(() => undefined)
      .finally(() => {
        busy = false;
      });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Runs `fn` with the knowledge adapters the config names (src/knowledge/compose.ts), then closes them. */
async function withKnowledge<T>(
  ctx: CliContext,
  fn: (knowledge: KnowledgeComposition) => Promise<T>,
  options: ComposeKnowledgeOptions = {},
): Promise<T> {
  const knowledge = composeKnowledge(ctx.config, { poolSize: 2, ...options });
  try {
    return await fn(knowledge);
  } finally {
    await knowledge.close();
  }
}

export const registerKnowledgeCommands: CommandGroup = (program: Command, context: () => CliContext) => {
  const kb = program.command('kb').description('the RAG knowledge base: re-index, search, ask');
  const tableOption = () =>
    new Option('--table <name>', 'knowledge table').default('qwen_knowledge').argParser(tableNameOption());

  kb.command('db')
    .description('run the embedded database (PGlite + pgvector, persisted on disk) until interrupted')
    .option('--data-dir <dir>', 'data directory (default: <stateDir>/pgdata)')
    .option('--port <port>', 'port on 127.0.0.1', portOption('--port'), EMBEDDED_DATABASE_PORT)
    .action(async (opts: { dataDir?: string; port: number }) => {
      const ctx = context();
      const logger = createLogger('embedded-postgres', ctx.config.log.level);
      const db = await startEmbeddedPostgres({
        dataDir: opts.dataDir ?? path.join(ctx.config.stateDir, 'pgdata'),
        port: opts.port,
        logger,
      });
      process.stderr.write(`embedded postgres at ${db.url} (QWENOPS_DATABASE_URL); Ctrl-C stops it\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await db.stop();
    });

  kb.command('reindex')
    .description('re-index the knowledge base from a directory or an object-store prefix')
    .option('--dir <path>', 'local directory of documents')
    .option('--prefix <prefix>', 'prefix in the artifact store bucket (MinIO/S3)')
    .addOption(
      new Option('--mode <mode>', 'incremental, full (shadow + swap), or auto')
        .choices([...REINDEX_MODES])
        .default('auto'),
    )
    .addOption(tableOption())
    .option('--local', 'run every phase in this process instead of the workflow (no Temporal needed)')
    .option('--wait', 'wait for the workflow and print its report; progress (rates, ETA) goes to stderr')
    .option(
      '--progress-every <seconds>',
      'with --wait: a progress line on stderr this often (when it changed; 0: none)',
      integerOption('--progress-every', { min: 0, max: 86_400 }),
      10,
    )
    .action(async (opts: SourceFlags & { local?: boolean; wait?: boolean; progressEvery: number }) => {
      const ctx = context();
      const request = reindexRequestFromFlags(opts, process.env.USER ?? 'cli');
      if (opts.local) {
        const logger = createLogger('kb-reindex', ctx.config.log.level);
        const parsed = reindexRequestSchema.parse(request);
        const artifactStore =
          parsed.source.kind === 'object-store' ? await createArtifactStore(ctx.config.store) : undefined;
        const report = await withKnowledge(
          ctx,
          (knowledge) => knowledge.indexer(parsed).runReindex(parsed, `cli-${randomUUID()}`),
          { logger, artifactStore },
        );
        ctx.print(report, () => renderReport(report));
        if (report.outcome !== 'succeeded') process.exitCode = EXIT.error;
        return;
      }
      const client = await ctx.client();
      const workflowId = `reindex-${request.table}`;
      let handle: Awaited<ReturnType<typeof client.workflow.start<typeof reindexKnowledgeBase>>>;
      try {
        handle = await client.workflow.start(reindexKnowledgeBase, {
          taskQueue: TASK_QUEUES.default,
          workflowId,
          args: [{ request }],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) {
          throw new Error(
            `a re-index of ${request.table} is already running (workflow ${workflowId}): see \`qwenops kb status\``,
          );
        }
        throw err;
      }
      if (!opts.wait) {
        ctx.print(
          { workflowId, runId: handle.firstExecutionRunId },
          () => `started ${workflowId} (qwenops kb status --table ${request.table})`,
        );
        return;
      }
      const stopProgress = followReindexProgress(
        // A query that waits (the run between two runs of continue-as-new, no worker) must
        // not hold up the next one.
        () => client.withDeadline(Date.now() + 5000, () => handle.query(reindexStatusQuery)),
        opts.progressEvery * 1000,
        (line) => process.stderr.write(`${line}\n`),
      );
      try {
        const report = await handle.result();
        ctx.print(report, () => renderReport(report));
      } catch (err) {
        if (!(err instanceof WorkflowFailedError)) throw err;
        const details = (err.cause as { details?: unknown[] } | undefined)?.details?.[0] as
          | ReindexReport
          | undefined;
        const message = (err.cause as Error | undefined)?.message ?? err.message;
        ctx.print({ workflowId, error: message, report: details }, () =>
          details ? renderReport(details) : `re-index failed: ${message}`,
        );
        process.exitCode = EXIT.error;
      } finally {
        stopProgress();
      }
    });

  kb.command('status')
    .description("the running (or last) re-index's phase, progress and counters")
    .addOption(tableOption())
    .action(async (opts: { table: string }) => {
      const ctx = context();
      const client = await ctx.client();
      const status: ReindexStatus = await client.workflow
        .getHandle(`reindex-${opts.table}`)
        .query(reindexStatusQuery);
      ctx.print(status, () => renderReindexStatus(status));
    });

  kb.command('search')
    .description('top-k chunks for a question, with sources and cosine scores')
    .argument('<question>', 'the question')
    .option('-k, --top <k>', 'how many chunks', integerOption('--top', { max: MAX_TOP_K }), 5)
    .addOption(tableOption())
    .action(async (question: string, opts: { top: number; table: string }) => {
      const ctx = context();
      const hits = await withKnowledge(ctx, (knowledge) =>
        searchKnowledge({ store: knowledge.store(opts.table), embedder: knowledge.embedder }, question, {
          k: opts.top,
        }),
      );
      ctx.print(hits, () => renderHits(hits));
    });

  kb.command('ask')
    .description('answer from the knowledge base only (RAG prompt, temperature 0.3); says 我不知道 otherwise')
    .argument('<question>', 'the question')
    .option('-k, --top <k>', 'chunks given as references', integerOption('--top', { max: MAX_TOP_K }), 4)
    .option(
      '--chat-url <url>',
      'OpenAI-compatible API root (…/v1) serving the chat model (default: llm.chatUrl, QWENOPS_CHAT_URL; http://127.0.0.1:8000/v1)',
    )
    .option('--model <name>', 'chat model name (default: llm.chatModel, QWENOPS_CHAT_MODEL; qwen-7b-chat)')
    .option('--show-prompt', 'print the messages sent to the model')
    .option(
      '--lexicon <file>',
      'sensitive-word lexicon (default: QWENOPS_SAFETY_LEXICON, else the shipped one; README "Safety filter")',
    )
    .option('--user <id>', "who asks (the audit record's user_id)", process.env.USER ?? 'cli')
    .addOption(tableOption())
    .action(
      async (
        question: string,
        opts: {
          top: number;
          chatUrl?: string;
          model?: string;
          showPrompt?: boolean;
          table: string;
          lexicon?: string;
          user: string;
        },
      ) => {
        const ctx = context();
        const { llm } = ctx.config;
        const chat = createChatClient({ ...llm, chatUrl: opts.chatUrl ?? llm.chatUrl });
        const settings = guardSettingsFromEnv();
        const guard = await createGuard({ ...settings, lexiconFile: opts.lexicon ?? settings.lexiconFile });
        // The audit line goes to stdout for log shippers, or to stderr when stdout is --json output.
        const audit = new RagAuditLog(await createArtifactStore(ctx.config.store), {
          logger: createLogger('rag-audit', 'info', ctx.json ? 2 : 1),
        });
        const result = await withKnowledge(ctx, (knowledge) =>
          guardedAsk(
            {
              store: knowledge.store(opts.table),
              embedder: knowledge.embedder,
              chat,
              guard,
              audit,
              userId: opts.user,
            },
            question,
            { model: opts.model ?? llm.chatModel, k: opts.top },
          ),
        );
        ctx.print(result, () =>
          [
            ...(opts.showPrompt ? result.messages.map((m) => `--- ${m.role}\n${m.content}`) : []),
            result.answer,
            '',
            'references:',
            renderHits(result.references),
          ].join('\n'),
        );
      },
    );

  kb.command('rollback')
    .description('put the previous generation (before the last full re-index) back live')
    .addOption(tableOption())
    .action(async (opts: { table: string }) => {
      const ctx = context();
      const rows = await withKnowledge(ctx, async (knowledge) => {
        const store = knowledge.store(opts.table);
        await store.rollback();
        return store.count('live');
      });
      ctx.print(
        { table: opts.table, rows },
        () => `${opts.table}: previous generation is live again (${rows} chunks)`,
      );
    });

  kb.command('unlock')
    .description(
      'free a base whose re-index is gone (terminated, lost): deletes its expired lease; refuses one its run still renews unless --force',
    )
    .addOption(tableOption())
    .option(
      '--force',
      'delete it even though its run still renews it (that run then fails at its next write)',
    )
    .option('--reason <text>', 'why (goes into the audit record)')
    .option('--requested-by <user>', 'who unlocks it (audit records)', process.env.USER ?? 'cli')
    .action(async (opts: { table: string; force?: boolean; reason?: string; requestedBy: string }) => {
      const ctx = context();
      const result = await withKnowledge(ctx, (knowledge) =>
        knowledge.store(opts.table).breakLease({ force: Boolean(opts.force) }),
      );
      if (result.broken) {
        const audit = new StoreAuditLog(await createArtifactStore(ctx.config.store));
        await audit.record({
          actor: opts.requestedBy,
          action: 'knowledge.lease-break',
          target: `knowledge ${opts.table}`,
          details: {
            runId: result.broken.runId,
            holder: result.broken.holder,
            mode: result.broken.mode,
            expiresAt: result.broken.expiresAt,
            forced: Boolean(opts.force) && Date.parse(result.broken.expiresAt) > Date.now(),
            ...(opts.reason ? { reason: opts.reason } : {}),
          },
        });
      }
      ctx.print({ table: opts.table, ...result }, () => {
        if (result.broken)
          return `${opts.table}: unlocked (lease of run ${result.broken.runId} by ${result.broken.holder}, until ${result.broken.expiresAt})`;
        if (result.live)
          return `${opts.table}: refused: run ${result.live.runId} (${result.live.holder}) still renews its lease, until ${result.live.expiresAt}; is it still running? --force unlocks anyway`;
        return `${opts.table}: not locked`;
      });
      if (result.live) process.exitCode = EXIT.error;
    });
};
