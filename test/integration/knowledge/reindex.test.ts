import iconv from 'iconv-lite';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ReindexRequestInput, reindexRequestSchema } from '../../../src/domain/knowledge.js';
import { LexicalEmbedder } from '../../../src/knowledge/embedders/lexical.js';
import { KnowledgeIndexer } from '../../../src/knowledge/indexer.js';
import { ObjectStoreSource } from '../../../src/knowledge/sources/object-store.js';
import {
  assertPgvectorVersion,
  ConcurrentReindexError,
  createKnowledgePool,
  PgVectorStore,
  UnsupportedServerError,
} from '../../../src/knowledge/store/pgvector-store.js';
import { createLogger } from '../../../src/observability/logger.js';
import { minimalPdf } from '../../support/minimal-pdf.js';
import { type RunningMinio, startMinio } from '../../support/minio.js';
import { type RunningPglite, startPglite } from '../../support/pglite.js';
import { stopAll } from '../../support/processes.js';

// The re-index service end to end against real servers: documents in MinIO, the embedded
// PGlite database over the wire protocol, the deterministic lexical embedder.
//
// What PGlite can and cannot prove: it is ONE backend session behind the wire server,
// which runs one transaction at a time (a connection inside a transaction keeps the
// backend until it commits). So "a reader never sees a partial index" here proves the
// design (the shadow is loaded apart from the live table and swapped by renames in one
// transaction), not Postgres lock behaviour; and advisory locks cannot conflict between
// two connections (same session). The concurrent-start refusal is therefore tested on
// the lease it guards, which is real SQL on a real database.

const logger = createLogger('test', process.env.QWENOPS_TEST_LOG_LEVEL ?? 'silent');
let minio: RunningMinio;
let db: RunningPglite;
let pool: pg.Pool;
let table = 'kb_a';
let runs = 0;

const utf8 = (s: string) => Buffer.from(s, 'utf8');
const BASE: Record<string, Buffer> = {
  'hr/leave.md': utf8(
    '# 年假政策\n\n员工入职满一年后享有五天带薪年假。每多工作一年增加一天，最多十五天。\n\n## 申请方式\n\n至少提前三个工作日在人事系统提交申请，直属经理审批后生效。',
  ),
  'hr/sick.md': utf8('# 病假规定\n\n病假需提供二级以上医院的证明。每年前五天病假工资全额发放。'),
  'finance/expense.html': utf8(
    '<html><head><title>报销流程</title></head><body><h1>报销流程</h1><p>差旅费用须在出差结束后三十天内提交报销单，并附发票原件。</p></body></html>',
  ),
  'it/security-gbk.txt': iconv.encode(
    '信息安全规定：禁止将客户数据拷贝到个人设备。外出办公必须使用公司配发的加密U盘。',
    'gbk',
  ),
  'faq.jsonl': utf8(
    '{"question":"加班有调休吗？","answer":"工作日加班可按一比一调休，需在三个月内使用。"}\n',
  ),
  'handbook.pdf': minimalPdf(
    [['员工手册：考勤制度。', '上班时间为上午九点至下午六点，迟到三次记旷工半天。']],
    '员工手册',
  ),
};

async function upload(prefix: string, files: Record<string, Buffer>): Promise<void> {
  for (const [key, body] of Object.entries(files)) await minio.store.put(`${prefix}/${key}`, body);
}

function setup(prefix: string, overrides: Partial<ReindexRequestInput> = {}) {
  const embedder = new LexicalEmbedder();
  const store = new PgVectorStore(pool, { table, logger });
  const source = new ObjectStoreSource(minio.store, prefix);
  const indexer = new KnowledgeIndexer({ store, source, embedder, logger });
  const request = reindexRequestSchema.parse({
    table,
    source: { kind: 'object-store', prefix },
    verify: { probes: 5 },
    chunking: { targetTokens: 128, overlapTokens: 16 },
    ...overrides,
  });
  const run = (mode?: 'incremental' | 'full' | 'auto') =>
    indexer.runReindex({ ...request, mode: mode ?? request.mode }, `run-${++runs}`);
  return { embedder, store, source, indexer, request, run };
}

/** Every row's identity and transaction id: unchanged means not written at all. */
async function rowVersions(name: string): Promise<string[]> {
  const { rows } = await pool.query<{ v: string }>(
    `SELECT chunk_id || ':' || xmin::text AS v FROM ${name} ORDER BY chunk_id`,
  );
  return rows.map((r) => r.v);
}

beforeAll(async () => {
  [minio, db] = await Promise.all([startMinio(), startPglite()]);
  pool = createKnowledgePool(db.url, 4);
});

afterAll(async () => {
  await pool?.end();
  await minio?.stop();
  await stopAll();
});

let prefixCounter = 0;
let prefix = '';
beforeEach(() => {
  prefixCounter++;
  prefix = `kb-${prefixCounter}`;
  table = `kb_t${prefixCounter}`;
});

describe('knowledge re-index (MinIO + PGlite)', () => {
  it('indexes every format from MinIO, GBK decoded, undecodable files reported, and answers a search', async () => {
    await upload(prefix, {
      ...BASE,
      'broken/latin1.txt': Buffer.from('caf\xe9 cr\xe8me br\xfbl\xe9e', 'latin1'),
      'image.png': Buffer.from([1, 2, 3]),
    });
    const { run, store, embedder } = setup(prefix);
    const report = await run();
    expect(report.outcome).toBe('succeeded');
    expect(report.mode).toBe('full');
    expect(report.counters.documents).toBe(8);
    expect(report.counters.documentsChanged).toBe(6);
    expect(report.counters.documentsSkipped).toBe(1);
    expect(report.failures).toEqual([
      { source: 'broken/latin1.txt', reason: expect.stringMatching(/not valid UTF-8.*GB18030/) },
    ]);
    expect(report.rowsAfter).toBe(report.counters.chunksAdded);

    const { rows } = await pool.query(
      `SELECT content, metadata FROM ${table} WHERE source = 'it/security-gbk.txt'`,
    );
    expect(rows[0].content).toContain('禁止将客户数据拷贝到个人设备');
    const sources = await pool.query(`SELECT source, encoding, format FROM ${table}_sources ORDER BY source`);
    expect(sources.rows).toContainEqual({
      source: 'it/security-gbk.txt',
      encoding: 'gb18030',
      format: 'text',
    });
    expect(sources.rows).toContainEqual({ source: 'handbook.pdf', encoding: null, format: 'pdf' });

    // What was stored is what the embedder made (binary COPY round trip, float4 precision).
    const stored = await pool.query<{
      content: string;
      embedding: string;
      metadata: Record<string, unknown>;
    }>(`SELECT content, embedding::text AS embedding, metadata FROM ${table} ORDER BY chunk_id LIMIT 1`);
    const row = stored.rows[0] as { content: string; embedding: string; metadata: Record<string, unknown> };
    const [expected] = await embedder.embed([row.content]);
    const actual = row.embedding.slice(1, -1).split(',').map(Number);
    expect(actual).toHaveLength(1024);
    for (const [i, x] of actual.entries()) expect(x).toBeCloseTo((expected as Float32Array)[i] as number, 6);
    expect(row.metadata).toMatchObject({
      position: expect.any(Number),
      headingPath: expect.any(Array),
      uri: expect.stringMatching(/^s3:\/\//),
    });

    const [question] = await embedder.embed(['年假有几天？怎么申请年假']);
    const hits = await store.search(question as Float32Array, 3);
    expect(hits[0]?.source).toBe('hr/leave.md');
    expect(hits[0]?.metadata).toMatchObject({ title: '年假政策', format: 'markdown' });
  });

  it('handles an empty corpus', async () => {
    const { run, store } = setup(`${prefix}-nothing-here`);
    const report = await run();
    expect(report.outcome).toBe('succeeded');
    expect(report.counters.documents).toBe(0);
    expect(report.rowsAfter).toBe(0);
    expect(await store.exists('live')).toBe(true);
    const again = await run('incremental');
    expect(again.outcome).toBe('succeeded');
    expect(again.counters.embeddingCalls).toBe(0);
  });

  it('splits an oversized document into chunks that all fit the budget', async () => {
    const paragraphs = Array.from(
      { length: 400 },
      (_, i) => `第${i}条：员工在工作时间内应当遵守公司的各项规章制度，按时完成分配的工作任务。`,
    );
    const runOn = '没有标点的超长段落'.repeat(300);
    await upload(prefix, {
      'big/manual.md': utf8(`# 员工大手册\n\n${paragraphs.join('\n')}\n\n## 附录\n\n${runOn}`),
    });
    const { run } = setup(prefix);
    const report = await run();
    expect(report.outcome).toBe('succeeded');
    expect(report.counters.chunksAdded).toBeGreaterThan(100);
    const { rows } = await pool.query<{ max: number; n: string }>(
      `SELECT max((metadata->>'tokens')::int) AS max, count(*) AS n FROM ${table}`,
    );
    expect(rows[0]?.max).toBeLessThanOrEqual(128);
    expect(Number(rows[0]?.n)).toBe(report.counters.chunksAdded);
  });

  it('reruns an unchanged corpus with zero embedding calls and zero writes, then applies only what changed', async () => {
    await upload(prefix, BASE);
    const { run, store } = setup(prefix);
    const first = await run();
    expect(first.outcome).toBe('succeeded');
    const before = await rowVersions(table);
    const sourceVersions = async () =>
      (
        await pool.query<{ v: string }>(
          `SELECT source || ':' || xmin::text AS v FROM ${table}_sources ORDER BY source`,
        )
      ).rows.map((r) => r.v);
    const beforeSources = await sourceVersions();

    const second = await run();
    expect(second.mode).toBe('incremental');
    expect(second.counters).toMatchObject({
      embeddingCalls: 0,
      embeddedInputs: 0,
      writeTransactions: 0,
      chunksAdded: 0,
      chunksRemoved: 0,
      documentsUnchanged: 6,
    });
    expect(second.counters.chunksKept).toBe(first.rowsAfter);
    expect(await rowVersions(table)).toEqual(before);
    expect(await sourceVersions()).toEqual(beforeSources);

    // One paragraph added to one file: only that file's new chunks are embedded.
    const leave = `${(BASE['hr/leave.md'] as Buffer).toString()}\n\n## 特别规定\n\n婚假为十天，需在结婚登记后一年内休完。`;
    await minio.store.put(`${prefix}/hr/leave.md`, leave);
    const third = await run();
    expect(third.counters.documentsChanged).toBe(1);
    expect(third.counters.documentsUnchanged).toBe(5);
    expect(third.counters.chunksAdded).toBeGreaterThan(0);
    expect(third.counters.embeddedInputs).toBe(third.counters.chunksAdded);
    const untouched = (await rowVersions(table)).filter((v) => before.includes(v));
    expect(untouched.length).toBe(before.length - third.counters.chunksRemoved);
    expect(await store.duplicateChunkIds()).toBe(0);
  });

  it("removes a deleted source's chunks", async () => {
    await upload(prefix, BASE);
    const { run } = setup(prefix);
    await run();
    const { rows: had } = await pool.query(
      `SELECT count(*)::int AS n FROM ${table} WHERE source = 'hr/sick.md'`,
    );
    expect(had[0].n).toBeGreaterThan(0);
    await minio.store.delete(`${prefix}/hr/sick.md`);
    const report = await run();
    expect(report.counters.documentsRemoved).toBe(1);
    expect(report.counters.chunksRemoved).toBe(had[0].n);
    expect(report.counters.embeddingCalls).toBe(0);
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE source = 'hr/sick.md'`);
    expect(rows[0].n).toBe(0);
    const { rows: sources } = await pool.query(
      `SELECT count(*)::int AS n FROM ${table}_sources WHERE source = 'hr/sick.md'`,
    );
    expect(sources[0].n).toBe(0);
  });

  it('refuses a concurrent re-index of the same base and leaves the holder undisturbed', async () => {
    await upload(prefix, BASE);
    const { indexer, request, store } = setup(prefix);
    const plan = await indexer.begin(request, 'holder-run');
    const error = await indexer.begin(request, 'second-run').catch((err: unknown) => err);
    expect(error).toBeInstanceOf(ConcurrentReindexError);
    expect((error as Error).message).toContain('holder-run');
    // Another base is independent.
    const other = new PgVectorStore(pool, { table: `${table}_other` });
    await expect(other.acquireLease('second-run', 'test', 'full', 60)).resolves.toMatchObject({
      runId: 'second-run',
    });
    // The holder carries on and finishes; then the base is free again.
    const batch = await indexer.indexBatch(plan, request, 100, { position: 0 });
    expect(batch.done).toBe(true);
    await indexer.abort(plan);
    await expect(indexer.begin(request, 'third-run')).resolves.toMatchObject({ runId: 'third-run' });
    expect((await store.currentLease())?.runId).toBe('third-run');
  });

  it('keeps the live index whole for a reader during a full re-index and swap, and can roll back', async () => {
    await upload(prefix, BASE);
    const { run, store, embedder } = setup(prefix);
    const first = await run('full');
    const oldCount = first.rowsAfter;
    // A bigger corpus for the next generation.
    const extra = Object.fromEntries(
      Array.from({ length: 12 }, (_, i) => [
        `extra/doc-${i}.md`,
        utf8(`# 附加制度${i}\n\n${'本制度适用于全体员工，自发布之日起施行。'.repeat(20)}`),
      ]),
    );
    await upload(prefix, extra);
    const [probe] = await embedder.embed(['年假']);
    const reader = createKnowledgePool(db.url, 1);
    const seen: number[] = [];
    let emptySearches = 0;
    let reading = true;
    const readerLoop = (async () => {
      while (reading) {
        const { rows } = await reader.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
        seen.push(rows[0]?.n ?? -1);
        const hits = await new PgVectorStore(reader, { table }).search(probe as Float32Array, 5);
        if (hits.length === 0) emptySearches++;
      }
    })();
    const second = await run('full');
    reading = false;
    await readerLoop;
    await reader.end();
    expect(second.outcome).toBe('succeeded');
    expect(second.swap).toEqual({ attempts: 1, replacedPrevious: true });
    expect(second.verification?.passed).toBe(true);
    const newCount = second.rowsAfter;
    expect(newCount).toBeGreaterThan(oldCount);
    expect(seen.length).toBeGreaterThan(3);
    // Every read saw one whole generation or the other: never empty, never partial.
    expect(seen.every((n) => n === oldCount || n === newCount)).toBe(true);
    expect(emptySearches).toBe(0);
    // Full mode re-used the unchanged sources' rows instead of re-embedding them.
    expect(second.counters.embeddedInputs).toBe(newCount - oldCount);

    await store.rollback();
    expect(await store.count('live')).toBe(oldCount);
    expect(await store.count('previous')).toBe(newCount);
  });

  it('builds and searches a halfvec HNSW index when asked', async () => {
    await upload(prefix, BASE);
    const { run, store, embedder } = setup(prefix, { index: { kind: 'halfvec' } });
    const report = await run('full');
    expect(report.outcome).toBe('succeeded');
    expect(report.verification?.recallAt10).toBeGreaterThanOrEqual(0.95);
    const { rows } = await pool.query<{ def: string }>(
      'SELECT indexdef AS def FROM pg_indexes WHERE tablename = $1',
      [table],
    );
    expect(rows.some((r) => r.def.includes('halfvec_cosine_ops'))).toBe(true);
    expect((await store.meta())?.indexKind).toBe('halfvec');
    const [question] = await embedder.embed(['差旅费用报销单多久内提交']);
    const hits = await store.search(question as Float32Array, 2);
    expect(hits[0]?.source).toBe('finance/expense.html');
  });

  it('checks the pgvector version: the embedded one passes, older ones are refused', async () => {
    const { store } = setup(prefix);
    const server = await store.checkServer();
    expect(server.embedded).toBe(true);
    expect(server.pgvector).toMatch(/^0\.8\.\d+$/);
    expect(() => assertPgvectorVersion(server.pgvector)).not.toThrow();
    expect(() => assertPgvectorVersion('0.8.3')).toThrow(UnsupportedServerError);
    expect(() => assertPgvectorVersion('0.7.4')).toThrow(/older than 0.8.4/);
    expect(() => assertPgvectorVersion('0.10.0')).not.toThrow();
  });

  it('refuses a bad request naming the field', () => {
    expect(() => reindexRequestSchema.parse({ source: { kind: 'object-store', prefix: '../etc' } })).toThrow(
      /must not contain/,
    );
    const result = reindexRequestSchema.safeParse({
      table: 'Robert; DROP TABLE',
      source: { kind: 'directory', path: '/x' },
    });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(['table']);
  });
});
