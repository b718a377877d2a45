import type pg from 'pg';
import type { QwenopsConfig } from '../config/config.js';
import type { KnowledgeSourceSpec, ReindexRequest } from '../domain/knowledge.js';
import { OpenAiClient } from '../llm/client.js';
import { createLogger, type Logger } from '../observability/logger.js';
import type { ArtifactStore } from '../storage/port.js';
import { createEmbedder } from './embedders/index.js';
import type { Embedder } from './embedders/port.js';
import { KnowledgeIndexer } from './indexer.js';
import { createKnowledgeSource } from './sources/index.js';
import type { KnowledgeSource } from './sources/port.js';
import { knowledgePoolFactory, PgVectorStore } from './store/pgvector-store.js';
import type { KnowledgeStore } from './store/port.js';

// The knowledge part of the composition: the one place that builds the knowledge adapters
// (the pgvector store of a base, the source a request names, the embedder, the chat
// client of RAG answers) and the re-index service over them, from the typed config. The
// worker's composition root (workers/compose.ts) and the CLI both build through here;
// activities and commands receive what it built.

/** What the knowledge services run on, built once per process. */
export interface KnowledgeAdapters {
  readonly embedder: Embedder;
  /** The store of one base (a table; `qwen_knowledge` by default). */
  store(table?: string): KnowledgeStore;
  /** The source a re-index request names. */
  source(spec: KnowledgeSourceSpec): KnowledgeSource;
  /** The re-index service of one request: the store of its table, its source, the embedder. */
  indexer(request: Pick<ReindexRequest, 'table' | 'source'>): KnowledgeIndexer;
}

export interface KnowledgeWiring {
  /** The knowledge database pool, asked for on first use: a process that never touches a base never connects. */
  pool: () => pg.Pool;
  embedder: Embedder;
  logger?: Logger;
  /** Object-store sources are read from it; without it they are refused. */
  artifactStore?: ArtifactStore;
  /**
   * Directories a directory source must lie under (config.confinement.knowledgeRoots: on a
   * worker the path comes from workflow input). Unset: any directory (the CLI indexing as
   * its own user).
   */
  directoryRoots?: readonly string[];
}

/** The adapters over one pool and embedder. */
export function knowledgeAdapters(wiring: KnowledgeWiring): KnowledgeAdapters {
  const logger = wiring.logger ?? createLogger('knowledge', 'silent');
  const store = (table?: string): KnowledgeStore =>
    new PgVectorStore(wiring.pool(), { table, logger: wiring.logger });
  const source = (spec: KnowledgeSourceSpec): KnowledgeSource =>
    createKnowledgeSource(spec, wiring.artifactStore, { directoryRoots: wiring.directoryRoots });
  return {
    embedder: wiring.embedder,
    store,
    source,
    indexer: (request) =>
      new KnowledgeIndexer({
        store: store(request.table),
        source: source(request.source),
        embedder: wiring.embedder,
        logger,
      }),
  };
}

export interface KnowledgeComposition extends KnowledgeAdapters {
  /** Ends the database pool (when one was opened). */
  close(): Promise<void>;
}

/** The adapters over a pool of their own on `databaseUrl`, opened on first use. */
export function openKnowledge(
  wiring: Omit<KnowledgeWiring, 'pool'> & {
    /** Unset: the embedded database (`qwenops kb db`). */
    databaseUrl?: string;
    /** Connections of the pool (4 by default). */
    poolSize?: number;
  },
): KnowledgeComposition {
  const pool = knowledgePoolFactory({ databaseUrl: wiring.databaseUrl }, wiring.poolSize);
  return { ...knowledgeAdapters({ ...wiring, pool: pool.get }), close: pool.close };
}

export interface ComposeKnowledgeOptions {
  logger?: Logger;
  artifactStore?: ArtifactStore;
  directoryRoots?: readonly string[];
  poolSize?: number;
  /** A database other than knowledge.databaseUrl (the demo's embedded one). */
  databaseUrl?: string;
}

/**
 * The knowledge adapters the config names: a lazily opened pool on knowledge.databaseUrl
 * (QWENOPS_DATABASE_URL; the embedded database by default) and the configured embedder
 * (bge-m3 over QWENOPS_EMBEDDINGS_URL, else the labelled lexical stand-in).
 */
export function composeKnowledge(
  config: Pick<QwenopsConfig, 'knowledge'>,
  options: ComposeKnowledgeOptions = {},
): KnowledgeComposition {
  return openKnowledge({
    ...options,
    databaseUrl: options.databaseUrl ?? config.knowledge.databaseUrl,
    embedder: createEmbedder(config.knowledge, options.logger),
  });
}

/**
 * The chat endpoint RAG answers come from: the config's llm section (QWENOPS_CHAT_URL,
 * QWENOPS_LLM_API_KEY), or the endpoint a caller was given (the demo's promoted service).
 */
export function createChatClient(llm: { chatUrl: string; apiKey?: string }): OpenAiClient {
  return new OpenAiClient({ baseUrl: llm.chatUrl, apiKey: llm.apiKey });
}
