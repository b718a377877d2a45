import { type Dispatcher, request, errors as undiciErrors } from 'undici';
import { retryAfterSeconds } from '../domain/http.js';
import { SseParser } from './openai/sse.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, ModelInfo } from './openai/wire.js';

// A small OpenAI-compatible client (chat, streaming chat, models) for `qwenops kb ask`
// and simple probes. Errors are typed: LlmHttpError (the server answered with a non-2xx
// status; carries status, Retry-After and a short body excerpt, and never crashes on an
// HTML error page) and LlmConnectionError (no answer, or a stream cut before [DONE]).

export type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatMessage,
  ChatRequest,
  ModelInfo,
  Usage,
} from './openai/wire.js';

export interface CallOptions {
  signal?: AbortSignal;
}

export interface OpenAiClientOptions {
  /** API root including the version, e.g. http://127.0.0.1:8000/v1 */
  baseUrl: string;
  apiKey?: string;
  headers?: Record<string, string>;
  /** undici dispatcher (Agent / Pool) to share connections; the global one otherwise. */
  dispatcher?: Dispatcher;
  /** Longest wait for the response headers (ms). */
  headersTimeoutMs?: number;
  /** Longest silence between two body reads (ms). */
  bodyTimeoutMs?: number;
}

const EXCERPT_CHARS = 300;

export class LlmHttpError extends Error {
  override readonly name = 'LlmHttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly url: string,
    /** Seconds the server asked to wait (Retry-After), when it said. */
    readonly retryAfter: number | undefined,
    readonly bodyExcerpt: string,
  ) {
    super(message);
  }

  /** 408, 429 and 5xx are worth retrying; other 4xx are the caller's fault. */
  get retryable(): boolean {
    return this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export class LlmConnectionError extends Error {
  override readonly name = 'LlmConnectionError';
  readonly retryable = true;
  constructor(
    message: string,
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** A readable message from an error body, whatever its format. */
export function describeErrorBody(contentType: string, body: string): string {
  const trimmed = body.trim();
  if (trimmed.startsWith('{') || contentType.includes('json')) {
    try {
      const parsed = JSON.parse(trimmed) as { error?: unknown; message?: unknown; detail?: unknown };
      const error = parsed.error as { message?: unknown } | string | undefined;
      const message =
        (typeof error === 'object' && error !== null ? error.message : error) ??
        parsed.message ??
        parsed.detail;
      if (typeof message === 'string') return message;
      if (message !== undefined) return JSON.stringify(message);
    } catch {
      // Not JSON after all: fall through to the excerpt.
    }
  }
  if (contentType.includes('html') || /^<(!doctype|html)/i.test(trimmed)) {
    const title = /<title[^>]*>([^<]*)<\/title>/i.exec(trimmed)?.[1];
    return `HTML error page${title ? ` "${oneLine(title)}"` : ''} (a proxy or gateway answered, not the model server)`;
  }
  return trimmed === '' ? 'empty body' : oneLine(trimmed).slice(0, EXCERPT_CHARS);
}

function isAbort(err: unknown, signal?: AbortSignal): boolean {
  return signal?.aborted === true || (err as Error)?.name === 'AbortError';
}

export class OpenAiClient {
  private readonly baseUrl: string;

  constructor(private readonly options: OpenAiClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  async chat(body: ChatRequest, options: CallOptions = {}): Promise<ChatCompletion> {
    const { data } = await this.send('POST', '/chat/completions', { ...body, stream: false }, options.signal);
    return (await this.readJson(data, '/chat/completions')) as ChatCompletion;
  }

  /** Streams the answer chunk by chunk; ends at "data: [DONE]", throws if the stream is cut before it. */
  async *chatStream(body: ChatRequest, options: CallOptions = {}): AsyncGenerator<ChatCompletionChunk> {
    const url = `${this.baseUrl}/chat/completions`;
    const { data } = await this.send('POST', '/chat/completions', { ...body, stream: true }, options.signal);
    const parser = new SseParser();
    let done = false;
    try {
      for await (const read of data.body) {
        for (const event of parser.push(read as Buffer)) {
          if (event === '[DONE]') {
            done = true;
            return;
          }
          yield this.parseChunk(event, url);
        }
      }
      for (const event of parser.end()) {
        if (event === '[DONE]') {
          done = true;
          return;
        }
        yield this.parseChunk(event, url);
      }
    } catch (err) {
      if (isAbort(err, options.signal) || err instanceof LlmHttpError) throw err;
      throw new LlmConnectionError(`stream from ${url} interrupted: ${(err as Error).message}`, url, {
        cause: err,
      });
    } finally {
      if (!done) data.body.destroy();
    }
    throw new LlmConnectionError(`stream from ${url} ended before "data: [DONE]"`, url);
  }

  async models(options: CallOptions = {}): Promise<ModelInfo[]> {
    const { data } = await this.send('GET', '/models', undefined, options.signal);
    const list = (await this.readJson(data, '/models')) as { data?: ModelInfo[] };
    return list.data ?? [];
  }

  private parseChunk(event: string, url: string): ChatCompletionChunk {
    let parsed: unknown;
    try {
      parsed = JSON.parse(event);
    } catch {
      throw new LlmConnectionError(
        `malformed stream event from ${url}: ${event.slice(0, EXCERPT_CHARS)}`,
        url,
      );
    }
    const error = (parsed as { error?: { message?: string; code?: number } }).error;
    if (error) {
      // vLLM reports failures after the 200 header as an error event inside the stream.
      const status = typeof error.code === 'number' && error.code >= 400 ? error.code : 500;
      throw new LlmHttpError(
        status,
        `stream error from ${url}: ${error.message ?? event}`,
        url,
        undefined,
        event,
      );
    }
    return parsed as ChatCompletionChunk;
  }

  private async readJson(data: Dispatcher.ResponseData, path: string): Promise<unknown> {
    const text = await data.body.text();
    try {
      return JSON.parse(text);
    } catch {
      throw new LlmHttpError(
        data.statusCode,
        `${this.baseUrl}${path} answered ${data.statusCode} with a body that is not JSON: ${describeErrorBody(String(data.headers['content-type'] ?? ''), text)}`,
        `${this.baseUrl}${path}`,
        undefined,
        text.slice(0, EXCERPT_CHARS),
      );
    }
  }

  private async send(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<{ data: Dispatcher.ResponseData }> {
    const url = `${this.baseUrl}${path}`;
    const headers: Record<string, string> = {
      accept: 'application/json, text/event-stream',
      ...this.options.headers,
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let data: Dispatcher.ResponseData;
    try {
      data = await request(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        dispatcher: this.options.dispatcher,
        headersTimeout: this.options.headersTimeoutMs ?? 60_000,
        bodyTimeout: this.options.bodyTimeoutMs ?? 300_000,
      });
    } catch (err) {
      if (isAbort(err, signal)) throw err;
      const reason =
        err instanceof undiciErrors.UndiciError ? `${err.code}: ${err.message}` : (err as Error).message;
      throw new LlmConnectionError(`${method} ${url} failed: ${reason}`, url, { cause: err });
    }
    if (data.statusCode >= 200 && data.statusCode < 300) return { data };
    let text = '';
    try {
      text = (await data.body.text()).slice(0, 64 * 1024);
    } catch {
      // The body itself failed; the status is still worth reporting.
    }
    const contentType = String(data.headers['content-type'] ?? '');
    throw new LlmHttpError(
      data.statusCode,
      `${method} ${url} answered ${data.statusCode}: ${describeErrorBody(contentType, text)}`,
      url,
      retryAfterSeconds(data.headers['retry-after']),
      oneLine(text).slice(0, EXCERPT_CHARS),
    );
  }
}
