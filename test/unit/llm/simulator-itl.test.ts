import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SseParser } from '../../../src/llm/openai/sse.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// vllm:inter_token_latency_seconds must hold the gaps the simulator actually left between
// tokens, not the gaps it planned: a late timer (a busy event loop, a loaded host) is
// exactly what a dashboard or the Prometheus analysis must see.

let sim: TestSimulator;

beforeAll(async () => {
  sim = await startSimulator({ model: 'qwen-itl', ttftMs: 5, tpotMs: 5, jitterSigma: 0, seed: 3 });
});
afterAll(async () => {
  await sim.close();
});

function histogram(text: string, name: string): { sum: number; count: number } {
  const read = (suffix: string) => {
    const match = new RegExp(`^${name}_${suffix}\\{[^}]*\\} ([0-9.e+-]+)$`, 'm').exec(text);
    if (!match) throw new Error(`no ${name}_${suffix} in /metrics`);
    return Number(match[1]);
  };
  return { sum: read('sum'), count: read('count') };
}

describe('simulator inter-token latency metric', () => {
  it('records the measured gaps: a stalled event loop shows in vllm:inter_token_latency_seconds', async () => {
    const tokens = 20;
    const response = await fetch(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'qwen-itl',
        messages: [{ role: 'user', content: 'itl' }],
        max_tokens: tokens,
        ignore_eos: true,
        stream: true,
      }),
    });
    const parser = new SseParser();
    const arrivals: number[] = [];
    let stalled = false;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      const now = performance.now();
      for (const data of parser.push(chunk)) {
        if (data === '[DONE]') continue;
        const content = JSON.parse(data).choices?.[0]?.delta?.content;
        if (typeof content === 'string' && content.length > 0) arrivals.push(now);
      }
      if (!stalled && arrivals.length >= 3) {
        stalled = true;
        // The simulator runs in this process: its token timers cannot fire while this spins.
        const until = performance.now() + 300;
        while (performance.now() < until) {
          // busy
        }
      }
    }
    expect(arrivals).toHaveLength(tokens);
    const itl = histogram(
      await (await fetch(`${sim.url}/metrics`)).text(),
      'vllm:inter_token_latency_seconds',
    );
    expect(itl.count).toBe(tokens - 1);
    // Planned: 19 gaps of 5 ms = 0.095 s. Measured: the 300 ms stall is in there.
    expect(itl.sum).toBeGreaterThan(0.29);
    // And the server's gaps add up to what the client saw between its first and last token.
    const clientSpan = ((arrivals.at(-1) as number) - (arrivals[0] as number)) / 1000;
    expect(Math.abs(itl.sum - clientSpan)).toBeLessThan(0.03);
  });

  it('records a non-streaming answer sent late in its last gap', async () => {
    const before = histogram(
      await (await fetch(`${sim.url}/metrics`)).text(),
      'vllm:inter_token_latency_seconds',
    );
    const pending = fetch(`${sim.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'qwen-itl',
        messages: [{ role: 'user', content: 'itl non-stream' }],
        max_tokens: 10,
        ignore_eos: true,
      }),
    });
    // Let the request arrive and its answer timer be set, then hold the loop past it.
    await new Promise((r) => setTimeout(r, 20));
    const until = performance.now() + 300;
    while (performance.now() < until) {
      // busy
    }
    const answer = (await (await pending).json()) as { usage: { completion_tokens: number } };
    expect(answer.usage.completion_tokens).toBe(10);
    const after = histogram(
      await (await fetch(`${sim.url}/metrics`)).text(),
      'vllm:inter_token_latency_seconds',
    );
    expect(after.count - before.count).toBe(9);
    expect(after.sum - before.sum).toBeGreaterThan(0.2);
  });
});
