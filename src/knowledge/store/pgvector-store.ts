// The pgvector adapter of the knowledge-store port, as one import: the port's types and
// errors, the store (./pgvector/store.ts) and the pool helpers. Its parts live in
// ./pgvector/, one file per concern; the composition code (../compose.ts) builds it.

export { ConcurrentReindexError, LeaseLostError, StoreError, UnsupportedServerError } from './errors.js';
export {
  createKnowledgePool,
  EMBEDDED_DATABASE_PORT,
  knowledgeDatabaseUrl,
  knowledgePoolFactory,
} from './pgvector/pool.js';
export { assertTableName } from './pgvector/schema.js';
export { DEFAULT_EF_SEARCH } from './pgvector/search.js';
export { assertPgvectorVersion, MIN_PGVECTOR_VERSION } from './pgvector/server.js';
export { PgVectorStore, type PgVectorStoreOptions } from './pgvector/store.js';
export type {
  Generation,
  Lease,
  SearchHit,
  SourceChanges,
  SourceRecord,
  SourceState,
  StoredChunk,
  TableMeta,
  VectorIndexKind,
} from './port.js';
