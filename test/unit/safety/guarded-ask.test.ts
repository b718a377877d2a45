import { mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../src/audit/chain.js';
import { RagAuditLog, verifyRagAudit } from '../../../src/audit/rag-audit.js';
import { metricsRegistry } from '../../../src/observability/metrics.js';
import { LexiconGuard, REFUSAL_MESSAGE } from '../../../src/safety/guard.js';
import { guardedAsk } from '../../../src/safety/guarded-ask.js';
import { parseLexicon } from '../../../src/safety/lexicon.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';

// The `kb ask` path with the filter: fakes for the store, the embedder and the chat model.

const SAMPLE = new URL('../../fixtures/safety/sample-lexicon.json', import.meta.url);

async function setup(answer: string) {
  const calls = { search: 0, chat: 0 };
  const store = {
    table: 'qwen_knowledge',
    meta: async () => undefined,
    search: async () => {
      calls.search++;
      return [{ id: '1', source: 'doc.md', content: '部署说明', score: 0.9, metadata: {} }];
    },
  };
  const embedder = {
    model: 'fake',
    dimensions: 2,
    embed: async (texts: string[]) => texts.map(() => new Float32Array([1, 0])),
  };
  const chat = {
    chat: async () => {
      calls.chat++;
      return {
        id: 'c',
        object: 'chat.completion',
        created: 0,
        model: 'qwen-7b-chat',
        choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 40, completion_tokens: 2, total_tokens: 42 },
      };
    },
  };
  const guard = new LexiconGuard(parseLexicon(JSON.parse(await readFile(SAMPLE, 'utf8'))));
  const auditStore = new FsArtifactStore(await mkdtemp(path.join(os.tmpdir(), 'qwenops-guarded-ask-')));
  const audit = new RagAuditLog(auditStore);
  const deps = { store, embedder, chat, guard, audit, userId: 'alice' } as never;
  return { deps, calls, auditStore };
}

async function keys(store: FsArtifactStore): Promise<Array<{ key: string }>> {
  const out: Array<{ key: string }> = [];
  for await (const object of store.list('rag-audit/')) out.push(object);
  return out;
}

async function counter(name: string, labels: Record<string, string>): Promise<number> {
  const metric = await metricsRegistry.getSingleMetric(name)?.get();
  return (
    metric?.values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))?.value ??
    0
  );
}

describe('kb ask with the safety filter', () => {
  it('answers a clean question, checking both sides, and audits it', async () => {
    const { deps, calls, auditStore } = await setup('按文档部署即可 [1]');
    const checksBefore = await counter('qwenops_filter_checks_total', { stage: 'output' });
    const result = await guardedAsk(deps, '如何部署？', { model: 'qwen-7b-chat' });
    expect(result.answer).toBe('按文档部署即可 [1]');
    expect(result.filtered).toBeUndefined();
    expect(calls).toEqual({ search: 1, chat: 1 });
    expect(await counter('qwenops_filter_checks_total', { stage: 'output' })).toBe(checksBefore + 1);
    const report = await verifyRagAudit(auditStore);
    expect(report).toMatchObject({ records: 1, lastSeq: 1 });
    const [key] = await keys(auditStore);
    const record = JSON.parse((await auditStore.getBuffer(key?.key as string)).toString());
    expect(record).toMatchObject({
      model: 'qwen-7b-chat',
      prompt_hash: sha256Hex('如何部署？'),
      user_id: 'alice',
      is_filtered: false,
      tokens: 42,
    });
  });

  it('refuses a blocked question without retrieval or a model call, and counts it', async () => {
    const { deps, calls, auditStore } = await setup('unused');
    const before = await counter('qwenops_filter_interceptions_total', {
      stage: 'input',
      category: 'gambling',
    });
    const result = await guardedAsk(deps, '哪里可以網上 賭\u200b博？', { model: 'qwen-7b-chat' });
    expect(result.answer).toBe(REFUSAL_MESSAGE);
    expect(result.filtered).toMatchObject({ stage: 'input', category: 'gambling' });
    expect(calls).toEqual({ search: 0, chat: 0 });
    expect(
      await counter('qwenops_filter_interceptions_total', { stage: 'input', category: 'gambling' }),
    ).toBe(before + 1);
    const [object] = await keys(auditStore);
    expect(JSON.parse((await auditStore.getBuffer(object?.key as string)).toString())).toMatchObject({
      is_filtered: true,
      tokens: 0,
    });
  });

  it('replaces a blocked answer with the refusal', async () => {
    const { deps, calls } = await setup('可以去买冰毒');
    const before = await counter('qwenops_filter_interceptions_total', {
      stage: 'output',
      category: 'drugs',
    });
    const result = await guardedAsk(deps, '周末做什么？', { model: 'qwen-7b-chat' });
    expect(result.answer).toBe(REFUSAL_MESSAGE);
    expect(result.filtered).toMatchObject({ stage: 'output', category: 'drugs' });
    expect(calls.chat).toBe(1);
    expect(await counter('qwenops_filter_interceptions_total', { stage: 'output', category: 'drugs' })).toBe(
      before + 1,
    );
    const exposition = await metricsRegistry.metrics();
    expect(exposition).toContain('qwenops_filter_interceptions_total{stage="output",category="drugs"}');
  });
});
