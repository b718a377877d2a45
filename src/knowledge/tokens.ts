// A conservative token count for bge-m3 (XLM-RoBERTa SentencePiece vocabulary, 8192
// positions). The real tokenizer's files are not shipped by any package registry, so the
// budget uses an estimate that errs high: every CJK / kana / hangul character counts as
// one token (SentencePiece usually merges common pairs, so real counts are lower), a run
// of Latin letters counts one token per 3 characters (real: about one per 4), every digit,
// punctuation mark or symbol counts one, whitespace none, plus the <s> and </s> markers.
// Erring high only makes chunks a little smaller than they could be; it never sends an
// input over the model's limit, which some servers truncate silently.

export const BGE_M3_MAX_TOKENS = 8192;
export const BGE_M3_DIMENSIONS = 1024;
const SPECIAL_TOKENS = 2;

function isLatinLetter(code: number): boolean {
  return (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a) || (code >= 0xc0 && code <= 0x24f);
}

/** Estimated tokens of `text` as one embedding input (special tokens included). */
export function estimateTokens(text: string): number {
  let tokens = SPECIAL_TOKENS;
  let latinRun = 0;
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    if (isLatinLetter(code)) {
      latinRun++;
      continue;
    }
    if (latinRun > 0) {
      tokens += Math.ceil(latinRun / 3);
      latinRun = 0;
    }
    if (code <= 0x20 || code === 0x3000 || code === 0xa0) continue;
    // CJK, kana, hangul, digits, punctuation, symbols: one each.
    tokens += 1;
  }
  if (latinRun > 0) tokens += Math.ceil(latinRun / 3);
  return tokens;
}

/**
 * The longest prefix of `text` (in whole code points) whose estimate fits `maxTokens`.
 * Used to cut a single sentence that alone exceeds the budget.
 */
export function prefixWithinTokens(text: string, maxTokens: number): string {
  if (estimateTokens(text) <= maxTokens) return text;
  const chars = Array.from(text);
  let low = 0;
  let high = chars.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (estimateTokens(chars.slice(0, mid).join('')) <= maxTokens) low = mid;
    else high = mid - 1;
  }
  // Never return an empty piece: one character always fits a budget of >= 3 tokens.
  return chars.slice(0, Math.max(1, low)).join('');
}
