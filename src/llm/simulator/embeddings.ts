import type http from 'node:http';
import type { FaultInjector } from './faults.js';
import { sendError, sendJson } from './http-io.js';
import { lexicalEmbedding } from './lexical-embedder.js';
import type { SimulatorOptions } from './options.js';
import { embeddingRequestSchema, validateRequest } from './requests.js';
import type { SimulatorRecorder } from './stats.js';
import { estimateQwenTokens } from './vocabulary.js';

// POST /v1/embeddings, answered at once as a bge-m3 server would: vLLM's checks (model,
// dimensions, per-input context length) with vLLM's error texts, then the lexical
// stand-in vectors (./lexical-embedder.ts), as floats or base64.

export function handleEmbeddings(
  options: SimulatorOptions,
  faults: FaultInjector,
  recorder: SimulatorRecorder,
  body: unknown,
  res: http.ServerResponse,
): void {
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
