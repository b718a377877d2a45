import { describe, expect, it } from 'vitest';
import {
  effectiveConcurrency,
  loadTestRequestFromProfile,
  parseLoadTestRequest,
} from '../../../src/domain/load-test.js';
import { loadTestProfileSchema, parsePromotionSpec } from '../../../src/domain/promotion-spec.js';
import { InputValidationError } from '../../../src/domain/validation.js';

function issues(input: unknown): string {
  try {
    parseLoadTestRequest(input);
  } catch (error) {
    expect(error).toBeInstanceOf(InputValidationError);
    return (error as InputValidationError).message;
  }
  throw new Error('expected an InputValidationError');
}

describe('load test request validation', () => {
  it('fills defaults: open loop, 10 req/s, 60 s when no stop condition is given', () => {
    const r = parseLoadTestRequest({ url: 'http://127.0.0.1:8000/v1' });
    expect(r).toMatchObject({
      mode: 'open',
      requestsPerSecond: 10,
      durationSeconds: 60,
      stream: true,
      prompts: { kind: 'builtin-zh' },
    });
    expect(effectiveConcurrency(r)).toBe(1000);
    expect(effectiveConcurrency(parseLoadTestRequest({ url: 'http://x:1', mode: 'closed' }))).toBe(16);
    expect(parseLoadTestRequest({ url: 'http://x:1', maxRequests: 5 }).durationSeconds).toBeUndefined();
    expect(parseLoadTestRequest({ url: 'http://x:1', prompts: 'synthetic' }).prompts).toMatchObject({
      kind: 'synthetic',
      minInputTokens: 32,
    });
  });

  it('refuses invalid URLs, naming the field', () => {
    expect(issues({ url: 'not a url' })).toMatch(/url: must be an absolute http\(s\) URL/);
    expect(issues({ url: 'ftp://host/v1' })).toMatch(/url: must be an absolute http\(s\) URL/);
    expect(issues({})).toMatch(/url:/);
  });

  it('refuses a zero or negative rate and absurd concurrency, naming each field and rule', () => {
    expect(issues({ url: 'http://x:1', requestsPerSecond: 0 })).toMatch(/requestsPerSecond: must be > 0/);
    expect(issues({ url: 'http://x:1', requestsPerSecond: -3 })).toMatch(/requestsPerSecond: must be > 0/);
    expect(issues({ url: 'http://x:1', concurrency: 1_000_000 })).toMatch(/concurrency: must be <= 10000/);
    expect(issues({ url: 'http://x:1', concurrency: 0 })).toMatch(/concurrency: must be >= 1/);
    expect(issues({ url: 'http://x:1', concurrency: 2.5 })).toMatch(/concurrency: must be a whole number/);
    expect(issues({ url: 'http://x:1', rampUpSeconds: -1, warmupSeconds: -1 })).toMatch(
      /warmupSeconds: must be >= 0.*rampUpSeconds: must be >= 0/,
    );
    // Every bad field at once.
    const all = issues({ url: 'nope', requestsPerSecond: 0, durationSeconds: -1 });
    expect(all).toMatch(/url:/);
    expect(all).toMatch(/requestsPerSecond:/);
    expect(all).toMatch(/durationSeconds: must be > 0/);
  });

  it('refuses unknown SLO names and bad prompt sources', () => {
    expect(issues({ url: 'http://x:1', slo: { p98E2eMs: 10 } })).toMatch(/slo:.*p98E2eMs|Unrecognized key/);
    expect(issues({ url: 'http://x:1', slo: { p99E2eMs: 0 } })).toMatch(/slo.p99E2eMs: must be > 0 ms/);
    expect(
      issues({ url: 'http://x:1', prompts: { kind: 'synthetic', minInputTokens: 50, maxInputTokens: 10 } }),
    ).toMatch(/prompts.minInputTokens: minInputTokens must be <= maxInputTokens/);
    expect(issues({ url: 'http://x:1', prompts: { kind: 'nope' } })).toMatch(/prompts/);
  });

  it('refuses an arrival rate or burstiness on a closed loop instead of ignoring it', () => {
    expect(issues({ url: 'http://x:1', mode: 'closed', requestsPerSecond: 5 })).toMatch(
      /requestsPerSecond: only applies to mode "open": a closed loop keeps `concurrency` requests in flight/,
    );
    expect(issues({ url: 'http://x:1', mode: 'closed', burstiness: 0.5 })).toMatch(
      /burstiness: only applies to mode "open"/,
    );
    // A closed loop gets no rate; parsing its own output again (CLI -> workflow -> activity) holds.
    const closed = parseLoadTestRequest({ url: 'http://x:1', mode: 'closed', concurrency: 4 });
    expect(closed.requestsPerSecond).toBeUndefined();
    expect(closed.burstiness).toBeUndefined();
    expect(parseLoadTestRequest(JSON.parse(JSON.stringify(closed)))).toEqual(closed);
    const open = parseLoadTestRequest({ url: 'http://x:1' });
    expect(parseLoadTestRequest(JSON.parse(JSON.stringify(open)))).toEqual(open);
  });

  it('refuses the same in a promotion spec load-test profile, naming the field', () => {
    expect(() =>
      parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat', loadTest: { mode: 'closed', requestsPerSecond: 5 } }),
    ).toThrow(/loadTest\.requestsPerSecond: only applies to mode "open"/);
    expect(() =>
      parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat', loadTest: { mode: 'closed', burstiness: 2 } }),
    ).toThrow(/loadTest\.burstiness: only applies to mode "open"/);
    // A closed profile maps onto a request the request schema accepts.
    const spec = parsePromotionSpec({
      model: 'qwen/Qwen-7B-Chat',
      loadTest: { mode: 'closed', concurrency: 2 },
    });
    expect(spec.loadTest.requestsPerSecond).toBeUndefined();
    const request = parseLoadTestRequest(
      loadTestRequestFromProfile(spec.loadTest, 'http://svc:80/openai/v1'),
    );
    expect(request).toMatchObject({ mode: 'closed', concurrency: 2 });
    expect(request.requestsPerSecond).toBeUndefined();
    // Parsing a parsed spec again holds (the CLI parses, the workflow parses again).
    expect(parsePromotionSpec(JSON.parse(JSON.stringify(spec))).loadTest).toEqual(spec.loadTest);
    expect(parsePromotionSpec({ model: 'qwen/Qwen-7B-Chat' }).loadTest).toMatchObject({
      mode: 'open',
      requestsPerSecond: 10,
      burstiness: 1,
    });
  });

  it('maps a promotion load-test profile onto a request', () => {
    const profile = loadTestProfileSchema.parse({});
    const request = parseLoadTestRequest(
      loadTestRequestFromProfile(profile, 'http://svc:80/openai/v1', 'qwen'),
    );
    expect(request).toMatchObject({
      url: 'http://svc:80/openai/v1',
      model: 'qwen',
      mode: 'open',
      requestsPerSecond: profile.requestsPerSecond,
      durationSeconds: profile.durationSeconds,
      slo: { p99TtftMs: 300, p99TpotMs: 100, maxErrorRatePct: 1 },
    });
    // The profile's concurrency is for closed loops; an open loop keeps its wide cap.
    expect(effectiveConcurrency(request)).toBe(1000);
  });
});
