import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { OpenAiEmbedder } from '../../../src/knowledge/embedders/openai.js';
import {
  EmbeddingDimensionError,
  EmbeddingError,
  EmbeddingInputTooLongError,
} from '../../../src/knowledge/embedders/port.js';

// The embeddings client against small loopback servers that answer as TEI / vLLM do,
// including the failures: 429 with Retry-After, 413, 5xx, a wrong dimension.

interface Seen {
  inputs: string[];
  at: number;
  bytes: number;
}

type Responder = (seen: Seen, n: number, res: http.ServerResponse) => void;

const servers: http.Server[] = [];

async function serve(respond: Responder): Promise<{ url: string; seen: Seen[]; inFlightMax: () => number }> {
  const seen: Seen[] = [];
  let inFlight = 0;
  let inFlightMax = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const request = JSON.parse(body.toString()) as { input: string[] };
      const entry = { inputs: request.input, at: Date.now(), bytes: body.length };
      seen.push(entry);
      inFlight++;
      inFlightMax = Math.max(inFlightMax, inFlight);
      res.on('finish', () => inFlight--);
      respond(entry, seen.length, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    seen,
    inFlightMax: () => inFlightMax,
  };
}

function vectors(inputs: string[], dims = 1024, scale = 3) {
  return {
    object: 'list',
    data: inputs.map((text, index) => ({
      object: 'embedding',
      index,
      embedding: Array.from({ length: dims }, (_, i) => ((i + text.length) % 7) * scale + 1),
    })),
  };
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

const client = (url: string, extra: Partial<ConstructorParameters<typeof OpenAiEmbedder>[0]> = {}) =>
  new OpenAiEmbedder({
    baseUrl: url,
    model: 'BAAI/bge-m3',
    initialBackoffMs: 10,
    maxBackoffMs: 50,
    ...extra,
  });

describe('OpenAiEmbedder', () => {
  it('retries a 429, waiting what Retry-After asks, then succeeds', async () => {
    const server = await serve((seen, n, res) =>
      n === 1
        ? json(res, 429, { error: { message: 'too many requests' } }, { 'retry-after': '1' })
        : json(res, 200, vectors(seen.inputs)),
    );
    const embedder = client(server.url);
    const result = await embedder.embed(['年假', '报销']);
    expect(result).toHaveLength(2);
    expect(server.seen).toHaveLength(2);
    // Honoured Retry-After: the second request came at least 1 s after the first.
    expect((server.seen[1] as Seen).at - (server.seen[0] as Seen).at).toBeGreaterThanOrEqual(950);
    expect(embedder.stats()).toMatchObject({ calls: 1, inputs: 2, requests: 2, retries: 1 });
    await embedder.close();
  });

  it('retries 5xx with backoff and gives up after maxRetries with a retryable error', async () => {
    const server = await serve((_seen, _n, res) => json(res, 503, { error: 'overloaded' }));
    const embedder = client(server.url, { maxRetries: 2 });
    const error = await embedder.embed(['x']).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(EmbeddingError);
    expect((error as EmbeddingError).retryable).toBe(true);
    expect((error as Error).message).toMatch(/HTTP 503.*overloaded.*after 3 attempts/);
    expect(server.seen).toHaveLength(3);
    await embedder.close();
  });

  it('splits a batch the server refuses as too large (413) and keeps the order', async () => {
    const server = await serve((seen, _n, res) =>
      seen.inputs.length > 2
        ? json(res, 413, { error: 'payload too large' })
        : json(res, 200, vectors(seen.inputs)),
    );
    const embedder = client(server.url);
    const inputs = ['a', 'bb', 'ccc', 'dddd', 'eeeee'];
    const result = await embedder.embed(inputs);
    const expected = await client(
      (await serve((seen, _n, res) => json(res, 200, vectors(seen.inputs)))).url,
    ).embed(inputs);
    expect(result).toEqual(expected);
    expect(embedder.stats().splits).toBeGreaterThan(0);
    expect(server.seen.filter((s) => s.inputs.length <= 2).flatMap((s) => s.inputs)).toEqual(inputs);
    await embedder.close();
  });

  it('refuses vectors of the wrong dimension, without retrying', async () => {
    const server = await serve((seen, _n, res) => json(res, 200, vectors(seen.inputs, 768)));
    const embedder = client(server.url);
    await expect(embedder.embed(['x'])).rejects.toThrow(EmbeddingDimensionError);
    await expect(embedder.embed(['x'])).rejects.toThrow(/768-dimensional.*needs 1024/);
    expect(server.seen).toHaveLength(2);
    await embedder.close();
  });

  it('never sends an input over the token limit', async () => {
    const server = await serve((seen, _n, res) => json(res, 200, vectors(seen.inputs)));
    const embedder = client(server.url, { maxInputTokens: 100 });
    await expect(embedder.embed(['短', '长'.repeat(200)])).rejects.toThrow(EmbeddingInputTooLongError);
    expect(server.seen).toHaveLength(0);
    await embedder.close();
  });

  it('bounds batches by count and bytes, bounds concurrency, and normalises vectors', async () => {
    const server = await serve((seen, _n, res) => setTimeout(() => json(res, 200, vectors(seen.inputs)), 30));
    const embedder = client(server.url, { maxBatchInputs: 4, maxRequestBytes: 600, concurrency: 2 });
    const inputs = Array.from({ length: 23 }, (_, i) => `文档${i}${'字'.repeat(20)}`);
    const result = await embedder.embed(inputs);
    expect(result).toHaveLength(23);
    for (const s of server.seen) {
      expect(s.inputs.length).toBeLessThanOrEqual(4);
      expect(s.bytes).toBeLessThanOrEqual(600);
    }
    expect(server.seen.flatMap((s) => s.inputs)).toEqual(inputs);
    expect(server.inFlightMax()).toBeLessThanOrEqual(2);
    for (const v of result) expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    await embedder.close();
  });

  it('fails a non-retryable 4xx at once with the server message', async () => {
    const server = await serve((_s, _n, res) => json(res, 400, { error: { message: 'model not found' } }));
    const embedder = client(server.url);
    const error = (await embedder.embed(['x']).catch((e: unknown) => e)) as EmbeddingError;
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('model not found');
    expect(server.seen).toHaveLength(1);
    await embedder.close();
  });
});
