import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LlmConnectionError, LlmHttpError, OpenAiClient } from '../../../src/llm/client.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests inspect arbitrary JSON answers
const json = (response: Response): Promise<any> => response.json();

let sim: TestSimulator;
let client: OpenAiClient;
const request = {
  model: 'qwen-7b-chat',
  messages: [{ role: 'user' as const, content: '故障' }],
  max_tokens: 8,
};

beforeAll(async () => {
  sim = await startSimulator({ ttftMs: 2, tpotMs: 1 });
  client = new OpenAiClient({ baseUrl: sim.baseUrl });
});
afterAll(async () => {
  await sim.close();
});
beforeEach(async () => {
  await fetch(`${sim.url}/admin/faults`, { method: 'DELETE' });
});

async function setFaults(faults: Record<string, unknown>): Promise<Response> {
  return fetch(`${sim.url}/admin/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
}

async function drain(stream: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of stream) n++;
  return n;
}

describe('fault injection admin API', () => {
  it('answers 429 with Retry-After, surfaced by the client as LlmHttpError.retryAfter', async () => {
    expect((await setFaults({ errorRatePct: 100, errorStatus: 429, retryAfterSeconds: 7 })).status).toBe(200);
    const error = await client.chat(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmHttpError);
    expect(error).toMatchObject({ status: 429, retryAfter: 7, retryable: true });
    expect((error as Error).message).toMatch(/simulated rate limit/);
  });

  it('answers an HTML 502 page that the client reports clearly (no JSON parse crash)', async () => {
    await setFaults({ htmlErrorPct: 100 });
    const error = await drain(client.chatStream(request)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmHttpError);
    expect((error as LlmHttpError).status).toBe(502);
    expect((error as Error).message).toMatch(/HTML error page "502 Bad Gateway"/);
    expect((error as LlmHttpError).bodyExcerpt).toContain('<html>');
  });

  it('resets the connection mid-stream: the client sees a cut stream, the server counts a reset', async () => {
    await setFaults({ resetMidStreamPct: 100 });
    const before = sim.stats().requests.resets;
    let chunks = 0;
    const error = await (async () => {
      for await (const _ of client.chatStream({ ...request, max_tokens: 20, ignore_eos: true })) chunks++;
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LlmConnectionError);
    expect(chunks).toBeGreaterThan(0);
    expect(chunks).toBeLessThan(22);
    expect(sim.stats().requests.resets).toBe(before + 1);
  });

  it('stalls every request started within stallMs until the stall ends', async () => {
    await setFaults({ stallMs: 300 });
    sim.resetStats();
    await client.chat({ ...request, max_tokens: 1 });
    const stalled = sim.stats().ttftMs.max;
    // The stall is a lower bound: the first token cannot come before it ends.
    expect(stalled).toBeGreaterThanOrEqual(250);
    await new Promise((r) => setTimeout(r, 300));
    sim.resetStats();
    await client.chat({ ...request, max_tokens: 1 });
    expect(sim.stats().ttftMs.max).toBeLessThan(stalled);
  });

  it('adds extraLatencyMs to TTFT (ordering of server-measured medians), and DELETE restores start-up faults', async () => {
    const measure = async () => {
      sim.resetStats();
      for (let i = 0; i < 5; i++) await client.chat({ ...request, max_tokens: 1 });
      return sim.stats().ttftMs.p50;
    };
    const base = await measure();
    await setFaults({ extraLatencyMs: 80 });
    const slowed = await measure();
    expect(slowed).toBeGreaterThan(base);
    const cleared = await json(await fetch(`${sim.url}/admin/faults`, { method: 'DELETE' }));
    expect(cleared.extraLatencyMs).toBe(0);
  });

  it('refuses bad fault settings with a 400 naming the field', async () => {
    const response = await setFaults({ errorStatus: 404 });
    expect(response.status).toBe(400);
    expect((await json(response)).error.message).toMatch(/errorStatus: must be 500, 429 or 503/);
  });

  it('/admin/stats gives server-side ground truth and resets', async () => {
    await fetch(`${sim.url}/admin/stats/reset`, { method: 'POST' });
    for (let i = 0; i < 3; i++) await drain(client.chatStream(request));
    const stats = await json(await fetch(`${sim.url}/admin/stats`));
    expect(stats).toMatchObject({ simulated: true, requests: { total: 3, completed: 3 } });
    expect(stats.e2eMs.count).toBe(3);
    expect(stats.e2eMs.p99).toBeGreaterThanOrEqual(stats.e2eMs.p50);
    expect(stats.ttftMs.p50).toBeLessThanOrEqual(stats.e2eMs.p50);
  });
});
