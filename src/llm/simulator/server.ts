import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { lognormalAround, type Random, seededRandom, seedFromText } from '../../domain/random.js';
import { createLogger, type Logger } from '../../observability/logger.js';
import { SSE_DONE, SseChunkWriter } from '../openai/chunk-writer.js';
import { type FinishReason, usageOf } from '../openai/wire.js';
import { FifoSlots } from './concurrency.js';
import { LatencySamples, type LatencySummary } from './latency-stats.js';
import { lexicalEmbedding } from './lexical-embedder.js';
import { createVllmMetrics, type VllmMetrics } from './metrics.js';
import {
  type FaultSettings,
  type FaultSettingsInput,
  parseFaultSettings,
  parseSimulatorOptions,
  type SimulatorOptions,
  type SimulatorOptionsInput,
} from './options.js';
import {
  type ChatRequest,
  type CompletionRequest,
  chatPromptText,
  chatRequestSchema,
  completionRequestSchema,
  embeddingRequestSchema,
  openAiError,
  validateRequest,
} from './requests.js';
import { estimateTokens, PUNCTUATION_START, VOCABULARY, VOCABULARY_JSON, WORD_COUNT } from './vocabulary.js';

// The serving simulator: an OpenAI-compatible server imitating vLLM for ONE revision,
// because no GPU serves a model here. It is the project's one stand-in and says so on
// every surface (start-up log, /health, /v1/models owned_by, x-qwenops-simulated header).
//
// Timing model per request: wait for a batch slot (FIFO) -> optional stall -> TTFT
// (lognormal around ttftMs, + prefill per prompt token, + injected extra latency) -> one
// token per TPOT (lognormal). Tokens are emitted at absolute deadlines measured from the
// request's start, so hundreds of concurrent streams do not drift when timers fire late.

export const SIMULATED_HEADER = 'x-qwenops-simulated';
export const OWNED_BY = 'qwenops-simulator';

export interface SimulatorStats {
  simulated: true;
  model: string;
  revision: string;
  /** When counting (re)started. */
  since: string;
  requests: {
    total: number;
    completed: number;
    /** Answers with an error status, by status code. */
    errors: Record<string, number>;
    /** Connections destroyed mid-answer by the resetMidStreamPct fault. */
    resets: number;
    /** Clients that went away before the answer ended. */
    aborted: number;
    embeddings: number;
  };
  /** Server-side latencies (ms) of completed generations, from request arrival. */
  e2eMs: LatencySummary;
  ttftMs: LatencySummary;
  queueMs: LatencySummary;
  promptTokens: number;
  outputTokens: number;
  running: number;
  waiting: number;
  faults: FaultSettings;
}

export interface ServingSimulator {
  url: string;
  port: number;
  readonly options: SimulatorOptions;
  close(): Promise<void>;
  /** Merges the given fault settings into the current ones. */
  setFaults(faults: Partial<FaultSettingsInput>): FaultSettings;
  /** Back to the faults the simulator started with (env / options). */
  clearFaults(): FaultSettings;
  stats(): SimulatorStats;
  resetStats(): void;
}

const HTML_502 =
  '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx (qwenops-simulator fault injection)</center></body></html>\n';

class RequestTooLarge extends Error {}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new RequestTooLarge(`request body over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: http.OutgoingHttpHeaders = {},
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    [SIMULATED_HEADER]: 'true',
    ...headers,
  });
  res.end(text);
}

/** Picks the next output token: mostly words, a punctuation mark now and then, never first. */
function nextTokenIndex(random: Random, position: number): number {
  const r = random();
  if (position > 0 && r < 0.12)
    return PUNCTUATION_START + Math.floor((r / 0.12) * (VOCABULARY.length - WORD_COUNT));
  return Math.floor(random() * WORD_COUNT);
}

export async function createServingSimulator(
  input: SimulatorOptionsInput = {},
  context: { logger?: Logger } = {},
): Promise<ServingSimulator> {
  const options = parseSimulatorOptions(input);
  const logger = context.logger ?? createLogger('serving-simulator');
  const startedAt = performance.now();
  const readyAt = startedAt + options.startupDelayMs;
  const jitter = seededRandom(seedFromText(`jitter:${options.seed}`));
  const chanceRandom = seededRandom(seedFromText(`faults:${options.seed}`));
  const idPrefix = randomBytes(4).toString('hex');
  const slots = new FifoSlots(options.maxConcurrency);
  let requestCounter = 0;
  let kvTokensInUse = 0;

  let faults: FaultSettings = { ...options.faults };
  let stallUntil = faults.stallMs > 0 ? startedAt + faults.stallMs : 0;

  const metrics: VllmMetrics = createVllmMetrics(options.model, {
    running: () => slots.running,
    waiting: () => slots.waiting,
    kvCacheUsage: () => Math.min(1, kvTokensInUse / options.kvCacheTokens),
  });

  const counts = {
    since: new Date(),
    total: 0,
    completed: 0,
    errors: {} as Record<string, number>,
    resets: 0,
    aborted: 0,
    embeddings: 0,
    promptTokens: 0,
    outputTokens: 0,
  };
  const e2eSamples = new LatencySamples();
  const ttftSamples = new LatencySamples();
  const queueSamples = new LatencySamples();
  const liveRequests = new Set<() => void>();

  const countError = (status: number) => {
    counts.errors[status] = (counts.errors[status] ?? 0) + 1;
  };

  const sendError = (
    res: http.ServerResponse,
    status: number,
    message: string,
    param: string | null = null,
  ) => {
    countError(status);
    sendJson(res, status, openAiError(status, message, param));
  };

  /** Injected failures decided at arrival; true when the request was answered by a fault. */
  const answeredByFault = (res: http.ServerResponse): boolean => {
    if (faults.htmlErrorPct > 0 && chanceRandom() * 100 < faults.htmlErrorPct) {
      countError(502);
      res.writeHead(502, { 'content-type': 'text/html', [SIMULATED_HEADER]: 'true' });
      res.end(HTML_502);
      return true;
    }
    if (faults.errorRatePct > 0 && chanceRandom() * 100 < faults.errorRatePct) {
      const status = faults.errorStatus;
      countError(status);
      const headers: http.OutgoingHttpHeaders =
        status === 429 || status === 503 ? { 'retry-after': String(faults.retryAfterSeconds) } : {};
      const message =
        status === 429
          ? 'simulated rate limit (fault injection): too many requests'
          : status === 503
            ? 'simulated overload (fault injection): service unavailable'
            : 'simulated internal server error (fault injection)';
      sendJson(res, status, openAiError(status, message), headers);
      return true;
    }
    return false;
  };

  function generate(
    kind: 'chat' | 'completion',
    request: ChatRequest | CompletionRequest,
    promptText: string,
    promptTokens: number,
    arrival: number,
    res: http.ServerResponse,
  ): void {
    const maxTokens =
      (kind === 'chat' ? (request as ChatRequest).max_completion_tokens : undefined) ??
      request.max_tokens ??
      options.maxModelLen - promptTokens;
    if (promptTokens + maxTokens > options.maxModelLen) {
      sendError(
        res,
        400,
        `This model's maximum context length is ${options.maxModelLen} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
        'max_tokens',
      );
      return;
    }
    if (answeredByFault(res)) return;
    const resetMidStream = faults.resetMidStreamPct > 0 && chanceRandom() * 100 < faults.resetMidStreamPct;
    const extraLatencyMs = faults.extraLatencyMs;

    // Text and length depend only on (seed, request seed, prompt): reproducible answers.
    const textRandom = seededRandom(
      seedFromText(`${options.seed}\u0000${request.seed ?? ''}\u0000${promptText}`),
    );
    const minTokens = Math.min(maxTokens, Math.max(1, request.min_tokens ?? 1));
    const outputTokens = request.ignore_eos
      ? maxTokens
      : Math.min(
          maxTokens,
          Math.max(minTokens, Math.round(lognormalAround(textRandom, options.meanOutputTokens, 0.5))),
        );
    const finishReason: FinishReason = outputTokens >= maxTokens ? 'length' : 'stop';
    const stream = request.stream === true;
    const includeUsage = stream && request.stream_options?.include_usage === true;
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${idPrefix}${(++requestCounter).toString(16)}`;
    const created = Math.floor(Date.now() / 1000);
    const model = request.model ?? options.model;

    const ticket = slots.acquire();
    let finished = false;
    let holdsSlot = false;
    let timer: NodeJS.Timeout | undefined;
    const reserved = promptTokens + outputTokens;

    const finish = (reason: FinishReason | 'reset') => {
      if (finished) return;
      finished = true;
      liveRequests.delete(abort);
      if (timer) clearTimeout(timer);
      if (holdsSlot) {
        kvTokensInUse -= reserved;
        slots.release();
      } else ticket.cancel();
      if (reason === 'reset') {
        counts.resets++;
        metrics.requestSuccess('abort');
      } else if (reason === 'abort') {
        counts.aborted++;
        metrics.requestSuccess('abort');
      } else {
        metrics.requestSuccess(reason);
      }
    };
    // A client that leaves (or close()) frees its slot and stops its timers.
    const abort = () => {
      if (!finished) finish('abort');
      if (!res.writableEnded) res.destroy();
    };
    liveRequests.add(abort);
    res.on('close', () => {
      if (!finished) finish('abort');
    });

    const complete = (end: number, firstTokenAt: number) => {
      counts.completed++;
      counts.promptTokens += promptTokens;
      counts.outputTokens += outputTokens;
      metrics.promptTokens.inc(promptTokens);
      metrics.generationTokens.inc(outputTokens);
      metrics.e2eRequestLatency.observe((end - arrival) / 1000);
      e2eSamples.add(end - arrival);
      ttftSamples.add(firstTokenAt - arrival);
      finish(finishReason);
    };

    void ticket.ready.then(() => {
      if (finished) {
        // The client left while queued; the slot was granted anyway, give it back.
        slots.release();
        return;
      }
      holdsSlot = true;
      kvTokensInUse += reserved;
      const start = performance.now();
      metrics.requestQueueTime.observe((start - arrival) / 1000);
      queueSamples.add(start - arrival);
      const stalledUntil = Math.max(stallUntil, start);
      const firstAt =
        stalledUntil +
        lognormalAround(jitter, options.ttftMs, options.jitterSigma) +
        (promptTokens / 1000) * options.prefillMsPer1kTokens +
        extraLatencyMs;
      const resetAfter = resetMidStream
        ? Math.max(1, Math.floor(outputTokens / 2))
        : Number.POSITIVE_INFINITY;

      if (stream) {
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
          [SIMULATED_HEADER]: 'true',
          'x-request-id': id,
        });
        res.flushHeaders();
        const writer = new SseChunkWriter(kind, id, created, model, includeUsage);
        let emitted = 0;
        let nextAt = firstAt;
        let firstWrittenAt = 0;
        let lastWrittenAt = 0;
        const tick = () => {
          timer = undefined;
          if (finished) return;
          const now = performance.now();
          let out = '';
          // Catch up on every token whose deadline has passed, in one write.
          while (emitted < outputTokens && nextAt <= now + 0.5) {
            if (emitted === 0) {
              out += kind === 'chat' ? writer.role() : '';
              firstWrittenAt = now;
              metrics.timeToFirstToken.observe((now - arrival) / 1000);
            } else {
              // The gap as it happened, not as planned: a late timer (busy loop, loaded
              // host) shows here as it does to the client; tokens caught up in one write
              // are 0 apart, as the client sees them.
              metrics.interTokenLatency.observe((now - lastWrittenAt) / 1000);
            }
            lastWrittenAt = now;
            out += writer.token(VOCABULARY_JSON[nextTokenIndex(textRandom, emitted)] as string);
            emitted++;
            if (emitted >= resetAfter) {
              finish('reset');
              // Cut only once what was sent reached the socket: the client sees a partial answer.
              res.write(out, () => res.socket?.destroy());
              return;
            }
            if (emitted < outputTokens)
              nextAt += lognormalAround(jitter, options.tpotMs, options.jitterSigma);
          }
          if (emitted === outputTokens) {
            out += writer.finish(finishReason);
            if (includeUsage) out += writer.usage(usageOf(promptTokens, outputTokens));
            out += SSE_DONE;
            res.end(out);
            complete(performance.now(), firstWrittenAt);
            return;
          }
          if (out) res.write(out);
          timer = setTimeout(tick, Math.max(0, nextAt - performance.now()));
        };
        timer = setTimeout(tick, Math.max(0, firstAt - performance.now()));
        return;
      }

      // Non-streaming: the same schedule, answered once at the last token's deadline.
      let endAt = firstAt;
      let text = '';
      const gaps: number[] = [];
      for (let i = 0; i < outputTokens; i++) {
        text += VOCABULARY[nextTokenIndex(textRandom, i)];
        if (i + 1 < outputTokens) {
          const gap = lognormalAround(jitter, options.tpotMs, options.jitterSigma);
          gaps.push(gap);
          endAt += gap;
        }
      }
      timer = setTimeout(
        () => {
          timer = undefined;
          if (finished) return;
          metrics.timeToFirstToken.observe((firstAt - arrival) / 1000);
          // Only the answer's send is observable: a late one lengthens the last gap, so the
          // gaps add up to the time actually taken from the first token to the answer.
          const late = Math.max(0, performance.now() - endAt);
          for (const [i, gap] of gaps.entries()) {
            metrics.interTokenLatency.observe((gap + (i === gaps.length - 1 ? late : 0)) / 1000);
          }
          if (resetMidStream) {
            finish('reset');
            res.socket?.destroy();
            return;
          }
          const usage = usageOf(promptTokens, outputTokens);
          const choice =
            kind === 'chat'
              ? {
                  index: 0,
                  message: { role: 'assistant', content: text },
                  logprobs: null,
                  finish_reason: finishReason,
                }
              : { index: 0, text, logprobs: null, finish_reason: finishReason };
          sendJson(
            res,
            200,
            {
              id,
              object: kind === 'chat' ? 'chat.completion' : 'text_completion',
              created,
              model,
              choices: [choice],
              usage,
            },
            { 'x-request-id': id },
          );
          complete(performance.now(), firstAt);
        },
        Math.max(0, endAt - performance.now()),
      );
    });
  }

  function handleGeneration(
    kind: 'chat' | 'completion',
    body: unknown,
    arrival: number,
    res: http.ServerResponse,
  ) {
    const validated =
      kind === 'chat'
        ? validateRequest(chatRequestSchema, body)
        : validateRequest(completionRequestSchema, body);
    if (!validated.ok) {
      countError(validated.status);
      sendJson(res, validated.status, validated.body);
      return;
    }
    const request = validated.value;
    if (request.model !== undefined && request.model !== options.model) {
      sendError(res, 404, `The model \`${request.model}\` does not exist.`, 'model');
      return;
    }
    let promptText: string;
    let promptTokens: number;
    if (kind === 'chat') {
      const messages = (request as ChatRequest).messages;
      promptText = chatPromptText(messages);
      // The chat template adds a few tokens around every message.
      promptTokens = estimateTokens(promptText) + 3 * messages.length + 3;
    } else {
      const prompt = (request as CompletionRequest).prompt;
      promptText = typeof prompt === 'string' ? prompt : (prompt[0] as string);
      promptTokens = Math.max(1, estimateTokens(promptText));
    }
    generate(kind, request, promptText, promptTokens, arrival, res);
  }

  function handleEmbeddings(body: unknown, res: http.ServerResponse) {
    const validated = validateRequest(embeddingRequestSchema, body);
    if (!validated.ok) {
      countError(validated.status);
      sendJson(res, validated.status, validated.body);
      return;
    }
    const request = validated.value;
    if (
      request.model !== undefined &&
      request.model !== options.embeddingModel &&
      request.model !== options.model
    ) {
      sendError(res, 404, `The model \`${request.model}\` does not exist.`, 'model');
      return;
    }
    if (request.dimensions != null && request.dimensions !== options.embeddingDims) {
      sendError(
        res,
        400,
        `Model "${options.embeddingModel}" does not support matryoshka representation, changing output dimensions will lead to poor results.`,
        'dimensions',
      );
      return;
    }
    const inputs = typeof request.input === 'string' ? [request.input] : request.input;
    const tokens = inputs.map(estimateTokens);
    for (const [index, count] of tokens.entries()) {
      if (count > options.embeddingMaxTokens) {
        sendError(
          res,
          400,
          `This model's maximum context length is ${options.embeddingMaxTokens} tokens. However, you requested ${count} tokens in the input for embedding generation (input[${index}]). Please reduce the length of the input.`,
          typeof request.input === 'string' ? 'input' : `input.${index}`,
        );
        return;
      }
    }
    if (answeredByFault(res)) return;
    const base64 = request.encoding_format === 'base64';
    const data = inputs.map((text, index) => {
      const vector = lexicalEmbedding(text, options.embeddingDims);
      return {
        object: 'embedding',
        index,
        embedding: base64 ? Buffer.from(vector.buffer).toString('base64') : Array.from(vector),
      };
    });
    const promptTokens = tokens.reduce((a, b) => a + b, 0);
    counts.embeddings++;
    metrics.promptTokens.inc(promptTokens);
    sendJson(res, 200, {
      object: 'list',
      data,
      model: request.model ?? options.embeddingModel,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    });
  }

  const stats = (): SimulatorStats => ({
    simulated: true,
    model: options.model,
    revision: options.revision,
    since: counts.since.toISOString(),
    requests: {
      total: counts.total,
      completed: counts.completed,
      errors: { ...counts.errors },
      resets: counts.resets,
      aborted: counts.aborted,
      embeddings: counts.embeddings,
    },
    e2eMs: e2eSamples.summary(),
    ttftMs: ttftSamples.summary(),
    queueMs: queueSamples.summary(),
    promptTokens: counts.promptTokens,
    outputTokens: counts.outputTokens,
    running: slots.running,
    waiting: slots.waiting,
    faults: { ...faults },
  });

  const resetStats = () => {
    Object.assign(counts, {
      since: new Date(),
      total: 0,
      completed: 0,
      errors: {},
      resets: 0,
      aborted: 0,
      embeddings: 0,
      promptTokens: 0,
      outputTokens: 0,
    });
    e2eSamples.reset();
    ttftSamples.reset();
    queueSamples.reset();
  };

  const setFaults = (input: Partial<FaultSettingsInput>): FaultSettings => {
    faults = parseFaultSettings(input, faults);
    if (input.stallMs !== undefined) stallUntil = input.stallMs > 0 ? performance.now() + input.stallMs : 0;
    logger.warn({ faults }, 'fault injection settings changed');
    return { ...faults };
  };
  const clearFaults = (): FaultSettings => {
    faults = { ...options.faults };
    stallUntil = 0;
    logger.info({ faults }, 'fault injection settings restored to start-up values');
    return { ...faults };
  };

  const loading = () => performance.now() < readyAt;

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const arrival = performance.now();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';

    const isGeneration = path === '/v1/chat/completions' || path === '/v1/completions';
    if (method === 'POST' && (isGeneration || path === '/v1/embeddings' || path.startsWith('/admin/'))) {
      let body: unknown;
      try {
        const raw = await readBody(req, options.maxBodyBytes);
        body = raw.length === 0 ? undefined : JSON.parse(raw.toString('utf8'));
      } catch (err) {
        if (err instanceof RequestTooLarge) return sendError(res, 413, err.message);
        return sendError(res, 400, `malformed JSON body: ${(err as Error).message}`);
      }
      if (path.startsWith('/admin/')) return adminPost(path, body, res);
      counts.total++;
      if (loading()) return sendError(res, 503, 'model is still loading (simulated start-up delay)');
      if (path === '/v1/embeddings') return handleEmbeddings(body, res);
      return handleGeneration(path === '/v1/chat/completions' ? 'chat' : 'completion', body, arrival, res);
    }
    if (method === 'GET' || method === 'HEAD') {
      switch (path) {
        case '/health':
          return loading()
            ? sendJson(res, 503, {
                status: 'loading',
                simulated: true,
                model: options.model,
                revision: options.revision,
              })
            : sendJson(res, 200, {
                status: 'ok',
                simulated: true,
                model: options.model,
                revision: options.revision,
              });
        case '/v1/models': {
          const created = Math.floor(Date.now() / 1000);
          const entry = (id: string) => ({
            id,
            object: 'model',
            created,
            owned_by: OWNED_BY,
            root: options.storageUri || id,
            parent: null,
            max_model_len: id === options.model ? options.maxModelLen : options.embeddingMaxTokens,
          });
          return sendJson(res, 200, {
            object: 'list',
            data: [entry(options.model), entry(options.embeddingModel)],
          });
        }
        case '/metrics': {
          const text = await metrics.registry.metrics();
          res.writeHead(200, { 'content-type': metrics.registry.contentType, [SIMULATED_HEADER]: 'true' });
          res.end(text);
          return;
        }
        case '/admin/stats':
          return sendJson(res, 200, stats());
        case '/admin/faults':
          return sendJson(res, 200, faults);
      }
    }
    if (method === 'DELETE' && path === '/admin/faults') return sendJson(res, 200, clearFaults());
    sendJson(res, 404, openAiError(404, `no route ${method} ${path}`));
  }

  function adminPost(path: string, body: unknown, res: http.ServerResponse) {
    if (path === '/admin/stats/reset') {
      resetStats();
      return sendJson(res, 200, stats());
    }
    if (path === '/admin/faults') {
      try {
        return sendJson(res, 200, setFaults((body ?? {}) as Partial<FaultSettingsInput>));
      } catch (err) {
        return sendJson(res, 400, openAiError(400, (err as Error).message));
      }
    }
    sendJson(res, 404, openAiError(404, `no route POST ${path}`));
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      logger.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, 500, `simulator bug: ${(err as Error).message}`);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 75_000;
  server.headersTimeout = 80_000;
  // Load tests open many connections at once.
  server.maxHeadersCount = 200;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `http://${host}:${port}`;
  logger.info(
    { url, model: options.model, revision: options.revision, options: { ...options, faults } },
    'SIMULATION: qwenops serving simulator (imitates a vLLM OpenAI server; no model is loaded)',
  );

  return {
    url,
    port,
    options,
    setFaults,
    clearFaults,
    stats,
    resetStats,
    async close() {
      for (const abort of [...liveRequests]) abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
