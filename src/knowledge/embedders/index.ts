import type { QwenopsConfig } from '../../config/config.js';
import type { Logger } from '../../observability/logger.js';
import { LexicalEmbedder } from './lexical.js';
import { OpenAiEmbedder } from './openai.js';
import type { Embedder } from './port.js';

export type { Embedder } from './port.js';

/**
 * The embedder the configuration names: the OpenAI-compatible client when
 * knowledge.embeddingsUrl is set (bge-m3 on TEI / vLLM / Infinity, or the serving
 * simulator), else the local lexical stand-in, which labels itself as such.
 */
export function createEmbedder(config: QwenopsConfig['knowledge'], logger?: Logger): Embedder {
  if (config.embeddingsUrl) {
    return new OpenAiEmbedder({
      baseUrl: config.embeddingsUrl,
      model: config.embeddingsModel,
      apiKey: config.embeddingsApiKey,
      logger,
    });
  }
  return new LexicalEmbedder();
}
