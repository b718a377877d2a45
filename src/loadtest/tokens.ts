import type { Tiktoken } from 'js-tiktoken/lite';

// Token counts come from the server's `usage` (stream_options.include_usage). When a server
// does not send usage, a tokenizer estimate stands in and the report marks it as such.
// The estimate uses cl100k_base: Qwen's tokenizer started from that vocabulary and added
// Chinese merges, so the estimate over-counts Chinese text somewhat; good enough for a
// fallback and for noticing a server whose usage is plainly wrong, not for billing.

let encoder: Tiktoken | undefined;

/** Loads the vocabulary (about a second of CPU): call before measuring, never inside. */
export async function loadTokenEstimator(): Promise<void> {
  if (encoder) return;
  const [{ Tiktoken }, ranks] = await Promise.all([
    import('js-tiktoken/lite'),
    import('js-tiktoken/ranks/cl100k_base'),
  ]);
  encoder = new Tiktoken(ranks.default);
}

export const TOKEN_ESTIMATOR_NAME = 'cl100k_base';

/**
 * Tokens of `text` under cl100k_base (exact for that vocabulary); loadTokenEstimator() must have run.
 * Unlike the other two: a real tokenizer, independent of the simulator's, so the usage cross-check bites.
 */
export function countCl100kTokens(text: string): number {
  if (!encoder) throw new Error('token estimator not loaded: call loadTokenEstimator() first');
  if (text.length === 0) return 0;
  return encoder.encode(text, 'all').length;
}

/** Tokenizers differ: cl100k_base spends up to ~2.5x Qwen's tokens on Chinese text. */
export const DISAGREEMENT_FACTOR = 3;

/**
 * Whether a usage count and an estimate disagree enough to warn: more than
 * DISAGREEMENT_FACTOR apart and by more than 8 tokens (short answers differ by a few
 * tokens between tokenizers). Meant for sums over several answers, where a server whose
 * usage is plainly wrong (zero, the prompt's count, another request's) stands out.
 */
export function countsDisagree(usage: number, estimate: number): boolean {
  if (Math.abs(usage - estimate) <= 8) return false;
  const low = Math.max(1, Math.min(usage, estimate));
  return Math.max(usage, estimate) / low > DISAGREEMENT_FACTOR;
}
