import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LoadTestCancelledError, type RequestRecord, runLoadTest } from '../../../src/loadtest/index.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// The load generator against the serving simulator (vLLM's OpenAI API and timing model,
// with fault injection and server-side ground truth).

let sim: TestSimulator;

beforeAll(async () => {
  sim = await startSimulator({ ttftMs: 40, tpotMs: 5, jitterSigma: 0.1, seed: 11 });
});
afterEach(() => {
  sim.clearFaults();
  sim.resetStats();
});
afterAll(async () => {
  await sim?.close();
});

describe('load generator against the serving simulator', () => {
  it('delivers the open-loop rate and measures what the server measured', async () => {
    const report = await runLoadTest({
      url: sim.baseUrl,
      requestsPerSecond: 40,
      burstiness: 50, // nearly regular gaps: the achieved rate is then close to the target
      durationSeconds: 3,
      maxTokens: 16,
      ignoreEos: true,
      slo: { p99TtftMs: 5000, maxErrorRatePct: 0 },
    });
    const server = sim.stats();
    expect(report.results.errorRatePct).toBe(0);
    expect(report.pacing.sent).toBe(report.pacing.scheduled);
    expect(report.pacing.scheduled).toBeGreaterThanOrEqual(110);
    expect(report.pacing.achievedRps).toBeGreaterThan(34);
    expect(report.pacing.achievedRps).toBeLessThan(46);
    expect(server.requests.completed).toBe(report.results.requests);
    // ignore_eos: exactly max_tokens from usage, so TPOT = (E2E - TTFT) / 15.
    expect(report.results.tokens).toMatchObject({
      output: 16 * report.results.ok,
      sources: { usage: report.results.ok, estimate: 0, none: 0 },
    });
    expect(report.results.latency.itl?.count).toBe(15 * report.results.ok);
    // The client sees at least what the server recorded, and little more on loopback.
    const client = report.results.latency;
    expect(client.ttft!.p50Ms).toBeGreaterThanOrEqual(server.ttftMs.p50 - 1);
    expect(client.ttft!.p50Ms - server.ttftMs.p50).toBeLessThan(25);
    expect(client.e2e!.p50Ms).toBeGreaterThanOrEqual(server.e2eMs.p50 - 1);
    expect(client.e2e!.p50Ms - server.e2eMs.p50).toBeLessThan(25);
    expect(report.slo.passed).toBe(true);
    expect(report.results.goodput.pct).toBe(100);
  });

  it('shows a 1 s server stall in open-loop p99, without sending fewer requests', async () => {
    setTimeout(() => sim.setFaults({ stallMs: 1000 }), 1000);
    const report = await runLoadTest({
      url: sim.baseUrl,
      requestsPerSecond: 30,
      burstiness: 50,
      durationSeconds: 4,
      maxTokens: 8,
      slo: { p99E2eMs: 500 },
    });
    const e2e = report.results.latency.e2e!;
    expect(report.pacing.sent).toBe(report.pacing.scheduled);
    expect(report.pacing.achievedRps).toBeGreaterThan(25);
    // About a quarter of the arrivals came during the stall and waited for it to end.
    expect(e2e.p99Ms).toBeGreaterThan(700);
    expect(e2e.p50Ms).toBeLessThan(500);
    expect(report.slo.passed).toBe(false);
    expect(report.slo.results[0]?.message).toMatch(/p99 E2E \d+(\.\d)? ms misses SLO <= 500 ms/);
    // The stall is the server's: the client sent on time (its pacing lag far under the 1 s
    // stall, with room for a busy host: 114 ms was seen beside two CPU hogs).
    expect(report.results.latency.queue!.p99Ms).toBeLessThan(400);
  });

  it('counts a stalled client (busy event loop) as queue time and catches up on the schedule', async () => {
    setTimeout(() => {
      const until = performance.now() + 300;
      while (performance.now() < until) {
        // the load generator cannot send while this runs
      }
    }, 500);
    const report = await runLoadTest({
      url: sim.baseUrl,
      requestsPerSecond: 50,
      burstiness: 50,
      durationSeconds: 2,
      maxTokens: 4,
    });
    expect(report.pacing.sent).toBe(report.pacing.scheduled);
    expect(report.pacing.lagMaxMs).toBeGreaterThan(250);
    expect(report.results.latency.queue!.maxMs).toBeGreaterThan(250);
    // Latency runs from the intended send time, so the client's own stall is not hidden.
    expect(report.results.latency.e2e!.maxMs).toBeGreaterThan(250);
  });

  it('does not count the warm-up', async () => {
    const report = await runLoadTest({
      url: sim.baseUrl,
      requestsPerSecond: 20,
      burstiness: 50,
      warmupSeconds: 1,
      durationSeconds: 1,
      maxTokens: 4,
    });
    expect(report.pacing.warmupRequests).toBeGreaterThanOrEqual(15);
    expect(report.results.requests).toBeGreaterThanOrEqual(15);
    expect(report.results.requests).toBeLessThanOrEqual(25);
    expect(sim.stats().requests.completed).toBe(report.pacing.warmupRequests + report.results.requests);
  });

  it('stops a closed loop at maxRequests, with that many requests in flight', async () => {
    const inFlight: number[] = [];
    const report = await runLoadTest(
      { url: sim.baseUrl, mode: 'closed', concurrency: 4, maxRequests: 25, maxTokens: 8 },
      { progressIntervalMs: 10, onProgress: (p) => inFlight.push(p.inFlight) },
    );
    expect(report.results.requests).toBe(25);
    expect(report.pacing).toMatchObject({ mode: 'closed', concurrency: 4, sent: 25 });
    expect(report.pacing.targetRps).toBeUndefined();
    expect(sim.stats().requests.completed).toBe(25);
    expect(Math.max(...inFlight)).toBe(4);
  });

  it("counts the simulator's injected faults by class", async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [
        { errorRatePct: 100, errorStatus: 429, retryAfterSeconds: 7 },
        'rate_limited',
        /HTTP 429 Too Many Requests, Retry-After 7s: simulated rate limit/,
      ],
      [
        { errorRatePct: 100, errorStatus: 503, retryAfterSeconds: 2 },
        'http_5xx',
        /HTTP 503: simulated overload/,
      ],
      [{ resetMidStreamPct: 100 }, 'connection_reset', /connection closed by the server mid-answer/],
      [
        { htmlErrorPct: 100 },
        'html_error_page',
        /HTTP 502 answered with an HTML page instead of an event stream: 502 Bad Gateway/,
      ],
    ];
    for (const [faults, errorClass, message] of cases) {
      sim.setFaults(faults);
      const report = await runLoadTest({
        url: sim.baseUrl,
        mode: 'closed',
        concurrency: 2,
        maxRequests: 8,
        maxTokens: 8,
      });
      sim.clearFaults();
      expect(report.results.errors.byClass, errorClass).toEqual({ [errorClass]: 8 });
      expect(report.results.errors.samples[0]?.message).toMatch(message);
    }
    // Partial faults: errors and successes side by side.
    sim.setFaults({ resetMidStreamPct: 50 });
    const mixed = await runLoadTest({
      url: sim.baseUrl,
      mode: 'closed',
      concurrency: 4,
      maxRequests: 40,
      maxTokens: 8,
      slo: { maxErrorRatePct: 5 },
    });
    expect(mixed.results.ok).toBeGreaterThan(5);
    expect(mixed.results.errors.byClass.connection_reset).toBeGreaterThan(5);
    expect(mixed.results.ok + (mixed.results.errors.byClass.connection_reset ?? 0)).toBe(40);
    expect(mixed.slo.passed).toBe(false);
  });

  it('measures non-streaming requests end to end', async () => {
    const report = await runLoadTest({
      url: sim.baseUrl,
      mode: 'closed',
      concurrency: 2,
      maxRequests: 10,
      maxTokens: 8,
      stream: false,
    });
    expect(report.results.ok).toBe(10);
    expect(report.results.latency.e2e?.count).toBe(10);
    expect(report.results.latency.ttft).toBeUndefined();
    expect(report.results.tokens.sources.usage).toBe(10);
  });

  it('sends synthetic prompts of random length', async () => {
    const records: RequestRecord[] = [];
    await runLoadTest(
      {
        url: sim.baseUrl,
        mode: 'closed',
        concurrency: 2,
        maxRequests: 20,
        maxTokens: 4,
        prompts: { kind: 'synthetic', minInputTokens: 10, maxInputTokens: 400 },
      },
      { onRecord: (r) => records.push(r) },
    );
    const inputs = records.map((r) => r.inputTokens ?? 0);
    expect(Math.max(...inputs) - Math.min(...inputs)).toBeGreaterThan(100);
  });

  it('stops when cancelled, aborting what is in flight', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    await expect(
      runLoadTest(
        { url: sim.baseUrl, requestsPerSecond: 20, durationSeconds: 30, maxTokens: 400 },
        { signal: controller.signal },
      ),
    ).rejects.toThrow(LoadTestCancelledError);
    await new Promise((r) => setTimeout(r, 50));
    const stats = sim.stats();
    expect(stats.requests.aborted).toBeGreaterThan(0);
    expect(stats.running).toBe(0);
  });

  it('drops starts it cannot queue and counts them as client overload errors', async () => {
    const report = await runLoadTest(
      {
        url: sim.baseUrl,
        requestsPerSecond: 50,
        burstiness: 50,
        concurrency: 2,
        durationSeconds: 1,
        maxTokens: 100,
        ignoreEos: true,
      },
      { maxQueued: 3 },
    );
    expect(report.pacing.droppedStarts).toBeGreaterThan(10);
    expect(report.results.errors.byClass.client_overload).toBe(report.pacing.droppedStarts);
    expect(report.pacing.scheduled).toBe(report.pacing.sent + report.pacing.droppedStarts);
    expect(report.warnings.join('\n')).toMatch(
      /arrivals were dropped because 2 requests were in flight and the client queue was full/,
    );
    // Queued arrivals waited for a slot: their wait shows as queue time and in E2E.
    expect(report.results.latency.queue!.maxMs).toBeGreaterThan(100);
  });
});
