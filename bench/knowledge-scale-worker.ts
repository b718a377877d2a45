import os from 'node:os';
import { ApplicationFailure } from '@temporalio/activity';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createKnowledgeActivities } from '../activities/knowledge.js';
import { OpenAiEmbedder } from '../src/knowledge/embedders/openai.js';
import { createKnowledgePool } from '../src/knowledge/store/pgvector-store.js';
import { createLogger } from '../src/observability/logger.js';
import { TASK_QUEUES } from '../workflows/definitions.js';

// One knowledge worker of the knowledge-scale benchmark, in a process of its own (as in
// production: workers/knowledge.ts), polling the knowledge task queue of the bench's dev
// server with the production activities over the OpenAI-compatible embedder. On SIGTERM it
// drains and prints one JSON line: its peak RSS and the embedder's throughput record.
//   TEMPORAL_ADDRESS, DATABASE_URL, EMBEDDINGS_URL, EMBEDDINGS_MODEL
//   EMBED_CONCURRENCY           requests in flight from this worker (its share of the server)
//   MAX_CONCURRENT_ACTIVITIES   batch activities this worker runs at once
//   STOP_AFTER_INDEX=1          fail the HNSW build activity at once (non-retryable), so the
//                               run ends after its index phase (the workflow then drops the
//                               shadow table); the bench measures the index phase only
// Its report also holds its index batches' span (epoch ms of the first batch start and the
// last batch end on this worker), their summed durations and the chunks they wrote.

// ERROR: the HNSW build activity fails on purpose when STOP_AFTER_INDEX is set.
Runtime.install({ logger: new DefaultLogger('ERROR') });
const logger = createLogger('knowledge-scale-worker', process.env.QWENOPS_LOG_LEVEL ?? 'warn');
const embedder = new OpenAiEmbedder({
  baseUrl: process.env.EMBEDDINGS_URL as string,
  model: process.env.EMBEDDINGS_MODEL ?? 'BAAI/bge-m3',
  concurrency: Number(process.env.EMBED_CONCURRENCY ?? 2),
  encodingFormat: 'base64',
  logger,
});
const pool = createKnowledgePool(process.env.DATABASE_URL as string, 2);
const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS as string });
const activities = createKnowledgeActivities({
  pool: () => pool,
  embedder,
  logger,
  directoryRoots: [os.tmpdir()],
});
const index = {
  batches: 0,
  chunks: 0,
  firstStartMs: undefined as number | undefined,
  lastEndMs: undefined as number | undefined,
  /** Sum of the batch activities' durations (they overlap: several run at once). */
  batchMs: 0,
};
const indexBatch = activities.indexKnowledgeSourceBatch;
activities.indexKnowledgeSourceBatch = async (...args: Parameters<typeof indexBatch>) => {
  const started = Date.now();
  index.firstStartMs ??= started;
  const result = await indexBatch(...args);
  index.batchMs += Date.now() - started;
  index.batches++;
  index.chunks += result.counters.chunksAdded;
  index.lastEndMs = Date.now();
  return result;
};
if (process.env.STOP_AFTER_INDEX === '1') {
  activities.buildKnowledgeVectorIndex = async () => {
    throw ApplicationFailure.nonRetryable(
      'knowledge-scale bench: stops after the index phase',
      'BenchStopsAfterIndex',
    );
  };
}
const worker = await Worker.create({
  connection,
  taskQueue: TASK_QUEUES.knowledge,
  maxConcurrentActivityTaskExecutions: Number(process.env.MAX_CONCURRENT_ACTIVITIES ?? 4),
  activities,
});
process.once('SIGTERM', () => worker.shutdown());
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
await worker.run();
await pool.end();
await embedder.close();
await connection.close();
process.stdout.write(
  `${JSON.stringify({
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    throughput: embedder.throughput(),
    index,
    stats: embedder.stats(),
  })}\n`,
);
