import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoadTest } from '../../../src/loadtest/index.js';
import { clientLimitWarning } from '../../../src/loadtest/slo.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// The load generator's own bookkeeping, found by cross-checking it against other load
// generators on the same server: which requests the token check sees, the achieved rate
// of a run stopped by request count, how tokens are counted without usage, and a warning
// when the client's own lateness is a sizeable part of the SLO it judges.

const sse = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;
// Long Chinese pieces: one token each on a vLLM stream, many tokens each for cl100k_base.
const PIECES = ['今天天气很好我们去公园散步吧', '人工智能正在改变世界', '请用一句话介绍你自己', '谢谢'];
const delta = (content: string, finish: string | null = null) =>
  sse({
    id: 'x',
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta: { content }, finish_reason: finish }],
  });

let server: http.Server;
let origin: string;
let sim: TestSimulator;

beforeAll(async () => {
  // Path prefix = behaviour: "wrong-usage" streams 4 chunks but claims 900 output tokens;
  // "no-usage" streams 4 chunks without usage; both answer non-streaming requests alike.
  server = http.createServer((req, res) => {
    const [, behaviour, ...rest] = (req.url ?? '').split('/');
    const path = `/${rest.join('/')}`;
    if (req.method === 'GET' && path === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'm', object: 'model' }] }));
      return;
    }
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const stream = JSON.parse(body).stream === true;
      const completion = behaviour === 'wrong-usage' ? 900 : undefined;
      if (!stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            choices: [
              { index: 0, message: { role: 'assistant', content: PIECES.join('') }, finish_reason: 'stop' },
            ],
            ...(completion ? { usage: { prompt_tokens: 10, completion_tokens: completion } } : {}),
          }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const usage = completion
        ? sse({ choices: [], usage: { prompt_tokens: 10, completion_tokens: completion } })
        : '';
      res.end(
        `${PIECES.map((p, i) => delta(p, i === PIECES.length - 1 ? 'stop' : null)).join('')}${usage}data: [DONE]\n\n`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sim = await startSimulator({ ttftMs: 20, tpotMs: 5, jitterSigma: 0.05, seed: 5 });
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await sim?.close();
});

describe('load generator bookkeeping', () => {
  it('cross-checks server usage on measured answers even after a warm-up of more than 32 requests', async () => {
    for (const stream of [true, false]) {
      const report = await runLoadTest({
        url: `${origin}/wrong-usage/v1`,
        mode: 'closed',
        concurrency: 16,
        warmupSeconds: 1,
        maxRequests: 20,
        stream,
      });
      expect(report.pacing.warmupRequests, `stream ${stream}`).toBeGreaterThan(32);
      expect(report.results.tokens.output).toBe(20 * 900);
      expect(report.warnings.join('\n'), `stream ${stream}`).toMatch(
        stream
          ? /server usage and the count of streamed chunks disagree by more than 3x over 20 checked answers \(usage 18000 output tokens, chunks 80\)/
          : /server usage and the cl100k_base estimate disagree by more than 3x over 16 checked answers \(usage 14400 output tokens, estimate \d+\)/,
      );
    }
  });

  it('takes a closed loop stopped by request count at its measured elapsed time', async () => {
    // One wave of 8 requests (all sent within a millisecond), then two waves.
    for (const maxRequests of [8, 16]) {
      const report = await runLoadTest({
        url: sim.baseUrl,
        mode: 'closed',
        concurrency: 8,
        maxRequests,
        maxTokens: 8,
        ignoreEos: true,
      });
      const { requests, durationSeconds } = report.results;
      expect(requests).toBe(maxRequests);
      // Requests of ~55 ms each: about 8 per 55 ms, not 8 over the microseconds between
      // the first and the last send of a wave.
      const measured = requests / durationSeconds;
      expect(report.pacing.achievedRps, `${maxRequests} requests`).toBeGreaterThan(measured * 0.7);
      expect(report.pacing.achievedRps, `${maxRequests} requests`).toBeLessThan(measured * 1.3);
      expect(report.pacing.achievedRps).toBeLessThan(400);
    }
  });

  it('takes an open loop stopped by request count before its duration at the time its arrivals took', async () => {
    const report = await runLoadTest({
      url: sim.baseUrl,
      requestsPerSecond: 50,
      burstiness: 50,
      durationSeconds: 30,
      maxRequests: 25,
      maxTokens: 2,
    });
    expect(report.results.requests).toBe(25);
    // Over the time the arrivals took (~0.5 s), not the 30 s duration (which would say 0.8
    // req/s); the lower bound leaves room for a busy host delaying the sends.
    expect(report.pacing.achievedRps).toBeGreaterThan(20);
    expect(report.pacing.achievedRps).toBeLessThan(60);
  });

  it('counts streamed chunks when the server sends no usage, and says so', async () => {
    const report = await runLoadTest({
      url: `${origin}/no-usage/v1`,
      mode: 'closed',
      concurrency: 2,
      maxRequests: 6,
    });
    expect(report.results.ok).toBe(6);
    expect(report.results.tokens.output).toBe(6 * PIECES.length);
    expect(report.results.tokens.sources).toEqual({ usage: 0, chunks: 6, estimate: 0, none: 0 });
    // TPOT over the chunk count, not over a tokenizer's.
    expect(report.results.latency.tpot?.count).toBe(6);
    expect(report.warnings.join('\n')).toMatch(
      /6 answers carried no usage: output tokens are their streamed content chunks \(vLLM streams one token per chunk\), input tokens cl100k_base estimates/,
    );
  });

  it('estimates tokens with the tokenizer only where no stream exists', async () => {
    const report = await runLoadTest({
      url: `${origin}/no-usage/v1`,
      mode: 'closed',
      concurrency: 2,
      maxRequests: 6,
      stream: false,
    });
    expect(report.results.ok).toBe(6);
    expect(report.results.tokens.sources).toEqual({ usage: 0, chunks: 0, estimate: 6, none: 0 });
    expect(report.results.tokens.output).toBeGreaterThan(6 * PIECES.length);
    expect(report.warnings.join('\n')).toMatch(
      /6 answers carried no usage and no stream: their token counts are cl100k_base estimates/,
    );
  });

  it('warns when the client pacing lag p99 is over 10 % of a latency SLO it judges', async () => {
    const busy = setTimeout(() => {
      const until = performance.now() + 300;
      while (performance.now() < until) {
        // the load generator cannot send while this runs
      }
    }, 500);
    const stalled = await runLoadTest({
      url: sim.baseUrl,
      requestsPerSecond: 50,
      burstiness: 50,
      durationSeconds: 1.5,
      maxTokens: 2,
      slo: { p99E2eMs: 1000, p99TpotMs: 5000 },
    });
    clearTimeout(busy);
    expect(stalled.pacing.lagP99Ms).toBeGreaterThan(100);
    expect(stalled.pacing.clientLimited).toBe(true);
    expect(stalled.warnings.join('\n')).toMatch(
      /client pacing lag p99 [\d.]+ ms is over 10 % of the p99 E2E SLO \(1000 ms\): the load generator, not the server, limits this result/,
    );
    // The same lag limit against a 10 s SLO: a busy test host's lag stays well under 1 s.
    const calm = await runLoadTest({
      url: sim.baseUrl,
      requestsPerSecond: 50,
      burstiness: 50,
      durationSeconds: 1,
      maxTokens: 2,
      slo: { p99E2eMs: 10_000 },
    });
    expect(calm.pacing.clientLimited).toBe(false);
    expect(calm.warnings.join('\n')).not.toMatch(/client pacing lag/);
  });
});

describe('clientLimitWarning', () => {
  it('compares the pacing lag p99 with the tightest TTFT or E2E SLO, the latencies a late send is in', () => {
    expect(clientLimitWarning(undefined, { p99E2eMs: 100 })).toBeUndefined();
    expect(clientLimitWarning(50, {})).toBeUndefined();
    expect(clientLimitWarning(10, { p99E2eMs: 100 })).toBeUndefined();
    expect(clientLimitWarning(11, { p99E2eMs: 100, p50TtftMs: 200 })).toMatch(
      /^client pacing lag p99 11 ms is over 10 % of the p99 E2E SLO \(100 ms\): the load generator, not the server, limits this result/,
    );
    expect(clientLimitWarning(11, { p99E2eMs: 300, p95TtftMs: 100 })).toMatch(
      /of the p95 TTFT SLO \(100 ms\)/,
    );
    // ITL and TPOT are gaps after the first token: a late send is not in them.
    expect(clientLimitWarning(50, { p99TpotMs: 10, p99ItlMs: 10 })).toBeUndefined();
  });
});
