import { describe, expect, it } from 'vitest';
import {
  ProgressLine,
  parseDurationSeconds,
  parseSloFlags,
  requestFromFlags,
} from '../../../src/cli/commands/loadtest.js';
import { parseLoadTestRequest } from '../../../src/domain/load-test.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { runCli } from '../cli/run-cli.js';

describe('qwenops loadtest flags', () => {
  it('parses durations', () => {
    expect(parseDurationSeconds('60s')).toBe(60);
    expect(parseDurationSeconds('500ms')).toBe(0.5);
    expect(parseDurationSeconds('2m')).toBe(120);
    expect(parseDurationSeconds('1h')).toBe(3600);
    expect(parseDurationSeconds('45')).toBe(45);
    expect(() => parseDurationSeconds('-1s')).toThrow(/must be a duration/);
    expect(() => parseDurationSeconds('1d')).toThrow(/must be a duration/);
  });

  it('maps --slo names onto the request SLOs', () => {
    expect(
      parseSloFlags([
        'p99_e2e_ms=300',
        'p95_ttft_ms=150',
        'error_rate_pct=1',
        'output_tokens_per_s=400',
        'goodput_pct=95',
        'p99E2eMs=250',
      ]),
    ).toEqual({
      p99E2eMs: 250,
      p95TtftMs: 150,
      maxErrorRatePct: 1,
      minOutputTokensPerSecond: 400,
      minGoodputPct: 95,
    });
    expect(() => parseSloFlags(['p99_e2e_ms=fast', 'latency=3', 'p99_e2e_ms'])).toThrow(InputValidationError);
    try {
      parseSloFlags(['p99_e2e_ms=fast', 'latency=3']);
    } catch (error) {
      expect((error as InputValidationError).issues.map((i) => i.path)).toEqual([
        '--slo p99_e2e_ms=fast',
        '--slo latency=3',
      ]);
    }
  });

  it('builds a request: closed loop when only --concurrency is given, prompt sources', () => {
    const closed = parseLoadTestRequest(
      requestFromFlags({ url: 'http://h:1/v1', concurrency: 8, stream: true, store: true }),
    );
    expect(closed).toMatchObject({ mode: 'closed', concurrency: 8, durationSeconds: 60 });
    const open = parseLoadTestRequest(
      requestFromFlags({
        url: 'http://h:1/v1',
        rate: 20,
        duration: 30,
        stream: false,
        store: true,
        prompts: 'synthetic',
        inputTokens: '10-20',
        slo: ['p99_e2e_ms=300'],
      }),
    );
    expect(open).toMatchObject({
      mode: 'open',
      requestsPerSecond: 20,
      durationSeconds: 30,
      stream: false,
      prompts: { kind: 'synthetic', minInputTokens: 10, maxInputTokens: 20 },
      slo: { p99E2eMs: 300 },
    });
    const file = requestFromFlags({ url: 'http://h:1/v1', stream: true, store: true, prompts: 'p.jsonl' });
    expect(file.prompts).toMatchObject({ kind: 'jsonl', path: expect.stringMatching(/\/p\.jsonl$/) });
  });
});

describe('qwenops loadtest flags that only apply with another', () => {
  const base = { url: 'http://h:1/v1', stream: true, store: true };

  it('refuses --input-tokens without --prompts synthetic, and open-loop flags on a closed loop', () => {
    const issues = (flags: Parameters<typeof requestFromFlags>[0]) => {
      try {
        requestFromFlags(flags);
      } catch (error) {
        expect(error).toBeInstanceOf(InputValidationError);
        return (error as InputValidationError).issues;
      }
      throw new Error('expected the flags to be refused');
    };
    expect(issues({ ...base, inputTokens: '10-20' })).toEqual([
      {
        path: '--input-tokens',
        message: expect.stringMatching(/^only applies with --prompts synthetic .*got --prompts builtin-zh/),
      },
    ]);
    expect(issues({ ...base, inputTokens: '10-20', prompts: 'p.jsonl' })[0]?.message).toMatch(
      /got --prompts p\.jsonl$/,
    );
    expect(issues({ ...base, mode: 'closed', rate: 5, burstiness: 2 })).toEqual([
      { path: '--rate', message: expect.stringMatching(/^only applies to --mode open: a closed loop keeps/) },
      { path: '--burstiness', message: expect.stringMatching(/^only applies to --mode open/) },
    ]);
    // Together they are fine; --rate alone still means an open loop.
    expect(requestFromFlags({ ...base, prompts: 'synthetic', inputTokens: '10-20' }).prompts).toMatchObject({
      minInputTokens: 10,
    });
    expect(requestFromFlags({ ...base, rate: 5, concurrency: 4 }).mode).toBe('open');
  });

  it.each([
    [['--input-tokens', '10-20'], '--input-tokens: only applies with --prompts synthetic'],
    [
      ['--prompts', 'builtin-zh', '--input-tokens', '10-20'],
      '--input-tokens: only applies with --prompts synthetic',
    ],
    [['--mode', 'closed', '--rate', '5'], '--rate: only applies to --mode open'],
    [
      ['--mode', 'closed', '--concurrency', '2', '--burstiness', '0.5'],
      '--burstiness: only applies to --mode open',
    ],
  ])('qwenops loadtest %j exits 64: %s', async (args, message) => {
    // Port 9 (discard): nothing is sent, the flags are refused first.
    const { code, stderr } = await runCli(
      'loadtest',
      '--url',
      'http://127.0.0.1:9/v1',
      '--no-store',
      ...args,
    );
    expect(code).toBe(64);
    expect(stderr).toContain(`invalid load test flags: ${message}`);
  });
});

describe('ProgressLine', () => {
  const progress = {
    phase: 'measure' as const,
    elapsedSeconds: 3,
    fraction: 0.5,
    sent: 60,
    completed: 58,
    ok: 57,
    failed: 1,
    inFlight: 2,
    queued: 0,
    achievedRps: 20,
    p99E2eMs: 240,
  };

  it('redraws one line on a terminal', () => {
    const writes: string[] = [];
    const stream = { isTTY: true, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const line = new ProgressLine(stream);
    line.update(progress);
    line.update({ ...progress, fraction: 1, phase: 'done' });
    line.done();
    const clearLine = '\r\u001b[2K';
    expect(writes[0]?.startsWith(clearLine)).toBe(true);
    expect(writes[0]?.slice(clearLine.length)).toMatch(
      /^\[#{12}\.{12}\] {2}50% measure 3s \| sent 60 ok 57 err 1 \| in flight 2 \| 20\.0 req\/s p99 E2E 240ms$/,
    );
    expect(writes[1]?.slice(clearLine.length)).toMatch(/^\[#{24}\] 100% done/);
    expect(writes[2]).toBe('\n');
  });

  it('prints plain lines at most every 5 s when not a terminal, and the last one', () => {
    const writes: string[] = [];
    const stream = { isTTY: false, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const line = new ProgressLine(stream);
    line.update(progress);
    line.update(progress);
    line.update({ ...progress, fraction: 1, phase: 'done' });
    line.done();
    expect(writes).toHaveLength(2);
    expect(writes.every((w) => w.endsWith('\n') && !w.includes('\r'))).toBe(true);
  });
});
