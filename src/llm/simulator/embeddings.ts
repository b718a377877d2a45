import type http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { FifoSlots } from './concurrency.js';
import type { FaultInjector } from './faults.js';
import { sendError, sendJson } from './http-io.js';
import { lexicalEmbedding } from './lexical-embedder.js';
import type { SimulatorOptions } from './options.js';
import { embeddingRequestSchema, validateRequest } from './requests.js';
import type { SimulatorRecorder } from './stats.js';
import { estimateQwenTokens } from './vocabulary.js';

// POST /v1/embeddings, answered at once as a bge-m3 server would: vLLM's checks (model,
// dimensions, per-input context length) with vLLM's error texts, then the lexical
// stand-in vectors (./lexical-embedder.ts), as floats or base64. With a service model
// (options.embeddingMaxConcurrency / embeddingBatchLatencyMs / embeddingInputLatencyMs)
// a request waits for one of the server's batch slots (FIFO) and holds it for
// a + b * inputs ms, so the server has a finite capacity a client can saturate; TEI's
// batch-size limit (embeddingMaxBatchInputs) answers 422 with TEI's error body.

/** The embedding server's batch slots (one per simulator; unlimited without a model). */
export function embeddingSlots(options: SimulatorOptions): FifoSlots | undefined {
  return options.embeddingMaxConcurrency > 0 ? new FifoSlots(options.embeddingMaxConcurrency) : undefined;
}

export async function handleEmbeddings(
  options: SimulatorOptions,
  faults: FaultInjector,
  recorder: SimulatorRecorder,
  body: unknown,
  res: http.ServerResponse,
  slots?: FifoSlots,
): Promise<void> {
  const validated = validateRequest(embeddingRequestSchema, body);
  if (!validated.ok) {
    recorder.error(validated.status);
    sendJson(res, validated.status, validated.body);
    return;
  }
  const request = validated.value;
  if (
    request.model !== undefined &&
    request.model !== options.embeddingModel &&
    request.model !== options.model
  ) {
    sendError(res, recorder, 404, `The model \`${request.model}\` does not exist.`, 'model');
    return;
  }
  if (request.dimensions != null && request.dimensions !== options.embeddingDims) {
    sendError(
      res,
      recorder,
      400,
      `Model "${options.embeddingModel}" does not support matryoshka representation, changing output dimensions will lead to poor results.`,
      'dimensions',
    );
    return;
  }
  const inputs = typeof request.input === 'string' ? [request.input] : request.input;
  if (options.embeddingMaxBatchInputs > 0 && inputs.length > options.embeddingMaxBatchInputs) {
    // TEI's validation error (--max-client-batch-size), in TEI's own body shape.
    recorder.error(422);
    sendJson(res, 422, {
      error: `batch size ${inputs.length} > maximum allowed batch size ${options.embeddingMaxBatchInputs}`,
      error_type: 'Validation',
    });
    return;
  }
  const tokens = inputs.map(estimateQwenTokens);
  for (const [index, count] of tokens.entries()) {
    if (count > options.embeddingMaxTokens) {
      sendError(
        res,
        recorder,
        400,
        `This model's maximum context length is ${options.embeddingMaxTokens} tokens. However, you requested ${count} tokens in the input for embedding generation (input[${index}]). Please reduce the length of the input.`,
        typeof request.input === 'string' ? 'input' : `input.${index}`,
      );
      return;
    }
  }
  if (faults.answered(res)) return;
  const serviceMs = options.embeddingBatchLatencyMs + inputs.length * options.embeddingInputLatencyMs;
  if (slots || serviceMs > 0) {
    const ticket = slots?.acquire();
    const left = () => ticket?.cancel();
    res.once('close', left);
    await ticket?.ready;
    try {
      if (res.destroyed) return;
      if (serviceMs > 0) await sleep(serviceMs);
    } finally {
      res.off('close', left);
      if (ticket) slots?.release();
    }
    if (res.destroyed) return;
  }
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
  recorder.embedded(promptTokens);
  sendJson(res, 200, {
    object: 'list',
    data,
    model: request.model ?? options.embeddingModel,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}
