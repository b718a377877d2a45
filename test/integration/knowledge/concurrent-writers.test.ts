import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reindexRequestSchema } from '../../../src/domain/knowledge.js';
import { LexicalEmbedder } from '../../../src/knowledge/embedders/lexical.js';
import { KnowledgeIndexer } from '../../../src/knowledge/indexer.js';
import { DirectorySource } from '../../../src/knowledge/sources/directory.js';
import { createKnowledgePool, PgVectorStore } from '../../../src/knowledge/store/pgvector-store.js';
import { createLogger } from '../../../src/observability/logger.js';
import { type RunningPglite, startPglite } from '../../support/pglite.js';
import { stopAll } from '../../support/processes.js';

// Several writers on one base at once: the same slice written twice concurrently (a retried
// batch racing the attempt it replaces, or two batches overlapping after the listing moved)
// leaves every chunk exactly once, in the shadow (no unique index while it loads: the
// write skips a source its sources row already has at that hash) and through
// copyFromLive (unchanged sources moved from live). Disjoint batches at once (parallel
// batches) neither deadlock nor lose the lease. On PGlite (one session) the wire bridge
// serialises transactions; the writes' own ordering (the fenced lease row first) is what
// keeps a real server deadlock-free too.

const logger = createLogger('test', process.env.QWENOPS_TEST_LOG_LEVEL ?? 'silent');
let db: RunningPglite;
let pool: pg.Pool;
let corpus: string;
const DOCUMENTS = 60;

beforeAll(async () => {
  corpus = await mkdtemp(path.join(os.tmpdir(), 'qwenops-kb-writers-'));
  for (let i = 0; i < DOCUMENTS; i++) {
    const dir = path.join(corpus, i % 2 ? '制度' : 'docs');
    await mkdir(dir, { recursive: true });
    const body = Array.from(
      { length: 3 + (i % 3) },
      (_, j) => `第${i}号文件第${j}段：员工应当按照流程办理相关事项，并保留相应的书面记录。`,
    ).join('\n\n');
    await writeFile(path.join(dir, `doc-${String(i).padStart(2, '0')}.md`), `# 文件${i}\n\n${body}`);
  }
  db = await startPglite();
  pool = createKnowledgePool(db.url, 6);
}, 120_000);

afterAll(async () => {
  await pool?.end();
  await stopAll();
  if (corpus) await rm(corpus, { recursive: true, force: true });
});

function setup(table: string) {
  const store = new PgVectorStore(pool, { table, logger });
  const indexer = new KnowledgeIndexer({
    store,
    source: new DirectorySource(corpus),
    embedder: new LexicalEmbedder(),
    logger,
  });
  const request = reindexRequestSchema.parse({
    table,
    source: { kind: 'directory', path: corpus },
    mode: 'full',
    verify: { probes: 5 },
    chunking: { targetTokens: 48, overlapTokens: 8 },
    batch: { sourcesPerActivity: 20, sourcesPerCommit: 3 },
  });
  return { store, indexer, request };
}

async function shadowRows(table: string) {
  const { rows } = await pool.query<{ n: string; ids: string }>(
    `SELECT count(*) AS n, count(DISTINCT chunk_id) AS ids FROM ${table}__shadow`,
  );
  return { rows: Number(rows[0]?.n), distinct: Number(rows[0]?.ids) };
}

describe('concurrent writers on one base', () => {
  it('the same slice written twice at once leaves each chunk once (embedded and copied from live)', async () => {
    const table = 'kb_writers';
    const { store, indexer, request } = setup(table);
    // 1) Into an empty base: every chunk is embedded and COPYed into the shadow.
    // 2) Again over the live base: every source is moved by copyFromLive.
    for (const [round, runId] of ['embedded', 'copied'].entries()) {
      const plan = await indexer.begin(request, `writers-${round}`);
      let expectedRows = 0;
      for (let position = 0; position < DOCUMENTS; position += 20) {
        const [a, b] = await Promise.all([
          indexer.indexBatch(plan, request, 20, { position }),
          indexer.indexBatch(plan, request, 20, { position }),
        ]);
        expect(b.chunksInBatch).toBe(a.chunksInBatch);
        expect(b.lastKey).toBe(a.lastKey);
        expectedRows += a.chunksInBatch;
      }
      const shadow = await shadowRows(table);
      expect({ runId, ...shadow }).toEqual({ runId, rows: expectedRows, distinct: expectedRows });
      await indexer.buildIndex(plan, request);
      const verification = await indexer.verify(plan, request, expectedRows);
      expect(verification.reason).toBeUndefined();
      expect(verification.passed).toBe(true);
      await indexer.swap(plan, request);
      await indexer.finish(plan);
      expect(await store.count('live')).toBe(expectedRows);
    }
  });

  it('disjoint batches at once (parallel batches) write every source once, no deadlock, lease kept', async () => {
    const table = 'kb_writers_parallel';
    const { store, indexer, request } = setup(table);
    const plan = await indexer.begin(request, 'writers-parallel');
    // Six batches of 10 at once, half of them from a cursor, half listing from the start.
    let previous: string | undefined;
    const cursors: Array<{ position: number; startAfter: string } | undefined> = [];
    let position = 0;
    for await (const entry of new DirectorySource(corpus).list()) {
      if (position % 10 === 0)
        cursors.push(previous && (position / 10) % 2 ? { position, startAfter: previous } : undefined);
      previous = entry.key;
      position++;
    }
    const results = await Promise.all(
      cursors.map((cursor, i) => indexer.indexBatch(plan, request, 10, { position: i * 10, cursor })),
    );
    expect(results.map((r) => r.nextPosition)).toEqual(cursors.map((_, i) => i * 10 + 10));
    const expectedRows = results.reduce((sum, r) => sum + r.chunksInBatch, 0);
    expect(await shadowRows(table)).toEqual({ rows: expectedRows, distinct: expectedRows });
    const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}_sources__shadow`);
    expect(Number(rows[0]?.n)).toBe(DOCUMENTS);
    expect((await store.currentLease())?.runId).toBe('writers-parallel');
    await indexer.abort(plan);
  });
});
