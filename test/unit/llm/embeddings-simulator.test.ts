import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosineSimilarity, lexicalEmbedding } from '../../../src/llm/simulator/lexical-embedder.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests inspect arbitrary JSON answers
const json = (response: Response): Promise<any> => response.json();

let sim: TestSimulator;
beforeAll(async () => {
  sim = await startSimulator({ embeddingMaxTokens: 64 });
});
afterAll(async () => {
  await sim.close();
});

async function embed(body: Record<string, unknown>): Promise<Response> {
  return fetch(`${sim.baseUrl}/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'BAAI/bge-m3', ...body }),
  });
}

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

describe('lexical embedder', () => {
  it('is deterministic and L2-normalised, including for empty text', () => {
    const a = lexicalEmbedding('模型量化可以降低显存', 1024);
    expect(Array.from(a)).toEqual(Array.from(lexicalEmbedding('模型量化可以降低显存', 1024)));
    expect(norm(a)).toBeCloseTo(1, 5);
    expect(norm(lexicalEmbedding('', 1024))).toBeCloseTo(1, 5);
  });

  it('scores texts sharing words higher than unrelated ones', () => {
    const query = lexicalEmbedding('如何部署 Qwen 模型到 KServe', 1024);
    const related = lexicalEmbedding('使用 KServe 部署 Qwen 模型的步骤', 1024);
    const unrelated = lexicalEmbedding('今天天气晴朗适合散步', 1024);
    expect(cosineSimilarity(query, related)).toBeGreaterThan(cosineSimilarity(query, unrelated) + 0.1);
  });
});

describe('POST /v1/embeddings', () => {
  it('accepts a string or a list, returns 1024-d unit vectors in order, with usage', async () => {
    const response = await embed({ input: ['第一段', '第二段'] });
    expect(response.status).toBe(200);
    const body = await json(response);
    expect(body.object).toBe('list');
    expect(body.data.map((d: { index: number }) => d.index)).toEqual([0, 1]);
    for (const d of body.data) {
      expect(d.embedding).toHaveLength(1024);
      expect(norm(d.embedding)).toBeCloseTo(1, 5);
    }
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
    const single = await json(await embed({ input: '第一段' }));
    expect(single.data[0].embedding).toEqual(body.data[0].embedding);
  });

  it('answers base64 float32 when asked (the OpenAI SDK default), equal to the float answer', async () => {
    const asFloat = await json(await embed({ input: 'pgvector HNSW' }));
    const asBase64 = await json(await embed({ input: 'pgvector HNSW', encoding_format: 'base64' }));
    const bytes = Buffer.from(asBase64.data[0].embedding, 'base64');
    const decoded = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    expect(Array.from(decoded)).toEqual(asFloat.data[0].embedding);
  });

  it('refuses inputs over the token limit with 400 naming the input, like vLLM', async () => {
    const response = await embed({ input: ['短', '长'.repeat(65)] });
    expect(response.status).toBe(400);
    const body = await json(response);
    expect(body.error.param).toBe('input.1');
    expect(body.error.message).toMatch(/maximum context length is 64 tokens/);
  });

  it('refuses an empty list and a dimensions change', async () => {
    expect((await embed({ input: [] })).status).toBe(400);
    const dims = await embed({ input: 'x', dimensions: 256 });
    expect(dims.status).toBe(400);
    expect((await json(dims)).error.param).toBe('dimensions');
  });
});
