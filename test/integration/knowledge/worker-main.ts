import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createKnowledgeActivities } from '../../../activities/knowledge.js';
import { LexicalEmbedder } from '../../../src/knowledge/embedders/lexical.js';
import type { Embedder } from '../../../src/knowledge/embedders/port.js';
import { createKnowledgePool } from '../../../src/knowledge/store/pgvector-store.js';
import { createLogger } from '../../../src/observability/logger.js';
import { TASK_QUEUES } from '../../../workflows/definitions.js';

// A knowledge activity worker in its own process, so a test can SIGKILL it mid-load.
// EMBED_DELAY_MS slows each embedding call down to give the test time to do that;
// MAX_CONCURRENT_ACTIVITIES caps the batches it runs at once (so two workers share them).

const logger = createLogger('knowledge-worker', process.env.QWENOPS_LOG_LEVEL ?? 'info');
const lexical = new LexicalEmbedder();
const delay = Number(process.env.EMBED_DELAY_MS ?? 0);
const maxConcurrent = process.env.MAX_CONCURRENT_ACTIVITIES
  ? Number(process.env.MAX_CONCURRENT_ACTIVITIES)
  : undefined;
const embedder: Embedder = {
  model: lexical.model,
  dimensions: lexical.dimensions,
  maxInputTokens: lexical.maxInputTokens,
  label: lexical.label,
  stats: () => lexical.stats(),
  async embed(texts) {
    if (delay > 0) await sleep(delay);
    return lexical.embed(texts);
  },
};
const pool = createKnowledgePool(process.env.DATABASE_URL as string);
const connection = await NativeConnection.connect({ address: process.env.TEMPORAL_ADDRESS as string });
const worker = await Worker.create({
  connection,
  taskQueue: TASK_QUEUES.knowledge,
  ...(maxConcurrent ? { maxConcurrentActivityTaskExecutions: maxConcurrent } : {}),
  activities: createKnowledgeActivities({
    pool: () => pool,
    embedder,
    logger,
    heartbeatIntervalMs: 200,
    // The test's corpus is a temp dir: that is the confinement root here.
    directoryRoots: [os.tmpdir()],
  }),
});
logger.info('knowledge worker ready');
await worker.run();
