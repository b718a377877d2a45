// The embedder port: texts in, unit-length vectors of a fixed dimension out, in order.
// Adapters: ./openai (any OpenAI-compatible /v1/embeddings: TEI, vLLM, Infinity serving
// bge-m3, or the serving simulator) and ./lexical (a deterministic local stand-in).

export interface EmbedderStats {
  /** embed() calls: what "embedding calls" in reports counts. */
  calls: number;
  /** Inputs embedded. */
  inputs: number;
  /** HTTP requests sent, retries and 413 splits included (0 for local embedders). */
  requests: number;
  retries: number;
  splits: number;
}

export interface Embedder {
  /** The model id written next to every vector; a different model means re-embedding. */
  readonly model: string;
  readonly dimensions: number;
  /** Longest input (in estimated tokens) the model accepts. */
  readonly maxInputTokens: number;
  /** Says what this is, for logs and reports (a stand-in says so). */
  readonly label: string;
  embed(texts: string[], options?: { signal?: AbortSignal }): Promise<Float32Array[]>;
  stats(): EmbedderStats;
}

export class EmbeddingError extends Error {
  override readonly name: string = 'EmbeddingError';
  get failureType(): string {
    return this.retryable ? 'EmbeddingUnavailable' : 'EmbeddingRejected';
  }
  constructor(
    message: string,
    /** Worth retrying later (server overloaded or unreachable), as opposed to a wrong request or model. */
    readonly retryable: boolean,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options);
    this.status = options?.status;
  }
  readonly status: number | undefined;
}

/** The server's vectors do not have the dimension the index was built for. */
export class EmbeddingDimensionError extends EmbeddingError {
  override readonly name = 'EmbeddingDimensionError';
  constructor(message: string) {
    super(message, false);
  }
}

/** An input over the model's token limit: refused before sending (servers may truncate silently). */
export class EmbeddingInputTooLongError extends EmbeddingError {
  override readonly name = 'EmbeddingInputTooLongError';
  constructor(message: string) {
    super(message, false);
  }
}

/** L2-normalises in place; a zero vector cannot be normalised and is refused. */
export function normalise(vector: Float32Array, what: string): Float32Array {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += (vector[i] as number) ** 2;
  const norm = Math.sqrt(sum);
  if (!Number.isFinite(norm) || norm === 0)
    throw new EmbeddingError(`${what}: zero or non-finite vector`, false);
  if (Math.abs(norm - 1) > 1e-6)
    for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] as number) / norm;
  return vector;
}
