import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../observability/logger.js';
import { embeddingSlots, handleEmbeddings } from './embeddings.js';
import type { FaultInjector } from './faults.js';
import type { GenerationEngine } from './generation.js';
import { RequestTooLarge, readBody, SIMULATED_HEADER, sendError, sendJson } from './http-io.js';
import type { FaultSettingsInput, SimulatorOptions } from './options.js';
import {
  type ChatRequest,
  type CompletionRequest,
  chatPromptText,
  chatRequestSchema,
  completionRequestSchema,
  openAiError,
  validateRequest,
} from './requests.js';
import type { SimulatorRecorder, SimulatorStats } from './stats.js';
import { estimateQwenTokens } from './vocabulary.js';

// The simulator's HTTP routes: vLLM's OpenAI server (chat and text completions, embeddings,
// models, health, Prometheus metrics) and the simulator's own /admin routes (stats, faults).
// A generation request is checked here, the way vLLM checks it, then handed to the engine.

export const OWNED_BY = 'qwenops-simulator';

export interface RouteContext {
  options: SimulatorOptions;
  logger: Logger;
  recorder: SimulatorRecorder;
  faults: FaultInjector;
  engine: GenerationEngine;
  /** performance.now() from which the model counts as loaded (the simulated start-up delay). */
  readyAt: number;
  stats(): SimulatorStats;
}

export function createRouter(ctx: RouteContext): http.RequestListener {
  const { options, recorder, faults, engine } = ctx;
  const loading = () => performance.now() < ctx.readyAt;
  const embeddingBatchSlots = embeddingSlots(options);

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
      recorder.error(validated.status);
      sendJson(res, validated.status, validated.body);
      return;
    }
    const request = validated.value;
    if (request.model !== undefined && request.model !== options.model) {
      sendError(res, recorder, 404, `The model \`${request.model}\` does not exist.`, 'model');
      return;
    }
    let promptText: string;
    let promptTokens: number;
    if (kind === 'chat') {
      const messages = (request as ChatRequest).messages;
      promptText = chatPromptText(messages);
      // The chat template adds a few tokens around every message.
      promptTokens = estimateQwenTokens(promptText) + 3 * messages.length + 3;
    } else {
      const prompt = (request as CompletionRequest).prompt;
      promptText = typeof prompt === 'string' ? prompt : (prompt[0] as string);
      promptTokens = Math.max(1, estimateQwenTokens(promptText));
    }
    const maxTokens =
      (kind === 'chat' ? (request as ChatRequest).max_completion_tokens : undefined) ??
      request.max_tokens ??
      options.maxModelLen - promptTokens;
    if (promptTokens + maxTokens > options.maxModelLen) {
      sendError(
        res,
        recorder,
        400,
        `This model's maximum context length is ${options.maxModelLen} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
        'max_tokens',
      );
      return;
    }
    engine.generate({ kind, request, promptText, promptTokens, maxTokens, arrival }, res);
  }

  function adminPost(path: string, body: unknown, res: http.ServerResponse) {
    if (path === '/admin/stats/reset') {
      recorder.reset();
      return sendJson(res, 200, ctx.stats());
    }
    if (path === '/admin/faults') {
      try {
        return sendJson(res, 200, faults.set((body ?? {}) as Partial<FaultSettingsInput>));
      } catch (err) {
        return sendJson(res, 400, openAiError(400, (err as Error).message));
      }
    }
    sendJson(res, 404, openAiError(404, `no route POST ${path}`));
  }

  function models(res: http.ServerResponse) {
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
    sendJson(res, 200, { object: 'list', data: [entry(options.model), entry(options.embeddingModel)] });
  }

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
        if (err instanceof RequestTooLarge) return sendError(res, recorder, 413, err.message);
        return sendError(res, recorder, 400, `malformed JSON body: ${(err as Error).message}`);
      }
      if (path.startsWith('/admin/')) return adminPost(path, body, res);
      recorder.arrived();
      if (loading())
        return sendError(res, recorder, 503, 'model is still loading (simulated start-up delay)');
      if (path === '/v1/embeddings')
        return handleEmbeddings(options, faults, recorder, body, res, embeddingBatchSlots);
      return handleGeneration(path === '/v1/chat/completions' ? 'chat' : 'completion', body, arrival, res);
    }
    if (method === 'GET' || method === 'HEAD') {
      switch (path) {
        case '/health': {
          const identity = { simulated: true, model: options.model, revision: options.revision };
          return loading()
            ? sendJson(res, 503, { status: 'loading', ...identity })
            : sendJson(res, 200, { status: 'ok', ...identity });
        }
        case '/v1/models':
          return models(res);
        case '/metrics': {
          const text = await recorder.metrics.registry.metrics();
          res.writeHead(200, {
            'content-type': recorder.metrics.registry.contentType,
            [SIMULATED_HEADER]: 'true',
          });
          res.end(text);
          return;
        }
        case '/admin/stats':
          return sendJson(res, 200, ctx.stats());
        case '/admin/faults':
          return sendJson(res, 200, faults.current);
      }
    }
    if (method === 'DELETE' && path === '/admin/faults') return sendJson(res, 200, faults.clear());
    sendJson(res, 404, openAiError(404, `no route ${method} ${path}`));
  }

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      ctx.logger.error({ err }, 'request failed');
      if (!res.headersSent) sendError(res, recorder, 500, `simulator bug: ${(err as Error).message}`);
      else res.destroy();
    });
  };
}
