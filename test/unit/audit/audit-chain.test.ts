import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readAuditRecords, StoreAuditLog } from '../../../src/audit/audit-log.js';
import { GENESIS_HASH } from '../../../src/audit/chain.js';
import { verifyPipelineAudit } from '../../../src/audit/pipeline-verify.js';
import { RagAuditLog, verifyRagAudit } from '../../../src/audit/rag-audit.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';

async function tempStore(): Promise<{ dir: string; store: FsArtifactStore }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-audit-chain-'));
  return { dir, store: new FsArtifactStore(dir) };
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && (entry.name.endsWith('.jsonl') || entry.name.endsWith('.json')))
      out.push(path.join(entry.parentPath, entry.name));
  }
  return out.sort();
}

function clockFrom(start: string): () => Date {
  let t = Date.parse(start);
  return () => {
    t += 1000;
    return new Date(t);
  };
}

const entry = (i: number) => ({
  model: 'qwen-7b-chat',
  prompt: `问题 ${i}`,
  user_id: 'alice',
  is_filtered: i % 3 === 0,
  tokens: 100 + i,
});

describe('RAG audit chain', () => {
  it('appends records in the plan schema, chained, and verifies them', async () => {
    const { store } = await tempStore();
    const log = new RagAuditLog(store, { clock: clockFrom('2026-12-06T23:59:57Z'), writerId: 'w1' });
    const first = await log.append([entry(1)]);
    expect(Object.keys(first[0] ?? {}).sort()).toEqual(
      [
        'hash',
        'is_filtered',
        'model',
        'prev_hash',
        'prompt_hash',
        'seq',
        'timestamp',
        'tokens',
        'user_id',
      ].sort(),
    );
    expect(first[0]).toMatchObject({ seq: 1, prev_hash: GENESIS_HASH, user_id: 'alice', tokens: 101 });
    expect(JSON.stringify(first)).not.toContain('问题');
    for (let i = 2; i <= 5; i++) await log.append([entry(i)]);
    await log.append([entry(6), entry(7)]); // one object, two records
    // A second writer (another process) continues the same chain.
    await new RagAuditLog(store, { clock: clockFrom('2026-12-07T10:00:00Z'), writerId: 'w2' }).append([
      entry(8),
    ]);
    const report = await verifyRagAudit(store);
    expect(report).toEqual({ records: 8, objects: 7, firstSeq: 1, lastSeq: 8 });
    // Records span two days; a range picks one.
    const day = await verifyRagAudit(store, { from: '2026-12-07', to: '2026-12-07' });
    expect(day.firstBreak).toBeUndefined();
    expect(day.records).toBeGreaterThan(0);
    expect(day.records).toBeLessThan(8);
  });

  it('detects an edited record', async () => {
    const { dir, store } = await tempStore();
    const log = new RagAuditLog(store, { writerId: 'w1' });
    for (let i = 1; i <= 4; i++) await log.append([entry(i)]);
    const files = await filesUnder(dir);
    const victim = files[2] as string;
    await writeFile(victim, (await readFile(victim, 'utf8')).replace('"tokens":103', '"tokens":3'));
    const report = await verifyRagAudit(store);
    expect(report.firstBreak).toMatchObject({ index: 2, field: 'hash' });
    expect(report.firstBreak?.key).toContain(path.relative(dir, victim));
  });

  it('detects a deleted record (a seq gap)', async () => {
    const { dir, store } = await tempStore();
    const log = new RagAuditLog(store, { writerId: 'w1' });
    for (let i = 1; i <= 4; i++) await log.append([entry(i)]);
    await rm((await filesUnder(dir))[1] as string);
    const report = await verifyRagAudit(store);
    expect(report.firstBreak).toMatchObject({ index: 1, field: 'seq', expected: '2', found: '3' });
    expect(report.firstBreak?.message).toMatch(/missing/);
  });

  it('detects a record replaced with a forged one that has the right seq (prev_hash break)', async () => {
    const { dir, store } = await tempStore();
    const log = new RagAuditLog(store, { writerId: 'w1' });
    for (let i = 1; i <= 3; i++) await log.append([entry(i)]);
    const files = await filesUnder(dir);
    // Forge seq 2 from another chain: self-consistent hash, wrong prev_hash.
    const { store: other } = await tempStore();
    const otherLog = new RagAuditLog(other, { writerId: 'w1' });
    await otherLog.append([{ ...entry(9) }]);
    const [forged] = await otherLog.append([{ ...entry(10), user_id: 'mallory' }]);
    await writeFile(files[1] as string, `${JSON.stringify(forged)}\n`);
    const report = await verifyRagAudit(store);
    expect(report.firstBreak).toMatchObject({ index: 1, field: 'prev_hash' });
  });

  it('concurrent writers keep one unbroken chain: no fork, no gap, no false alarm', async () => {
    const { store } = await tempStore();
    // Separate instances (as separate processes would be), racing for every seq.
    const writers = Array.from({ length: 8 }, (_, w) => new RagAuditLog(store, { writerId: `w${w}` }));
    const written = await Promise.all(
      writers.flatMap((log, w) => [1, 2, 3, 4].map((i) => log.append([entry(w * 10 + i)]))),
    );
    expect(
      written
        .flat()
        .map((r) => r.seq)
        .sort((a, b) => a - b),
    ).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    const report = await verifyRagAudit(store);
    expect(report.firstBreak).toBeUndefined();
    expect(report).toMatchObject({ records: 32, objects: 32, firstSeq: 1, lastSeq: 32 });
    expect(report.unclaimed).toBeUndefined();
  });

  it('sets aside a batch whose writer lost the race and died before withdrawing it', async () => {
    const { dir, store } = await tempStore();
    const log = new RagAuditLog(store, { clock: clockFrom('2026-12-07T09:00:00Z'), writerId: 'w1' });
    await log.append([entry(1)]);
    await log.append([entry(2)]);
    // What the loser leaves: a batch for seq 2 with no claim (its claim attempt failed).
    const orphan = 'rag-audit/2026/12/07/000000000002-crashed.jsonl';
    const claimed = (await filesUnder(dir)).find((f) => f.includes('000000000002-w1')) as string;
    await store.put(orphan, (await readFile(claimed, 'utf8')).replace('"alice"', '"mallory"'));
    const report = await verifyRagAudit(store);
    expect(report.firstBreak).toBeUndefined();
    expect(report).toMatchObject({ records: 2, objects: 2, unclaimed: [orphan] });
    // The next writer, cold, chains onto the claimed batch, not the unclaimed one.
    await new RagAuditLog(store, { clock: clockFrom('2026-12-07T09:10:00Z'), writerId: 'w2' }).append([
      entry(3),
    ]);
    expect(await verifyRagAudit(store)).toMatchObject({ records: 3, lastSeq: 3, unclaimed: [orphan] });
    // Without the claim the unclaimed batch is back in the range, and verify reports it.
    await store.delete('rag-audit/claims/000000000002');
    expect((await verifyRagAudit(store)).firstBreak).toMatchObject({ index: 1, key: `${orphan}#1` });
  });
});

describe('pipeline audit chain (per writer)', () => {
  const action = (i: number) => ({
    actor: 'worker',
    action: 'serving.shift-traffic',
    workflowId: `wf-${i}`,
    target: 'service llm-prod/qwen-7b-chat',
    details: { toPercent: i },
  });

  it('chains each writer, concurrently, and keeps readAuditRecords working', async () => {
    const { store } = await tempStore();
    const a = new StoreAuditLog(store, undefined, undefined, 'worker-a');
    const b = new StoreAuditLog(store, undefined, undefined, 'worker-b');
    await Promise.all([1, 2, 3, 4].flatMap((i) => [a.record(action(i)), b.record(action(i + 10))]));
    const records = await readAuditRecords(store);
    expect(records).toHaveLength(8);
    expect(
      records
        .filter((r) => r.chain?.writer === 'worker-a')
        .map((r) => r.chain?.seq)
        .sort(),
    ).toEqual([0, 1, 2, 3]);
    expect(await verifyPipelineAudit(store)).toEqual({ records: 8, writers: 2, unchained: 0 });
  });

  it('detects an edit and a deletion, and counts unchained legacy records', async () => {
    const { dir, store } = await tempStore();
    const a = new StoreAuditLog(store, undefined, clockFrom('2026-12-07T08:00:00Z'), 'worker-a');
    for (let i = 1; i <= 4; i++) await a.record(action(i));
    await store.putJson('audit/2026/12/07/legacy.json', { timestamp: '2026-12-07T00:00:00Z', details: {} });
    const files = (await filesUnder(dir)).filter((f) => !f.endsWith('legacy.json'));
    expect(files).toHaveLength(4);
    const edited = files[1] as string;
    const original = await readFile(edited, 'utf8');
    await writeFile(
      edited,
      original.replace('"toPercent": 2', '"toPercent": 99').replace('"toPercent":2', '"toPercent":99'),
    );
    expect((await verifyPipelineAudit(store)).firstBreak).toMatchObject({
      writer: 'worker-a',
      index: 1,
      field: 'hash',
    });
    await writeFile(edited, original);
    expect(await verifyPipelineAudit(store)).toEqual({ records: 5, writers: 1, unchained: 1 });
    await rm(files[2] as string);
    const report = await verifyPipelineAudit(store, { from: '2026-12-07', to: '2026-12-07' });
    expect(report.firstBreak).toMatchObject({ writer: 'worker-a', field: 'seq', expected: '2', found: '3' });
  });

  it('a failed write does not advance the chain', async () => {
    const { store } = await tempStore();
    let fail = true;
    const flaky = Object.create(store) as FsArtifactStore;
    flaky.putJson = async (key: string, value: unknown) => {
      if (fail) {
        fail = false;
        throw new Error('store down');
      }
      return store.putJson(key, value);
    };
    const a = new StoreAuditLog(flaky, undefined, undefined, 'worker-a');
    await expect(a.record(action(1))).rejects.toThrow('store down');
    await a.record(action(2));
    await a.record(action(3));
    expect(await verifyPipelineAudit(store)).toEqual({ records: 2, writers: 1, unchained: 0 });
  });
});
