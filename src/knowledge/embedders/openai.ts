import { performance } from 'node:perf_hooks';
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
//   (413) is split in halves and sent again, as is one TEI refuses with 422 for its
//   batch size ("batch size 64 > maximum allowed batch size 32"); the lower limit the
//   server named (or the size it refused) bounds every later batch, so the refusal is paid
//   once, not per batch.
// - At most `concurrency` requests are in flight.
// - 429, 408, 5xx and connection errors are retried with capped exponential backoff and
//   full jitter; a Retry-After from the server replaces the computed delay.
// - No input over the model's token limit is ever sent (some servers truncate silently,
//   which would index a vector of half a chunk).
// - Every vector is checked for the expected dimension and L2-normalised.
// - Throughput is accounted on the client side (throughput()): inputs embedded, the span
//   from the first request to the last answer and the time with a request in flight, so
//   a run can report achieved inputs/s against the server's measured capacity
//   (./capacity.ts) as utilisation.

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
  /**
   * Vector encoding asked of the server: 'float' (JSON numbers, the default) or 'base64'
   * (little-endian float32; about a third of the bytes and far cheaper to parse).
   */
  encodingFormat?: 'float' | 'base64';
  logger?: Logger;
  dispatcher?: Dispatcher;
}

/** Client-side throughput of one embedder (epoch ms, so processes can be combined). */
export interface EmbedderThroughput {
  /** Inputs whose vectors came back. */
  inputs: number;
  /** Successful HTTP requests. */
  requests: number;
  /** Epoch ms when the first request was sent; undefined before any. */
  firstSentAtMs?: number;
  /** Epoch ms when the last successful answer arrived. */
  lastAnsweredAtMs?: number;
  /** Milliseconds with at least one request in flight. */
  busyMs: number;
  /** Most requests in flight at once. */
  maxInFlight: number;
  /** inputs / (lastAnswered - firstSent), per second; 0 before any answer. */
  inputsPerSecond: number;
}

/** Achieved inputs/s over the combined span of several embedders' throughput records. */
export function combinedInputsPerSecond(records: readonly EmbedderThroughput[]): number {
  const used = records.filter((r) => r.firstSentAtMs !== undefined && r.lastAnsweredAtMs !== undefined);
  if (used.length === 0) return 0;
  const first = Math.min(...used.map((r) => r.firstSentAtMs as number));
  const last = Math.max(...used.map((r) => r.lastAnsweredAtMs as number));
  const inputs = used.reduce((sum, r) => sum + r.inputs, 0);
  return last > first ? (inputs * 1000) / (last - first) : 0;
}

/** TEI's 422 for a batch over --max-client-batch-size: the limit it names, if any. */
export function teiBatchLimit(body: string): number | undefined {
  const match = /batch size (\d+) > maximum allowed batch size (\d+)/i.exec(body);
  return match ? Number(match[2]) : undefined;
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
  private readonly encoding: 'float' | 'base64';
  /** Lowered when the server refuses a batch as too large (413 / TEI's 422). */
  private maxBatchInputs: number;
  private maxRequestBytes: number;
  private readonly flow = {
    inputs: 0,
    requests: 0,
    firstSentAtMs: undefined as number | undefined,
    lastAnsweredAtMs: undefined as number | undefined,
    busyMs: 0,
    busySince: 0,
    inFlight: 0,
    maxInFlight: 0,
  };
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
    this.encoding = options.encodingFormat ?? 'float';
    this.maxBatchInputs = this.o.maxBatchInputs;
    this.maxRequestBytes = this.o.maxRequestBytes;
  }

  /** The batch bounds in force: the configured ones, lowered by what the server refused. */
  limits(): { maxBatchInputs: number; maxRequestBytes: number; maxBatchTokens: number } {
    return {
      maxBatchInputs: this.maxBatchInputs,
      maxRequestBytes: this.maxRequestBytes,
      maxBatchTokens: this.o.maxBatchTokens,
    };
  }

  throughput(): EmbedderThroughput {
    const f = this.flow;
    const now = performance.now();
    const busyMs = f.busyMs + (f.inFlight > 0 ? now - f.busySince : 0);
    const span =
      f.firstSentAtMs !== undefined && f.lastAnsweredAtMs !== undefined
        ? f.lastAnsweredAtMs - f.firstSentAtMs
        : 0;
    return {
      inputs: f.inputs,
      requests: f.requests,
      firstSentAtMs: f.firstSentAtMs,
      lastAnsweredAtMs: f.lastAnsweredAtMs,
      busyMs: Math.round(busyMs),
      maxInFlight: f.maxInFlight,
      inputsPerSecond: span > 0 ? (f.inputs * 1000) / span : 0,
    };
  }

  private requestStarted(): void {
    const f = this.flow;
    f.firstSentAtMs ??= epochMs();
    if (f.inFlight === 0) f.busySince = performance.now();
    f.inFlight++;
    f.maxInFlight = Math.max(f.maxInFlight, f.inFlight);
  }

  private requestEnded(inputs: number): void {
    const f = this.flow;
    f.inFlight--;
    if (f.inFlight === 0) f.busyMs += performance.now() - f.busySince;
    if (inputs > 0) {
      f.inputs += inputs;
      f.requests++;
      f.lastAnsweredAtMs = epochMs();
    }
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
      JSON.stringify({ model: this.model, input: [], encoding_format: this.encoding }),
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
      if (envelope + b > this.maxRequestBytes) {
        throw new EmbeddingInputTooLongError(
          `input ${i} is ${b} bytes as JSON, over the ${this.maxRequestBytes}-byte request limit`,
        );
      }
      if (
        current.length > 0 &&
        (current.length >= this.maxBatchInputs ||
          tokens + t > this.o.maxBatchTokens ||
          bytes + b > this.maxRequestBytes)
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
    const body = JSON.stringify({ model: this.model, input: batch, encoding_format: this.encoding });
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    for (let attempt = 0; ; attempt++) {
      this.counters.requests++;
      let status: number;
      let text: string;
      let retryAfter: number | undefined;
      let contentType = '';
      this.requestStarted();
      let answered = 0;
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
        if (status === 200) answered = batch.length;
      } catch (err) {
        this.requestEnded(0);
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
      this.requestEnded(answered);
      if (status === 200) return this.parse(text, batch.length);
      const batchLimit = status === 422 ? teiBatchLimit(text) : undefined;
      if (status === 413 || batchLimit !== undefined) {
        if (batch.length === 1) {
          throw new EmbeddingError(
            `${this.url} refused a single input as too large (413): lower the chunk size`,
            false,
            { status },
          );
        }
        // The server's byte or batch limit is lower than configured: halve and resend, and
        // keep later batches under what it refused (or the batch limit it named).
        if (batchLimit !== undefined)
          this.maxBatchInputs = Math.max(1, Math.min(this.maxBatchInputs, batchLimit));
        // A 413 names no limit: the halves about to be sent are the new bound.
        else this.maxRequestBytes = Math.min(this.maxRequestBytes, Math.ceil(Buffer.byteLength(body) / 2));
        this.options.logger?.warn(
          { status, inputs: batch.length, bytes: Buffer.byteLength(body), limits: this.limits() },
          'embedding server refused a batch as too large; splitting it and lowering the batch bounds',
        );
        if (batchLimit !== undefined && batchLimit < batch.length && batchLimit >= 1) {
          this.counters.splits++;
          const out: Float32Array[] = [];
          for (let i = 0; i < batch.length; i += batchLimit)
            out.push(...(await this.send(batch.slice(i, i + batchLimit), signal)));
          return out;
        }
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

function epochMs(): number {
  return performance.timeOrigin + performance.now();
}
