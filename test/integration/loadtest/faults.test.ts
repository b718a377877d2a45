import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputValidationError } from '../../../src/domain/validation.js';
import { LoadTargetError, type RequestRecord, runLoadTest } from '../../../src/loadtest/index.js';
import { freePort } from '../../support/ports.js';

// Servers that misbehave the ways real gateways and engines do, on loopback: each path
// prefix is one behaviour. Every failure must be counted by class with a clear message,
// never crash the run and never pass as a silent zero.

const sse = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;
const delta = (content: string, finish: string | null = null) =>
  sse({
    id: 'x',
    object: 'chat.completion.chunk',
    choices: [{ index: 0, delta: { content }, finish_reason: finish }],
  });
const usage = (prompt: number, completion: number) =>
  sse({
    id: 'x',
    choices: [],
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  });
const TOKENS = ['你好', ',', ' world', '  two spaces ', '😀', ' end'];

function streamHead(res: http.ServerResponse) {
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
}

/** Writes `text` in pieces of `size` bytes with a pause between, splitting characters and events. */
async function writeSplit(res: http.ServerResponse, text: string, size: number) {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) {
    res.write(bytes.subarray(i, i + size));
    await new Promise((r) => setTimeout(r, 1));
  }
}

const behaviours: Record<string, (res: http.ServerResponse) => void | Promise<void>> = {
  async split(res) {
    streamHead(res);
    await writeSplit(
      res,
      `: keep-alive\n\n${TOKENS.map((t, i) => delta(t, i === TOKENS.length - 1 ? 'stop' : null)).join(': ping\n\n')}${usage(12, 6)}data: [DONE]\n\n`,
      7,
    );
    res.end();
  },
  'no-usage'(res) {
    streamHead(res);
    res.end(`${TOKENS.map((t) => delta(t)).join('')}${delta('', 'stop')}data: [DONE]\n\n`);
  },
  'wrong-usage'(res) {
    streamHead(res);
    res.end(`${TOKENS.map((t) => delta(t)).join('')}${usage(12, 900)}data: [DONE]\n\n`);
  },
  'raw-json-lines'(res) {
    streamHead(res);
    res.end(
      `${JSON.stringify({ choices: [{ delta: { content: 'x' } }] })}\n${JSON.stringify({ choices: [] })}\n`,
    );
  },
  'bad-json'(res) {
    streamHead(res);
    res.end(`${delta('ok')}data: {"choices": [ this is not json\n\ndata: [DONE]\n\n`);
  },
  'html-200'(res) {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!DOCTYPE html><html><head><title>Login required</title></head><body>SSO</body></html>');
  },
  'html-502'(res) {
    res.writeHead(502, { 'content-type': 'text/html' });
    res.end('<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>');
  },
  'rate-limited'(res) {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
    res.end(JSON.stringify({ error: { message: 'slow down', type: 'RateLimitError', code: 429 } }));
  },
  async 'reset-mid-stream'(res) {
    streamHead(res);
    res.write(delta('你好'));
    res.write(delta(' there'));
    await new Promise((r) => setTimeout(r, 5));
    res.socket?.destroy();
  },
  'no-done'(res) {
    streamHead(res);
    res.end(`${delta('cut')}${delta(' short')}`);
  },
  'error-event'(res) {
    streamHead(res);
    res.end(
      `${delta('partial')}${sse({ error: { message: 'engine died', type: 'InternalServerError', code: 500 } })}data: [DONE]\n\n`,
    );
  },
  empty(res) {
    streamHead(res);
    res.end('data: [DONE]\n\n');
  },
  hang() {
    // Never answers: the client's own deadline must end the request.
  },
  async 'hang-mid-stream'(res) {
    streamHead(res);
    res.write(delta('你好'));
  },
  'server-error'(res) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ error: { message: 'CUDA out of memory', type: 'InternalServerError', code: 500 } }),
    );
  },
};

let server: http.Server;
let origin: string;
const seen: Record<string, { stream: boolean; includeUsage: boolean; model: string; maxTokens: number }[]> =
  {};

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const [, behaviour, ...rest] = (req.url ?? '').split('/');
    const path = `/${rest.join('/')}`;
    if (req.method === 'GET' && path === '/v1/models' && behaviour !== 'nothing') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'fault-model', object: 'model' }] }));
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const parsed = JSON.parse(body);
      seen[behaviour as string] ??= [];
      seen[behaviour as string]?.push({
        stream: parsed.stream,
        includeUsage: parsed.stream_options?.include_usage,
        model: parsed.model,
        maxTokens: parsed.max_tokens,
      });
      const handler = behaviours[behaviour as string];
      if (!handler) {
        res.writeHead(404).end();
        return;
      }
      void handler(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function run(behaviour: string, extra: Record<string, unknown> = {}) {
  const records: RequestRecord[] = [];
  const report = await runLoadTest(
    {
      url: `${origin}/${behaviour}/v1`,
      mode: 'closed',
      concurrency: 2,
      maxRequests: 6,
      maxTokens: 16,
      requestTimeoutSeconds: 10,
      ...extra,
    },
    { onRecord: (r) => records.push({ ...r }) },
  );
  return { report, records };
}

describe('load generator against misbehaving servers', () => {
  it('times a stream split across reads, with comments, and keeps the text byte-exact', async () => {
    const { report, records } = await run('split');
    expect(report.target.model).toBe('fault-model'); // discovered from /v1/models
    expect(seen.split?.[0]).toEqual({
      stream: true,
      includeUsage: true,
      model: 'fault-model',
      maxTokens: 16,
    });
    expect(report.results).toMatchObject({ requests: 6, ok: 6, failed: 0 });
    for (const r of records) {
      expect(r.text).toBe(TOKENS.join(''));
      expect(r.chunks).toBe(TOKENS.length);
      expect(r.itlMs).toHaveLength(TOKENS.length - 1); // per chunk, comments excluded
      expect(r).toMatchObject({
        outputTokens: 6,
        inputTokens: 12,
        tokenSource: 'usage',
        finishReason: 'stop',
      });
      expect(r.e2eMs).toBeGreaterThanOrEqual(r.ttftMs as number);
      expect(r.tpotMs).toBeCloseTo(((r.e2eMs as number) - (r.ttftMs as number)) / 5, 6);
    }
    expect(report.results.tokens.sources).toEqual({ usage: 6, chunks: 0, estimate: 0, none: 0 });
    expect(report.warnings).toEqual([]);
  });

  it('counts streamed chunks when the server sends no usage, and marks them as such', async () => {
    const { report } = await run('no-usage');
    expect(report.results.ok).toBe(6);
    expect(report.results.tokens.sources).toEqual({ usage: 0, chunks: 6, estimate: 0, none: 0 });
    // One token per token-carrying chunk (the empty finish chunk carries none).
    expect(report.results.tokens.output).toBe(6 * TOKENS.length);
    expect(report.results.latency.tpot?.count).toBe(6);
    expect(report.warnings.join('\n')).toMatch(
      /6 answers carried no usage: output tokens are their streamed content chunks .*input tokens cl100k_base estimates; marked "chunks"/,
    );
  });

  it('warns when usage and the streamed chunks plainly disagree', async () => {
    const { report } = await run('wrong-usage');
    expect(report.results.tokens.output).toBe(6 * 900);
    expect(report.warnings.join('\n')).toMatch(
      /server usage and the count of streamed chunks disagree by more than 3x over 6 checked answers \(usage 5400 output tokens, chunks 36\)/,
    );
  });

  const failures: [string, string, RegExp][] = [
    ['raw-json-lines', 'malformed_stream', /not an SSE line: "\{\\"choices\\"/],
    ['bad-json', 'malformed_stream', /SSE data is not JSON: \{"choices": \[ this is not json/],
    [
      'html-200',
      'html_error_page',
      /HTTP 200 answered with an HTML page instead of an event stream: Login required/,
    ],
    ['html-502', 'html_error_page', /HTTP 502 answered with an HTML page .*502 Bad Gateway/],
    ['rate-limited', 'rate_limited', /HTTP 429 Too Many Requests, Retry-After 7s: slow down/],
    ['reset-mid-stream', 'connection_reset', /connection closed by the server mid-answer/],
    ['no-done', 'incomplete_stream', /the stream ended after 2 chunks without \[DONE\]/],
    ['error-event', 'server_error_event', /error event in the stream: .*engine died/],
    ['empty', 'empty_response', /the stream carried no tokens/],
    ['server-error', 'http_5xx', /HTTP 500: CUDA out of memory/],
    ['hang', 'timeout', /no complete answer within 300 ms/],
    ['hang-mid-stream', 'timeout', /no complete answer within 300 ms/],
  ];
  for (const [behaviour, errorClass, message] of failures) {
    it(`counts ${behaviour} as ${errorClass}`, async () => {
      const { report } = await run(behaviour, { requestTimeoutSeconds: 0.3 });
      expect(report.results).toMatchObject({ requests: 6, ok: 0, failed: 6, errorRatePct: 100 });
      expect(report.results.errors.byClass).toEqual({ [errorClass]: 6 });
      expect(report.results.errors.samples[0]?.message).toMatch(message);
      expect(report.warnings[0]).toMatch(new RegExp(`every request failed: ${errorClass} 6`));
      expect(report.slo.passed).toBe(true); // no SLO was set: the figures speak, nothing is hidden
    });
  }

  it('records Retry-After on 429 answers without retrying them', async () => {
    const before = seen['rate-limited']?.length ?? 0;
    const { report } = await run('rate-limited');
    expect(report.results.errors.maxRetryAfterSeconds).toBe(7);
    expect((seen['rate-limited']?.length ?? 0) - before).toBe(6);
  });

  it('fails an SLO on a run where every request failed, saying it was not measured', async () => {
    const { report } = await run('html-502', { slo: { p99E2eMs: 300, maxErrorRatePct: 1 } });
    expect(report.slo.passed).toBe(false);
    expect(report.slo.results.map((r) => r.message)).toEqual([
      expect.stringMatching(/p99 E2E: not measured \(no successful requests\)/),
      'error rate 100 % misses SLO <= 1 %',
    ]);
  });

  it('refuses invalid input with a clear error naming the field', async () => {
    await expect(runLoadTest({ url: 'localhost:8000' })).rejects.toThrow(InputValidationError);
    await expect(runLoadTest({ url: 'localhost:8000' })).rejects.toThrow(
      /url: must be an absolute http\(s\) URL/,
    );
    await expect(runLoadTest({ url: origin, requestsPerSecond: 0 })).rejects.toThrow(
      /requestsPerSecond: must be > 0/,
    );
    await expect(runLoadTest({ url: origin, requestsPerSecond: -1 })).rejects.toThrow(
      /requestsPerSecond: must be > 0/,
    );
    await expect(runLoadTest({ url: origin, concurrency: 5_000_000 })).rejects.toThrow(
      /concurrency: must be <= 10000/,
    );
  });

  it('fails fast with a clear error when nothing listens at the URL', async () => {
    const port = await freePort();
    const attempt = runLoadTest({ url: `http://127.0.0.1:${port}/v1`, durationSeconds: 5 });
    await expect(attempt).rejects.toThrow(LoadTargetError);
    await expect(runLoadTest({ url: `http://127.0.0.1:${port}/v1`, durationSeconds: 5 })).rejects.toThrow(
      /cannot reach http:\/\/127\.0\.0\.1:\d+: cannot connect: ECONNREFUSED/,
    );
  });

  it('needs a model name when the server lists none', async () => {
    await expect(runLoadTest({ url: `${origin}/nothing/v1`, maxRequests: 1 })).rejects.toThrow(
      /no model name given and GET .*\/nothing\/v1\/models \(HTTP 404\) listed none: pass the served model name/,
    );
  });
});
