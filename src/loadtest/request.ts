import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { retryAfterSeconds } from '../domain/http.js';
import { SseDecoder } from '../llm/openai/sse.js';
import type { ChunkDelta, Unchecked, Usage as WireUsage } from '../llm/openai/wire.js';

// One chat completion, timed the way vLLM's serving benchmark times it, so numbers compare:
//   TTFT  intended send -> first SSE chunk whose `choices` is non-empty (comments and the
//         usage-only chunk do not count);
//   ITL   gap between consecutive token-carrying chunks (per chunk, not per token; a
//         role-only or finish-only chunk carries no token);
//   E2E   intended send -> last token-carrying chunk (the trailing usage chunk does not count);
//   TPOT  (E2E - TTFT) / (output tokens - 1), only when output tokens > 1.
// Every clock reading is performance.now() taken as the bytes are handed over, before any
// parsing. In open loop "intended" is the scheduled arrival time, not when the client got
// round to sending: a stalled server or a busy client then shows in the latencies instead
// of silently delaying later sends (coordinated omission). The wait between the two is
// reported on its own as queue time.

export const ERROR_CLASSES = [
  'connect_error',
  'connection_reset',
  'timeout',
  'rate_limited',
  'http_4xx',
  'http_5xx',
  'html_error_page',
  'malformed_stream',
  'invalid_response',
  'server_error_event',
  'incomplete_stream',
  'empty_response',
  'client_overload',
  'client_error',
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

export interface RequestRecord {
  /** Scheduled send time, ms on the run's clock. */
  intendedMs: number;
  /** When the request was written to its connection (after any wait for a connection). */
  sentMs: number;
  /** When the outcome was known (last byte, error, or drop). */
  finishedMs: number;
  ok: boolean;
  status?: number;
  errorClass?: ErrorClass;
  error?: string;
  /** Seconds a 429 / 503 asked the client to wait (Retry-After). */
  retryAfterSeconds?: number;
  /** Latencies in ms, from the intended send time. */
  ttftMs?: number;
  e2eMs?: number;
  tpotMs?: number;
  itlMs: number[];
  /** Token-carrying chunks received. */
  chunks: number;
  inputTokens?: number;
  outputTokens?: number;
  /**
   * Where the token counts came from: the server's usage; without usage, the streamed
   * token-carrying chunks (output, one token per chunk as vLLM streams) or the client's
   * tokenizer estimate (no stream: a non-streamed answer); 'none' until counted.
   */
  tokenSource: 'usage' | 'chunks' | 'estimate' | 'none';
  finishReason?: string;
  /** The generated text, when asked for (token estimates, tests). */
  text?: string;
  /** Set when the run was cancelled while this request was in flight: not a measurement. */
  cancelled?: boolean;
}

export interface ChatTarget {
  dispatcher: Dispatcher;
  origin: string;
  path: string;
  headers: Record<string, string>;
}

/** Why the client stopped a request itself. */
export class RequestTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}
export class RequestCancelledError extends Error {
  override readonly name = 'RequestCancelledError';
}

/**
 * Deadlines and cancellation for every request in flight, with one sweeping timer instead
 * of a timer and an AbortSignal per request (those cost more than the request itself at
 * thousands of requests per second).
 */
export class InFlightRequests {
  private readonly live = new Map<Dispatcher.DispatchController, number>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly timeoutMs: number) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(250, Math.max(10, timeoutMs / 4)));
    this.sweeper.unref();
  }

  add(controller: Dispatcher.DispatchController): void {
    this.live.set(controller, performance.now() + this.timeoutMs);
  }

  delete(controller: Dispatcher.DispatchController): void {
    this.live.delete(controller);
  }

  private sweep(): void {
    const now = performance.now();
    for (const [controller, deadline] of this.live) {
      if (now >= deadline) {
        this.live.delete(controller);
        controller.abort(new RequestTimeoutError(`no complete answer within ${this.timeoutMs} ms`));
      }
    }
  }

  /** Aborts everything in flight (the run was cancelled). */
  abortAll(): void {
    for (const controller of this.live.keys()) controller.abort(new RequestCancelledError('cancelled'));
    this.live.clear();
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}

export interface SendOptions {
  stream: boolean;
  intendedMs: number;
  /**
   * What latencies run from: the scheduled time (open loop: nothing the client or server
   * does can hide a delay), or the moment the request was written to the socket (closed
   * loop, where nothing is scheduled and wrk-style tools measure from the write).
   */
  latencyFrom: 'intended' | 'sent';
  /** Deadlines and cancellation. */
  inFlight: InFlightRequests;
  /** Keep the generated text on the record (token estimates, tests). */
  captureText: boolean;
}

type Usage = Unchecked<WireUsage>;

function tokenCount(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;
}

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string {
  const value = headers[name];
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

function looksLikeHtml(contentType: string, body: string): boolean {
  if (contentType.includes('text/html')) return true;
  const start = body.trimStart().slice(0, 15).toLowerCase();
  return start.startsWith('<!doctype') || start.startsWith('<html') || start.startsWith('<');
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 160 ? `${flat.slice(0, 160)}...` : flat;
}

/** Maps a transport failure to an error class and a message saying what happened. */
export function classifyTransportError(
  error: unknown,
  afterFirstByte: boolean,
): { errorClass: ErrorClass; message: string } {
  const err = error as {
    code?: string;
    message?: string;
    name?: string;
    cause?: { code?: string; message?: string };
  };
  const code = err?.code ?? err?.cause?.code ?? '';
  const message = err?.message ?? String(error);
  switch (code) {
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { errorClass: 'connect_error', message: `cannot connect: ${code} ${message}`.trim() };
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return {
        errorClass: 'connection_reset',
        message: `connection closed by the server ${afterFirstByte ? 'mid-answer' : 'before answering'} (${code}: ${message})`,
      };
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ETIMEDOUT':
      return { errorClass: 'timeout', message: `timed out (${code})` };
    default:
      if (err?.name === 'TimeoutError') return { errorClass: 'timeout', message: 'request timeout reached' };
      return { errorClass: 'client_error', message: `${err?.name ?? 'Error'}: ${message}` };
  }
}

/** Sends one chat completion and measures it. Never rejects: every failure becomes a record. */
export function sendChatCompletion(
  target: ChatTarget,
  body: string,
  options: SendOptions,
): Promise<RequestRecord> {
  return new Promise((resolve) => {
    const exchange = new ChatExchange(options, resolve);
    try {
      target.dispatcher.dispatch(
        {
          origin: target.origin,
          path: target.path,
          method: 'POST',
          headers: target.headers,
          body,
          // The client's own deadline (InFlightRequests) bounds the whole exchange; undici's
          // idle timers would otherwise cut long prefill waits at their 300 s default.
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        exchange,
      );
    } catch (error) {
      exchange.onResponseError(undefined, error as Error);
    }
  });
}

/** A chat chunk's choice, or a text completion's (which carries `text` instead of a delta). */
interface StreamChoice {
  delta?: Unchecked<ChunkDelta>;
  text?: unknown;
  finish_reason?: unknown;
}

interface StreamChunk {
  choices?: StreamChoice[];
  usage?: Usage | null;
  error?: unknown;
}

const nonEmpty = (v: unknown) =>
  (typeof v === 'string' && v.length > 0) || (Array.isArray(v) && v.length > 0);

/** Whether a choice carries generated tokens: text, reasoning text or tool-call deltas. */
function carriesTokens(choice: StreamChoice | undefined): boolean {
  if (!choice) return false;
  const d = choice.delta;
  return (
    nonEmpty(choice.text) ||
    (d !== undefined && (nonEmpty(d.content) || nonEmpty(d.reasoning_content) || nonEmpty(d.tool_calls)))
  );
}

const MAX_BUFFERED_BODY = 4 * 1024 * 1024;

/**
 * One request/response as undici's dispatch handler: bytes are timed in onResponseData,
 * straight from the HTTP parser, with no stream machinery in between.
 */
class ChatExchange implements Dispatcher.DispatchHandler {
  private readonly record: RequestRecord;
  private controller?: Dispatcher.DispatchController;
  private settled = false;
  private contentType = '';
  private retryAfter: string | string[] | undefined;
  private streaming = false;
  private decoder?: SseDecoder;
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private receivedBytes = 0;
  private now = 0;
  private firstMs?: number;
  private lastTokenMs?: number;
  private done = false;
  private text = '';
  private problem?: { errorClass: ErrorClass; message: string };

  constructor(
    private readonly options: SendOptions,
    private readonly resolve: (record: RequestRecord) => void,
  ) {
    this.record = {
      intendedMs: options.intendedMs,
      sentMs: performance.now(),
      finishedMs: 0,
      ok: false,
      itlMs: [],
      chunks: 0,
      tokenSource: 'none',
    };
  }

  private settle(): void {
    if (this.settled) return;
    this.settled = true;
    if (this.controller) this.options.inFlight.delete(this.controller);
    if (this.options.captureText && this.streaming) this.record.text = this.text;
    this.resolve(this.record);
  }

  /** The origin of this request's latencies. */
  private get originMs(): number {
    return this.options.latencyFrom === 'sent' ? this.record.sentMs : this.record.intendedMs;
  }

  private fail(errorClass: ErrorClass, message: string): void {
    const r = this.record;
    r.finishedMs = performance.now();
    r.ok = false;
    r.errorClass = errorClass;
    r.error = message;
    r.e2eMs = r.finishedMs - this.originMs;
    this.settle();
  }

  /** Stops reading an answer that is already known to be bad. */
  private stop(errorClass: ErrorClass, message: string): void {
    if (this.problem) return;
    this.problem = { errorClass, message };
    this.controller?.abort(new Error(message));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // undici calls this right before writing the request to the socket.
    this.record.sentMs = performance.now();
    this.controller = controller;
    this.options.inFlight.add(controller);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.record.status = statusCode;
    this.contentType = headerValue(headers, 'content-type').toLowerCase();
    this.retryAfter = headers['retry-after'];
    this.streaming =
      this.options.stream &&
      statusCode >= 200 &&
      statusCode < 300 &&
      this.contentType.includes('text/event-stream');
    if (this.streaming) {
      this.decoder = new SseDecoder({
        onData: (data) => this.onEvent(data),
        onMalformed: (message) => this.stop('malformed_stream', message),
      });
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.now = performance.now();
    this.receivedBytes += chunk.length;
    if (this.problem) return;
    if (this.decoder) {
      this.decoder.push(chunk);
      return;
    }
    // Error pages and answers are small; a huge body is cut rather than buffered whole.
    if (this.bufferedBytes + chunk.length <= MAX_BUFFERED_BODY) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
    }
  }

  private onEvent(data: string): void {
    if (this.problem) return;
    if (data === '[DONE]') {
      this.done = true;
      return;
    }
    let chunk: StreamChunk;
    try {
      chunk = JSON.parse(data);
    } catch {
      this.stop('malformed_stream', `SSE data is not JSON: ${snippet(data)}`);
      return;
    }
    if (chunk === null || typeof chunk !== 'object') {
      this.stop('malformed_stream', `SSE data is not a JSON object: ${snippet(data)}`);
      return;
    }
    if (chunk.error) {
      this.stop('server_error_event', `error event in the stream: ${snippet(JSON.stringify(chunk.error))}`);
      return;
    }
    const choices = chunk.choices;
    if (Array.isArray(choices) && choices.length > 0) {
      const now = this.now;
      if (this.firstMs === undefined) this.firstMs = now;
      const choice = choices[0];
      if (carriesTokens(choice)) {
        if (this.lastTokenMs !== undefined) this.record.itlMs.push(now - this.lastTokenMs);
        this.lastTokenMs = now;
        this.record.chunks += 1;
        if (this.options.captureText) {
          const piece = choice?.delta?.content ?? choice?.text;
          if (typeof piece === 'string') this.text += piece;
        }
      }
      if (typeof choice?.finish_reason === 'string') this.record.finishReason = choice.finish_reason;
    }
    if (chunk.usage) applyUsage(this.record, chunk.usage);
  }

  onResponseEnd(): void {
    if (this.problem) {
      this.fail(this.problem.errorClass, this.problem.message);
      return;
    }
    if (this.decoder) {
      this.decoder.end();
      if (this.problem) {
        const { errorClass, message } = this.problem;
        this.fail(errorClass, message);
        return;
      }
      this.finishStream();
      return;
    }
    this.finishBuffered(Buffer.concat(this.chunks).toString('utf8'));
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (this.settled) return;
    if (this.problem) {
      this.fail(this.problem.errorClass, this.problem.message);
      return;
    }
    if (error instanceof RequestCancelledError) {
      this.record.cancelled = true;
      this.fail('client_error', 'cancelled');
      return;
    }
    if (error instanceof RequestTimeoutError) {
      this.fail('timeout', error.message);
      return;
    }
    const { errorClass, message } = classifyTransportError(error, this.receivedBytes > 0);
    this.fail(errorClass, message);
  }

  private finishStream(): void {
    const r = this.record;
    if (this.firstMs === undefined) {
      this.fail(this.done ? 'empty_response' : 'incomplete_stream', 'the stream carried no tokens');
      return;
    }
    if (!this.done && r.finishReason === undefined) {
      this.fail('incomplete_stream', `the stream ended after ${r.chunks} chunks without [DONE]`);
      return;
    }
    if (this.lastTokenMs === undefined) {
      this.fail('empty_response', 'the stream carried choices but no token');
      return;
    }
    if (r.outputTokens === 0) {
      this.fail('empty_response', 'usage reports 0 output tokens');
      return;
    }
    r.finishedMs = this.lastTokenMs;
    r.ttftMs = this.firstMs - this.originMs;
    r.e2eMs = this.lastTokenMs - this.originMs;
    if (r.outputTokens !== undefined && r.outputTokens > 1)
      r.tpotMs = (r.e2eMs - r.ttftMs) / (r.outputTokens - 1);
    r.ok = true;
    this.settle();
  }

  private finishBuffered(text: string): void {
    const r = this.record;
    const status = r.status ?? 0;
    const finishedMs = this.now || performance.now();
    if (status === 429 || status === 503) r.retryAfterSeconds = retryAfterSeconds(this.retryAfter);
    if (status === 429) {
      const wait = r.retryAfterSeconds !== undefined ? `, Retry-After ${r.retryAfterSeconds}s` : '';
      this.fail('rate_limited', `HTTP 429 Too Many Requests${wait}: ${snippet(errorMessageOf(text))}`);
      return;
    }
    if (looksLikeHtml(this.contentType, text)) {
      this.fail(
        'html_error_page',
        `HTTP ${status} answered with an HTML page instead of ${this.options.stream ? 'an event stream' : 'JSON'}: ${snippet(stripTags(text))}`,
      );
      return;
    }
    if (status >= 400) {
      this.fail(status >= 500 ? 'http_5xx' : 'http_4xx', `HTTP ${status}: ${snippet(errorMessageOf(text))}`);
      return;
    }
    if (this.options.stream) {
      this.fail(
        'invalid_response',
        `expected an event stream, got HTTP ${status} ${this.contentType || 'without content-type'}: ${snippet(text)}`,
      );
      return;
    }
    let parsed: {
      choices?: { message?: { content?: unknown }; finish_reason?: unknown }[];
      usage?: Usage | null;
      error?: unknown;
    };
    try {
      parsed = JSON.parse(text);
    } catch {
      this.fail('invalid_response', `HTTP ${status} body is not JSON: ${snippet(text)}`);
      return;
    }
    if (parsed?.error) {
      this.fail('server_error_event', `error in a 200 answer: ${snippet(JSON.stringify(parsed.error))}`);
      return;
    }
    const choice = Array.isArray(parsed?.choices) ? parsed.choices[0] : undefined;
    if (!choice) {
      this.fail('invalid_response', `answer without choices: ${snippet(text)}`);
      return;
    }
    const content = typeof choice.message?.content === 'string' ? choice.message.content : '';
    if (this.options.captureText) r.text = content;
    if (typeof choice.finish_reason === 'string') r.finishReason = choice.finish_reason;
    applyUsage(r, parsed.usage);
    if (r.outputTokens === 0 || (r.outputTokens === undefined && content.length === 0)) {
      this.fail('empty_response', 'the answer carried no output tokens');
      return;
    }
    r.finishedMs = finishedMs;
    r.e2eMs = finishedMs - this.originMs;
    r.ok = true;
    this.settle();
  }
}

function applyUsage(record: RequestRecord, usage: Usage | null | undefined): void {
  if (!usage || typeof usage !== 'object') return;
  const input = tokenCount(usage.prompt_tokens);
  const output = tokenCount(usage.completion_tokens);
  if (input !== undefined) record.inputTokens = input;
  if (output !== undefined) {
    record.outputTokens = output;
    record.tokenSource = 'usage';
  }
}

function errorMessageOf(text: string): string {
  try {
    const parsed = JSON.parse(text) as {
      error?: { message?: string } | string;
      message?: string;
      detail?: string;
    };
    if (typeof parsed.error === 'string') return parsed.error;
    return parsed.error?.message ?? parsed.message ?? parsed.detail ?? text;
  } catch {
    return text;
  }
}

function stripTags(html: string): string {
  const title = /<title[^>]*>([^<]*)<\/title>/i.exec(html)?.[1];
  return title ?? html.replace(/<[^>]*>/g, ' ');
}
