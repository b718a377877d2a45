import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retryAfterSeconds as parseRetryAfter } from '../../../src/domain/http.js';
import {
  describeErrorBody,
  LlmConnectionError,
  LlmHttpError,
  OpenAiClient,
} from '../../../src/llm/client.js';
import { freePort } from '../../support/ports.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

let sim: TestSimulator;
// A raw server that writes SSE the awkward way real proxies do: tiny reads, comments, CRLF.
let awkward: http.Server;
let awkwardUrl: string;

beforeAll(async () => {
  sim = await startSimulator({ ttftMs: 1, tpotMs: 1 });
  awkward = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const body =
      ': keep-alive\r\n\r\n' +
      'data: {"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"你好"},"finish_reason":null}]}\r\n\r\n' +
      (req.url?.includes('cut') ? '' : 'data: [DONE]\r\n\r\n');
    const bytes = Buffer.from(body);
    let i = 0;
    const step = () => {
      if (i >= bytes.length) return void res.end();
      res.write(bytes.subarray(i, i + 7));
      i += 7;
      setImmediate(step);
    };
    step();
  });
  await new Promise<void>((resolve) => awkward.listen(0, '127.0.0.1', resolve));
  awkwardUrl = `http://127.0.0.1:${(awkward.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await sim.close();
  await new Promise((r) => awkward.close(r));
});

describe('OpenAiClient', () => {
  const request = {
    model: 'qwen-7b-chat',
    messages: [{ role: 'user' as const, content: '你好' }],
    max_tokens: 6,
  };

  it('chat() returns the completion with usage; models() lists the served model', async () => {
    const client = new OpenAiClient({ baseUrl: sim.baseUrl });
    const answer = await client.chat(request);
    expect(answer.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(answer.usage?.completion_tokens).toBeLessThanOrEqual(6);
    const models = await client.models();
    expect(models[0]).toMatchObject({ id: 'qwen-7b-chat', owned_by: 'qwenops-simulator' });
  });

  it('chatStream() yields parsed chunks and the usage chunk', async () => {
    const client = new OpenAiClient({ baseUrl: sim.baseUrl });
    let text = '';
    let usage: unknown;
    for await (const chunk of client.chatStream({ ...request, stream_options: { include_usage: true } })) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(usage).toMatchObject({ completion_tokens: expect.any(Number) });
  });

  it('parses SSE split into 7-byte reads with comments and CRLF; a stream cut before [DONE] is an error', async () => {
    const client = new OpenAiClient({ baseUrl: awkwardUrl });
    const chunks = [];
    for await (const chunk of client.chatStream(request)) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content)).toEqual(['你好']);
    const cut = new OpenAiClient({ baseUrl: `${awkwardUrl}/cut` });
    const error = await (async () => {
      for await (const _ of cut.chatStream(request));
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmConnectionError);
    expect((error as Error).message).toMatch(/ended before "data: \[DONE\]"/);
  });

  it('maps 4xx to a non-retryable LlmHttpError with the server message', async () => {
    const client = new OpenAiClient({ baseUrl: sim.baseUrl });
    const error = await client.chat({ ...request, model: 'nope' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmHttpError);
    expect(error).toMatchObject({ status: 404, retryable: false });
    expect((error as Error).message).toContain('The model `nope` does not exist.');
  });

  it('maps connection refused to a retryable LlmConnectionError, and honours abort', async () => {
    const client = new OpenAiClient({ baseUrl: `http://127.0.0.1:${await freePort()}/v1` });
    const error = await client.models().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmConnectionError);
    expect((error as LlmConnectionError).retryable).toBe(true);
    const aborted = new OpenAiClient({ baseUrl: sim.baseUrl });
    const controller = new AbortController();
    const pending = aborted.chat(
      { ...request, max_tokens: 500, ignore_eos: true },
      { signal: controller.signal },
    );
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('describes error bodies and Retry-After values', () => {
    expect(describeErrorBody('application/json', '{"error":{"message":"bad"}}')).toBe('bad');
    expect(describeErrorBody('text/html', '<html><title>503 Service Unavailable</title></html>')).toMatch(
      /HTML error page "503 Service Unavailable"/,
    );
    expect(describeErrorBody('text/plain', '')).toBe('empty body');
    expect(parseRetryAfter('12')).toBe(12);
    expect(parseRetryAfter(new Date(Date.now() + 30_000).toUTCString())).toBeGreaterThanOrEqual(29);
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
});
