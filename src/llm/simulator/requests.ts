import { z } from 'zod';

// Request schemas of the OpenAI routes the simulator serves, validated the way vLLM does:
// unknown fields are accepted and ignored, bad known fields get a 400 naming the field.

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const message = z.looseObject({
  role: z.enum(['system', 'user', 'assistant', 'tool', 'developer']),
  content: z.union([z.string(), z.array(textPart), z.null()]).optional(),
});

const positiveTokens = z.number('must be an integer').int('must be an integer').min(1, 'must be at least 1');

const sampling = {
  model: z.string().min(1, 'must not be empty').optional(),
  max_tokens: positiveTokens.nullish(),
  min_tokens: z.number().int().min(0, 'must be >= 0').optional(),
  stream: z.boolean().nullish(),
  stream_options: z
    .looseObject({ include_usage: z.boolean().nullish(), continuous_usage_stats: z.boolean().nullish() })
    .nullish(),
  temperature: z.number().min(0, 'must be >= 0').max(2, 'must be <= 2').nullish(),
  top_p: z.number().gt(0, 'must be > 0').max(1, 'must be <= 1').nullish(),
  n: z.literal(1, 'the serving simulator supports only n = 1').nullish(),
  seed: z.number().int().nullish(),
  /** vLLM extension used by benchmarks: generate exactly max_tokens. */
  ignore_eos: z.boolean().nullish(),
};

export const chatRequestSchema = z.looseObject({
  messages: z.array(message, 'must be a list of messages').min(1, 'must contain at least one message'),
  ...sampling,
  max_completion_tokens: positiveTokens.nullish(),
});
export type ChatRequest = z.output<typeof chatRequestSchema>;

export const completionRequestSchema = z.looseObject({
  prompt: z.union([z.string(), z.array(z.string()).length(1, 'only one prompt per request is supported')]),
  ...sampling,
});
export type CompletionRequest = z.output<typeof completionRequestSchema>;

export const embeddingRequestSchema = z.looseObject({
  model: z.string().min(1).optional(),
  input: z.union([
    z.string(),
    z.array(z.string(), 'must be a string or a list of strings').min(1, 'must not be empty'),
  ]),
  encoding_format: z.enum(['float', 'base64']).nullish(),
  dimensions: z.number().int().positive().nullish(),
});
export type EmbeddingRequest = z.output<typeof embeddingRequestSchema>;

/** OpenAI error body, as vLLM's OpenAI server answers it. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: number };
}

const ERROR_TYPES: Record<number, string> = {
  400: 'BadRequestError',
  404: 'NotFoundError',
  413: 'RequestEntityTooLarge',
  429: 'RateLimitError',
  500: 'InternalServerError',
  503: 'ServiceUnavailableError',
};

export function openAiError(status: number, message: string, param: string | null = null): OpenAiErrorBody {
  return { error: { message, type: ERROR_TYPES[status] ?? 'Error', param, code: status } };
}

export type Validated<T> = { ok: true; value: T } | { ok: false; status: number; body: OpenAiErrorBody };

/** Parses a request body; a failure names the first bad field (and lists every one). */
export function validateRequest<T extends z.ZodType>(schema: T, body: unknown): Validated<z.output<T>> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { ok: false, status: 400, body: openAiError(400, 'request body must be a JSON object') };
  }
  const result = schema.safeParse(body);
  if (result.success) return { ok: true, value: result.data };
  const issues = result.error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    const missing = issue.code === 'invalid_type' && issue.input === undefined;
    return { path, message: missing ? 'Field required' : issue.message };
  });
  const first = issues[0];
  return {
    ok: false,
    status: 400,
    body: openAiError(400, issues.map((i) => `${i.path}: ${i.message}`).join('; '), first?.path || null),
  };
}

/** Text of the prompt, as the chat template would see it (roles included). */
export function chatPromptText(messages: ChatRequest['messages']): string {
  let text = '';
  for (const m of messages) {
    text += `${m.role}\n`;
    if (typeof m.content === 'string') text += m.content;
    else if (Array.isArray(m.content)) for (const part of m.content) text += part.text;
    text += '\n';
  }
  return text;
}
