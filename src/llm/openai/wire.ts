// The OpenAI-compatible wire format, declared once: what the client sends and reads, what
// the load generator checks, what the simulator writes. Field names are the wire's own
// (snake_case). Extensions that vLLM sends (reasoning_content, max_model_len) are marked.

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'developer';
  content: string;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  stop?: string | string[];
  stream_options?: { include_usage?: boolean };
  /** Anything else the server understands (vLLM extensions such as ignore_eos). */
  [extra: string]: unknown;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Why a choice ended; "abort" is vLLM's for a request cancelled mid-generation. */
export type FinishReason = 'stop' | 'length' | 'abort';

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: string; content: string | null };
    finish_reason: string | null;
  }>;
  usage?: Usage;
}

/** One streamed delta; reasoning_content is vLLM's field for a reasoning model's thinking. */
export interface ChunkDelta {
  role?: string;
  content?: string | null;
  reasoning_content?: string | null;
  tool_calls?: unknown[];
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: ChunkDelta;
    finish_reason: string | null;
  }>;
  usage?: Usage | null;
}

export interface ModelInfo {
  id: string;
  object: 'model';
  owned_by?: string;
  /** vLLM: the context length the model is served with. */
  max_model_len?: number;
  [extra: string]: unknown;
}

/** A wire object as read from a peer not yet trusted: every field optional and unchecked. */
export type Unchecked<T> = { [K in keyof T]?: unknown };

export function usageOf(promptTokens: number, completionTokens: number): Usage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}
