import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { measureEmbeddingCapacity, utilisation } from '../../../src/knowledge/embedders/capacity.js';
import {
  combinedInputsPerSecond,
  OpenAiEmbedder,
  teiBatchLimit,
} from '../../../src/knowledge/embedders/openai.js';
import { EmbeddingError } from '../../../src/knowledge/embedders/port.js';

// The embeddings client against a fake server with TEI's hard limits: at most MAX_INPUTS
// inputs per request (over it: 422 with TEI's validation body), at most MAX_BYTES of body
// (over it: 413), and 429 with Retry-After while "overloaded". Plus the client-side
// throughput accounting and the saturating capacity probe against a server with a fixed
// number of batch slots.

const DIMS = 1024;

interface Fake {
  url: string;
  requests: Array<{ inputs: number; bytes: number; status: number }>;
}

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function vectorsFor(inputs: string[], base64: boolean) {
  return {
    object: 'list',
    data: inputs.map((text, index) => {
      const v = new Float32Array(DIMS).map((_, i) => ((i + text.length) % 5) + 1);
      return {
        object: 'embedding',
        index,
        embedding: base64 ? Buffer.from(v.buffer).toString('base64') : Array.from(v),
      };
    }),
  };
}

async function teiLike(limits: {
  maxInputs: number;
  maxBytes: number;
  tooManyRequests?: number;
  slots?: number;
  serviceMs?: number;
}): Promise<Fake> {
  const requests: Fake['requests'] = [];
  let throttled = 0;
  let busy = 0;
  const queue: Array<() => void> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limits.maxBytes && !refused) {
        refused = true;
        requests.push({ inputs: -1, bytes: size, status: 413 });
        res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
        res.end(JSON.stringify({ error: 'Payload Too Large', error_type: 'Validation' }));
      }
      if (!refused) chunks.push(c);
    });
    req.on('end', async () => {
      if (refused) return;
      const body = Buffer.concat(chunks);
      const request = JSON.parse(body.toString()) as { input: string[]; encoding_format?: string };
      const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        requests.push({ inputs: request.input.length, bytes: body.length, status });
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(payload));
      };
      if (request.input.length > limits.maxInputs) {
        send(422, {
          error: `batch size ${request.input.length} > maximum allowed batch size ${limits.maxInputs}`,
          error_type: 'Validation',
        });
        return;
      }
      if (throttled < (limits.tooManyRequests ?? 0)) {
        throttled++;
        send(429, { error: 'Model is overloaded', error_type: 'Overloaded' }, { 'retry-after': '1' });
        return;
      }
      if (limits.slots) {
        if (busy >= limits.slots) await new Promise<void>((r) => queue.push(r));
        busy++;
        await new Promise((r) => setTimeout(r, limits.serviceMs ?? 10));
        busy--;
        queue.shift()?.();
      }
      send(200, vectorsFor(request.input, request.encoding_format === 'base64'));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, requests };
}

const texts = (n: number, length = 20) =>
  Array.from({ length: n }, (_, i) => `第${i}条：${'制度'.repeat(length)}`);

describe('OpenAiEmbedder against TEI-style hard limits', () => {
  it('builds batches within both the input count and the byte limit', async () => {
    const fake = await teiLike({ maxInputs: 32, maxBytes: 4_000 });
    const embedder = new OpenAiEmbedder({
      baseUrl: fake.url,
      model: 'bge-m3',
      maxBatchInputs: 32,
      maxRequestBytes: 4_000,
    });
    const inputs = texts(100, 30); // ~200 bytes each as JSON: ~19 per 4,000-byte request
    const vectors = await embedder.embed(inputs);
    expect(vectors).toHaveLength(100);
    expect(fake.requests.every((r) => r.status === 200)).toBe(true);
    expect(Math.max(...fake.requests.map((r) => r.bytes))).toBeLessThanOrEqual(4_000);
    expect(Math.max(...fake.requests.map((r) => r.inputs))).toBeLessThanOrEqual(32);
    expect(fake.requests.length).toBeGreaterThan(100 / 32);
    await embedder.close();
  });

  it('splits a batch TEI refuses with 422 (batch size) and keeps later batches under the named limit', async () => {
    const fake = await teiLike({ maxInputs: 8, maxBytes: 2_000_000 });
    const embedder = new OpenAiEmbedder({
      baseUrl: fake.url,
      model: 'bge-m3',
      maxBatchInputs: 32,
      concurrency: 1,
    });
    const first = await embedder.embed(texts(32));
    expect(first).toHaveLength(32);
    expect(fake.requests.filter((r) => r.status === 422)).toHaveLength(1);
    expect(embedder.limits().maxBatchInputs).toBe(8);
    const before = fake.requests.length;
    await embedder.embed(texts(40));
    // Later batches are built within 8 inputs: no second refusal.
    const later = fake.requests.slice(before);
    expect(later.every((r) => r.status === 200 && r.inputs <= 8)).toBe(true);
    expect(later).toHaveLength(5);
    expect(embedder.stats().splits).toBe(1);
    await embedder.close();
  });

  it('splits a batch refused with 413 (payload) and lowers its byte bound', async () => {
    const fake = await teiLike({ maxInputs: 32, maxBytes: 3_000 });
    // Configured above the server's real limit: the first batch is refused.
    const embedder = new OpenAiEmbedder({
      baseUrl: fake.url,
      model: 'bge-m3',
      maxRequestBytes: 2_000_000,
      concurrency: 1,
    });
    const inputs = texts(24, 30);
    const vectors = await embedder.embed(inputs);
    expect(vectors).toHaveLength(24);
    expect(fake.requests.some((r) => r.status === 413)).toBe(true);
    expect(embedder.limits().maxRequestBytes).toBeLessThan(2_000_000);
    const refusals = fake.requests.filter((r) => r.status === 413).length;
    await embedder.embed(texts(24, 30));
    // The lowered bound keeps the second call from paying every refusal again.
    expect(fake.requests.filter((r) => r.status === 413).length - refusals).toBeLessThan(refusals);
    await embedder.close();
  });

  it('does not retry TEI 422 for an over-long input (a validation error)', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(422, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: 'Input validation error: `inputs` must have less than 8192 tokens. Given: 9000',
          error_type: 'Validation',
        }),
      );
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const embedder = new OpenAiEmbedder({
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
      model: 'bge-m3',
    });
    const err = await embedder.embed(['x']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EmbeddingError);
    expect((err as EmbeddingError).retryable).toBe(false);
    expect((err as Error).message).toContain('must have less than 8192 tokens');
    expect(embedder.stats().requests).toBe(1);
    await embedder.close();
  });

  it('waits what Retry-After asks on 429, then succeeds', async () => {
    const fake = await teiLike({ maxInputs: 32, maxBytes: 2_000_000, tooManyRequests: 2 });
    const embedder = new OpenAiEmbedder({ baseUrl: fake.url, model: 'bge-m3', concurrency: 1 });
    const t0 = Date.now();
    const vectors = await embedder.embed(texts(4));
    expect(vectors).toHaveLength(4);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_900);
    expect(fake.requests.map((r) => r.status)).toEqual([429, 429, 200]);
    expect(embedder.stats().retries).toBe(2);
    await embedder.close();
  }, 10_000);

  it('parses the batch limit out of TEI error bodies', () => {
    expect(
      teiBatchLimit('{"error":"batch size 64 > maximum allowed batch size 32","error_type":"Validation"}'),
    ).toBe(32);
    expect(teiBatchLimit('{"error":"Input validation error"}')).toBeUndefined();
  });
});

describe('throughput accounting and the capacity probe', () => {
  it('accounts achieved inputs/s and requests in flight on the client side', async () => {
    const fake = await teiLike({ maxInputs: 32, maxBytes: 2_000_000, slots: 2, serviceMs: 20 });
    const embedder = new OpenAiEmbedder({
      baseUrl: fake.url,
      model: 'bge-m3',
      concurrency: 2,
      encodingFormat: 'base64',
    });
    expect(embedder.throughput().inputsPerSecond).toBe(0);
    await embedder.embed(texts(320));
    const t = embedder.throughput();
    expect(t.inputs).toBe(320);
    expect(t.requests).toBe(10);
    expect(t.maxInFlight).toBe(2);
    expect(t.busyMs).toBeGreaterThan(0);
    // 2 slots x 32 inputs / ~20 ms: at most ~3,200 inputs/s.
    expect(t.inputsPerSecond).toBeGreaterThan(300);
    expect(t.inputsPerSecond).toBeLessThan(3_400);
    expect(combinedInputsPerSecond([t, t])).toBeCloseTo(2 * t.inputsPerSecond, 5);
    await embedder.close();
  });

  it('raises concurrency until throughput stops growing and reports the capacity', async () => {
    const fake = await teiLike({ maxInputs: 32, maxBytes: 2_000_000, slots: 2, serviceMs: 40 });
    const capacity = await measureEmbeddingCapacity({
      baseUrl: fake.url,
      model: 'bge-m3',
      sample: texts(10),
      batchInputs: 32,
      levelMs: 600,
      warmupMs: 100,
      maxConcurrency: 16,
    });
    // 2 slots x 32 inputs / 40 ms = 1,600 inputs/s at most.
    expect(capacity.saturated).toBe(true);
    expect(capacity.inputsPerSecond).toBeGreaterThan(1_000);
    expect(capacity.inputsPerSecond).toBeLessThanOrEqual(1_700);
    expect(capacity.concurrency).toBeGreaterThanOrEqual(2);
    expect(capacity.levels[0]?.inputsPerSecond).toBeLessThan(capacity.inputsPerSecond * 0.7);
    expect(utilisation(capacity.inputsPerSecond / 2, capacity)).toBeCloseTo(0.5, 5);
  }, 20_000);
});
