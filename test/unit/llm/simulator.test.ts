import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputValidationError } from '../../../src/domain/validation.js';
import { SseChunkWriter } from '../../../src/llm/openai/chunk-writer.js';
import { SseParser } from '../../../src/llm/openai/sse.js';
import { usageOf } from '../../../src/llm/openai/wire.js';
import { VLLM_METRIC_NAMES } from '../../../src/llm/simulator/metrics.js';
import { parseSimulatorOptions, simulatorOptionsFromEnv } from '../../../src/llm/simulator/options.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests inspect arbitrary JSON answers
const json = (response: Response): Promise<any> => response.json();

let sim: TestSimulator;

beforeAll(async () => {
  sim = await startSimulator({ model: 'qwen-test', ttftMs: 5, tpotMs: 1, seed: 7 });
});
afterAll(async () => {
  await sim.close();
});

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${sim.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function sseEvents(response: Response): Promise<string[]> {
  const parser = new SseParser();
  const events: string[] = [];
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>)
    events.push(...parser.push(chunk));
  return [...events, ...parser.end()];
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'qwen-test',
  messages: [{ role: 'user', content }],
  ...extra,
});

describe('SSE chunk format', () => {
  it('builds OpenAI-shaped chunks that parse as JSON', () => {
    const writer = new SseChunkWriter('chat', 'chatcmpl-1', 1700000000, 'm', true);
    const parse = (chunk: string) => {
      expect(chunk.startsWith('data: ')).toBe(true);
      expect(chunk.endsWith('\n\n')).toBe(true);
      return JSON.parse(chunk.slice(6));
    };
    expect(parse(writer.role()).choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const token = parse(writer.token(JSON.stringify('模型"\n')));
    expect(token).toMatchObject({
      id: 'chatcmpl-1',
      object: 'chat.completion.chunk',
      model: 'm',
      usage: null,
    });
    expect(token.choices[0]).toEqual({
      index: 0,
      delta: { content: '模型"\n' },
      logprobs: null,
      finish_reason: null,
    });
    expect(parse(writer.finish('stop')).choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    expect(parse(writer.usage(usageOf(3, 4)))).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
    });
  });

  it('streams role, ~1-token deltas, finish_reason, a usage-only chunk, then [DONE]', async () => {
    const response = await post(
      '/v1/chat/completions',
      chat('介绍一下量化', { stream: true, max_tokens: 12, stream_options: { include_usage: true } }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    expect(response.headers.get('x-qwenops-simulated')).toBe('true');
    const events = await sseEvents(response);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const usageChunk = chunks.at(-1);
    expect(usageChunk.choices).toEqual([]);
    const finish = chunks.at(-2);
    expect(['stop', 'length']).toContain(finish.choices[0].finish_reason);
    const deltas = chunks.slice(1, -2);
    expect(deltas.length).toBe(usageChunk.usage.completion_tokens);
    for (const d of deltas) {
      expect(d.choices[0].delta.content.length).toBeGreaterThan(0);
      expect(d.choices[0].delta.content.length).toBeLessThanOrEqual(3);
      expect(d.choices[0].finish_reason).toBeNull();
    }
    expect(usageChunk.usage.completion_tokens).toBeLessThanOrEqual(12);
    expect(usageChunk.usage.prompt_tokens).toBeGreaterThan(0);
  });

  it('omits the usage chunk without include_usage, and ignore_eos gives exactly max_tokens', async () => {
    const events = await sseEvents(
      await post('/v1/chat/completions', chat('hi', { stream: true, max_tokens: 7, ignore_eos: true })),
    );
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.every((c) => c.choices.length === 1 && c.usage === undefined)).toBe(true);
    expect(chunks.length).toBe(1 + 7 + 1);
    expect(chunks.at(-1).choices[0].finish_reason).toBe('length');
  });

  it('answers non-streaming requests with usage, deterministic per (seed, prompt)', async () => {
    const first = await json(await post('/v1/chat/completions', chat('同一个问题', { max_tokens: 30 })));
    const again = await json(await post('/v1/chat/completions', chat('同一个问题', { max_tokens: 30 })));
    const other = await json(await post('/v1/chat/completions', chat('另一个问题', { max_tokens: 30 })));
    expect(first.object).toBe('chat.completion');
    expect(first.choices[0].message.role).toBe('assistant');
    expect(first.choices[0].message.content).toBe(again.choices[0].message.content);
    expect(first.choices[0].message.content).not.toBe(other.choices[0].message.content);
    expect(first.choices[0].message.content).toMatch(/[\u4e00-\u9fff]/);
    expect(first.usage.total_tokens).toBe(first.usage.prompt_tokens + first.usage.completion_tokens);
  });

  it('serves /v1/completions with the same timing model', async () => {
    const body = await json(
      await post('/v1/completions', { model: 'qwen-test', prompt: '从前', max_tokens: 5 }),
    );
    expect(body.object).toBe('text_completion');
    expect(body.choices[0].text.length).toBeGreaterThan(0);
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(5);
  });
});

describe('request validation (like vLLM)', () => {
  it('refuses a missing messages field with a 400 naming it', async () => {
    const response = await post('/v1/chat/completions', { model: 'qwen-test' });
    expect(response.status).toBe(400);
    const body = await json(response);
    expect(body.error).toMatchObject({ type: 'BadRequestError', param: 'messages', code: 400 });
    expect(body.error.message).toContain('messages: Field required');
  });

  it('refuses max_tokens <= 0, naming the field', async () => {
    const response = await post('/v1/chat/completions', chat('x', { max_tokens: 0 }));
    expect(response.status).toBe(400);
    const body = await json(response);
    expect(body.error.param).toBe('max_tokens');
    expect(body.error.message).toMatch(/max_tokens: must be at least 1/);
  });

  it('answers 404 for an unknown model and 400 for malformed JSON or a too long request', async () => {
    const unknown = await post('/v1/chat/completions', { ...chat('x'), model: 'gpt-4' });
    expect(unknown.status).toBe(404);
    expect((await json(unknown)).error.message).toBe('The model `gpt-4` does not exist.');
    const malformed = await post('/v1/chat/completions', '{"messages": [');
    expect(malformed.status).toBe(400);
    expect((await json(malformed)).error.message).toMatch(/malformed JSON/);
    const tooLong = await post('/v1/chat/completions', chat('x', { max_tokens: 100_000 }));
    expect(tooLong.status).toBe(400);
    expect((await json(tooLong)).error.message).toMatch(/maximum context length is 8192 tokens/);
  });

  it('accepts a request without model (the served one) and ignores unknown fields', async () => {
    const response = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 2,
      frequency_penalty: 0.5,
    });
    expect(response.status).toBe(200);
    expect((await json(response)).model).toBe('qwen-test');
  });
});

describe('observability surfaces', () => {
  it('/metrics exposes every current vLLM name, labelled model_name, and none of the removed ones', async () => {
    await post('/v1/chat/completions', chat('metrics', { max_tokens: 3 }));
    const response = await fetch(`${sim.url}/metrics`);
    const text = await response.text();
    for (const name of VLLM_METRIC_NAMES) {
      expect(text).toContain(`# TYPE ${name} `);
      expect(text).toMatch(new RegExp(`^${name}(_bucket|_sum|_count)?\\{[^}]*model_name="qwen-test"`, 'm'));
    }
    expect(text).toMatch(
      /vllm:request_success_total\{model_name="qwen-test",finished_reason="(stop|length)"\} [1-9]/,
    );
    expect(text).not.toContain('vllm:time_per_output_token_seconds');
    expect(text).not.toContain('vllm:gpu_cache_usage_perc');
  });

  it('says it is a simulation in /v1/models and /health', async () => {
    const models = await json(await fetch(`${sim.url}/v1/models`));
    expect(models.data[0]).toMatchObject({ id: 'qwen-test', object: 'model', owned_by: 'qwenops-simulator' });
    const health = await fetch(`${sim.url}/health`);
    expect(health.status).toBe(200);
    expect(await json(health)).toMatchObject({ status: 'ok', simulated: true });
  });

  it('queues beyond max concurrency (FIFO) and reports queue time in stats', async () => {
    const narrow = await startSimulator({ maxConcurrency: 1, ttftMs: 20, tpotMs: 1, jitterSigma: 0 });
    try {
      const send = () =>
        fetch(`${narrow.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            messages: [{ role: 'user', content: 'q' }],
            max_tokens: 2,
            ignore_eos: true,
          }),
        }).then((r) => json(r));
      await Promise.all([send(), send(), send()]);
      const stats = narrow.stats();
      expect(stats.requests.completed).toBe(3);
      // The third request waited for the two before it.
      expect(stats.queueMs.max).toBeGreaterThan(stats.queueMs.p50);
      expect(stats.e2eMs.max).toBeGreaterThanOrEqual(stats.e2eMs.p50);
      const metrics = await (await fetch(`${narrow.url}/metrics`)).text();
      expect(metrics).toMatch(/vllm:request_queue_time_seconds_count\{model_name="qwen-7b-chat"\} 3/);
      narrow.resetStats();
      expect(narrow.stats().requests.completed).toBe(0);
    } finally {
      await narrow.close();
    }
  });

  it('answers 503 "loading" on /health during the start-up delay, then 200', async () => {
    const loading = await startSimulator({ startupDelayMs: 300 });
    try {
      const first = await fetch(`${loading.url}/health`);
      expect(first.status).toBe(503);
      expect((await json(first)).status).toBe('loading');
      let status = 503;
      while (status === 503) {
        await new Promise((r) => setTimeout(r, 50));
        status = (await fetch(`${loading.url}/health`)).status;
      }
      expect(status).toBe(200);
    } finally {
      await loading.close();
    }
  });
});

describe('options', () => {
  it('reads QWENOPS_SIM_* variables, faults included', () => {
    const options = parseSimulatorOptions(
      simulatorOptionsFromEnv({
        QWENOPS_SIM_TTFT_MS: '120',
        QWENOPS_SIM_EXTRA_LATENCY_MS: '250',
        QWENOPS_SIM_ERROR_RATE_PCT: '5',
        QWENOPS_SIM_MAX_CONCURRENCY: '8',
        QWENOPS_SIM_SEED: '3',
      }),
    );
    expect(options).toMatchObject({ ttftMs: 120, maxConcurrency: 8, seed: 3 });
    expect(options.faults).toMatchObject({ extraLatencyMs: 250, errorRatePct: 5 });
  });

  it('names the bad variable or field', () => {
    expect(() => simulatorOptionsFromEnv({ QWENOPS_SIM_TPOT_MS: 'fast' })).toThrow(
      /QWENOPS_SIM_TPOT_MS: must be a number/,
    );
    expect(() => parseSimulatorOptions({ maxConcurrency: 0 })).toThrow(InputValidationError);
    expect(() => parseSimulatorOptions({ faults: { errorRatePct: 120 } })).toThrow(
      /faults\.errorRatePct: must be <= 100/,
    );
  });
});
