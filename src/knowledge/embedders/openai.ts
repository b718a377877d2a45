import { setTimeout as sleep } from 'node:timers/promises';
import pLimit from 'p-limit';
import { Agent, type Dispatcher, request } from 'undici';
import { retryAfterSeconds } from '../../domain/http.js';
import { describeErrorBody } from '../../llm/client.js';
import type { Logger } from '../../observability/logger.js';
import { BGE_M3_DIMENSIONS, BGE_M3_MAX_TOKENS, bgeM3TokenUpperBound } from '../tokens.js';
import {
  type Embedder,
  type EmbedderStats,
  EmbeddingDimensionError,
  EmbeddingError,
  EmbeddingInputTooLongError,
  normalise,
} from './port.js';

// An OpenAI-compatible /v1/embeddings client for bge-m3 behind TEI, vLLM or Infinity.
// - Batches are bounded by input count, estimated tokens and request bytes (TEI's
//   defaults: 32 inputs, 2 MB payload), and a batch the server still finds too large
//   (413) is split in halves and sent again.
// - At most `concurrency` requests are in flight.
// - 429, 408, 5xx and connection errors are retried with capped exponential backoff and
//   full jitter; a Retry-After from the server replaces the computed delay.
// - No input over the model's token limit is ever sent (some servers truncate silently,
//   which would index a vector of half a chunk).
// - Every vector is checked for the expected dimension and L2-normalised.

export interface OpenAiEmbedderOptions {
  /** API root including /v1, e.g. http://tei:8080/v1 */
  baseUrl: string;
  model: string;
  apiKey?: string;
  dimensions?: number;
  maxInputTokens?: number;
  maxBatchInputs?: number;
  maxBatchTokens?: number;
  /** Largest request body in bytes (TEI's payload limit is 2,000,000). */
  maxRequestBytes?: number;
  concurrency?: number;
  maxRetries?: number;
  /** First retry delay in ms (doubles per attempt, capped by maxBackoffMs). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** The longest Retry-After that is honoured as given; longer ones are capped to it. */
  maxRetryAfterMs?: number;
  timeoutMs?: number;
  logger?: Logger;
  dispatcher?: Dispatcher;
}

interface EmbeddingResponse {
  data?: Array<{ index?: number; embedding?: number[] | string }>;
}

export class OpenAiEmbedder implements Embedder {
  readonly model: string;
  readonly dimensions: number;
  readonly maxInputTokens: number;
  readonly label: string;
  private readonly url: string;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;
  private readonly counters: EmbedderStats = { calls: 0, inputs: 0, requests: 0, retries: 0, splits: 0 };
  private readonly o: Required<
    Pick<
      OpenAiEmbedderOptions,
      | 'maxBatchInputs'
      | 'maxBatchTokens'
      | 'maxRequestBytes'
      | 'maxRetries'
      | 'initialBackoffMs'
      | 'maxBackoffMs'
      | 'maxRetryAfterMs'
      | 'timeoutMs'
    >
  >;

  constructor(private readonly options: OpenAiEmbedderOptions) {
    this.model = options.model;
    this.dimensions = options.dimensions ?? BGE_M3_DIMENSIONS;
    this.maxInputTokens = options.maxInputTokens ?? BGE_M3_MAX_TOKENS;
    this.url = `${options.baseUrl.replace(/\/+$/, '')}/embeddings`;
    this.label = `OpenAI-compatible embeddings at ${this.url} (model ${this.model})`;
    const concurrency = options.concurrency ?? 4;
    this.limit = pLimit(concurrency);
    this.ownDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? new Agent({ connections: concurrency, keepAliveTimeout: 10_000 });
    this.o = {
      maxBatchInputs: options.maxBatchInputs ?? 32,
      maxBatchTokens: options.maxBatchTokens ?? 16_384,
      maxRequestBytes: options.maxRequestBytes ?? 2_000_000,
      maxRetries: options.maxRetries ?? 6,
      initialBackoffMs: options.initialBackoffMs ?? 500,
      maxBackoffMs: options.maxBackoffMs ?? 30_000,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 120_000,
      timeoutMs: options.timeoutMs ?? 120_000,
    };
  }

  stats(): EmbedderStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.ownDispatcher) await this.dispatcher.close();
  }

  async embed(texts: string[], options: { signal?: AbortSignal } = {}): Promise<Float32Array[]> {
    this.counters.calls++;
    if (texts.length === 0) return [];
    const batches = this.batch(texts);
    const results = await Promise.all(
      batches.map((batch) => this.limit(() => this.send(batch, options.signal))),
    );
    this.counters.inputs += texts.length;
    return results.flat();
  }

  /** Greedy batches in input order, each within the count, token and byte bounds. */
  private batch(texts: string[]): string[][] {
    const batches: string[][] = [];
    const envelope = Buffer.byteLength(
      JSON.stringify({ model: this.model, input: [], encoding_format: 'float' }),
    );
    let current: string[] = [];
    let tokens = 0;
    let bytes = envelope;
    texts.forEach((text, i) => {
      const t = bgeM3TokenUpperBound(text);
      if (t > this.maxInputTokens) {
        throw new EmbeddingInputTooLongError(
          `input ${i} has ~${t} tokens, over the model's ${this.maxInputTokens}-token limit (refused before sending)`,
        );
      }
      const b = Buffer.byteLength(JSON.stringify(text)) + 1;
      if (envelope + b > this.o.maxRequestBytes) {
        throw new EmbeddingInputTooLongError(
          `input ${i} is ${b} bytes as JSON, over the ${this.o.maxRequestBytes}-byte request limit`,
        );
      }
      if (
        current.length > 0 &&
        (current.length >= this.o.maxBatchInputs ||
          tokens + t > this.o.maxBatchTokens ||
          bytes + b > this.o.maxRequestBytes)
      ) {
        batches.push(current);
        current = [];
        tokens = 0;
        bytes = envelope;
      }
      current.push(text);
      tokens += t;
      bytes += b;
    });
    if (current.length > 0) batches.push(current);
    return batches;
  }

  private backoff(attempt: number): number {
    const ceiling = Math.min(this.o.maxBackoffMs, this.o.initialBackoffMs * 2 ** attempt);
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  private async send(batch: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const body = JSON.stringify({ model: this.model, input: batch, encoding_format: 'float' });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    for (let attempt = 0; ; attempt++) {
      this.counters.requests++;
      let status: number;
      let text: string;
      let retryAfter: number | undefined;
      let contentType = '';
      try {
        const response = await request(this.url, {
          method: 'POST',
          headers,
          body,
          dispatcher: this.dispatcher,
          signal,
          headersTimeout: this.o.timeoutMs,
          bodyTimeout: this.o.timeoutMs,
        });
        status = response.statusCode;
        contentType = String(response.headers['content-type'] ?? '');
        retryAfter = retryAfterSeconds(response.headers['retry-after'] as string | string[] | undefined);
        text = await response.body.text();
      } catch (err) {
        if (signal?.aborted) throw err;
        if (attempt >= this.o.maxRetries) {
          throw new EmbeddingError(
            `${this.url} unreachable after ${attempt + 1} attempts: ${(err as Error).message}`,
            true,
            { cause: err },
          );
        }
        await this.wait(this.backoff(attempt), signal, { attempt, error: (err as Error).message });
        continue;
      }
      if (status === 200) return this.parse(text, batch.length);
      if (status === 413) {
        if (batch.length === 1) {
          throw new EmbeddingError(
            `${this.url} refused a single input as too large (413): lower the chunk size`,
            false,
            { status },
          );
        }
        // The server's byte or batch limit is lower than configured: halve and resend.
        this.counters.splits++;
        const half = Math.ceil(batch.length / 2);
        const first = await this.send(batch.slice(0, half), signal);
        const second = await this.send(batch.slice(half), signal);
        return [...first, ...second];
      }
      const reason = `HTTP ${status} from ${this.url}: ${describeErrorBody(contentType, text)}`;
      const retryable = status === 408 || status === 429 || status >= 500;
      if (!retryable) throw new EmbeddingError(reason, false, { status });
      if (attempt >= this.o.maxRetries)
        throw new EmbeddingError(`${reason} (after ${attempt + 1} attempts)`, true, { status });
      const delay =
        retryAfter !== undefined
          ? Math.min(retryAfter * 1000, this.o.maxRetryAfterMs)
          : this.backoff(attempt);
      await this.wait(delay, signal, { attempt, status, retryAfterSeconds: retryAfter });
    }
  }

  private async wait(
    ms: number,
    signal: AbortSignal | undefined,
    context: Record<string, unknown>,
  ): Promise<void> {
    this.counters.retries++;
    this.options.logger?.warn(
      { ...context, delayMs: ms, url: this.url },
      'embedding request failed; retrying',
    );
    await sleep(ms, undefined, { signal });
  }

  private parse(text: string, expected: number): Float32Array[] {
    let parsed: EmbeddingResponse;
    try {
      parsed = JSON.parse(text) as EmbeddingResponse;
    } catch {
      throw new EmbeddingError(`${this.url} answered 200 with a body that is not JSON`, false);
    }
    const data = parsed.data;
    if (!Array.isArray(data) || data.length !== expected) {
      throw new EmbeddingError(
        `${this.url} returned ${Array.isArray(data) ? data.length : 'no'} embeddings for ${expected} inputs`,
        false,
      );
    }
    const vectors: Float32Array[] = new Array(expected);
    data.forEach((item, position) => {
      const index = typeof item.index === 'number' ? item.index : position;
      const raw = item.embedding;
      const vector =
        typeof raw === 'string'
          ? new Float32Array(new Uint8Array(Buffer.from(raw, 'base64')).buffer)
          : Array.isArray(raw)
            ? Float32Array.from(raw)
            : undefined;
      if (!vector) throw new EmbeddingError(`${this.url}: embedding ${index} is missing`, false);
      if (vector.length !== this.dimensions) {
        throw new EmbeddingDimensionError(
          `${this.url} returned ${vector.length}-dimensional vectors for model ${this.model}; the index needs ${this.dimensions} (bge-m3). Wrong model or server?`,
        );
      }
      if (index < 0 || index >= expected || vectors[index] !== undefined) {
        throw new EmbeddingError(`${this.url}: bad or duplicate embedding index ${index}`, false);
      }
      vectors[index] = normalise(vector, `embedding ${index} from ${this.url}`);
    });
    return vectors;
  }
}
