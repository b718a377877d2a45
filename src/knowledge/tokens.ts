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

/**
 * At least the bge-m3 tokens of `text` as one embedding input (special tokens included).
 * Unlike the other two: an upper bound, not a guess, so no chunk ever exceeds the embedding input budget.
 */
export function bgeM3TokenUpperBound(text: string): number {
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

/** Whitespace the estimate does not count. */
function isSpace(code: number): boolean {
  return code <= 0x20 || code === 0x3000 || code === 0xa0;
}

/** Where a piece ends and its estimate (special tokens included). */
export interface TokenCut {
  /** UTF-16 index in the text just after the piece. */
  end: number;
  tokens: number;
}

/**
 * The longest piece of `text` from `start` (in whole code points) whose estimate fits
 * `maxTokens`, found in one forward scan that stops at the first code point that would
 * not fit: the cost is the piece's length, never the remainder's. The estimate only
 * grows as a piece grows, so this is the same cut a search over all prefixes would make.
 * A piece is never empty: its first code point is taken even when it alone is over.
 */
export function cutWithinTokens(text: string, start: number, maxTokens: number): TokenCut {
  let counted = SPECIAL_TOKENS;
  let latinRun = 0;
  let i = start;
  const length = text.length;
  while (i < length) {
    const code = text.codePointAt(i) as number;
    const width = code > 0xffff ? 2 : 1;
    if (isLatinLetter(code)) {
      if (counted + Math.ceil((latinRun + 1) / 3) > maxTokens && i > start) break;
      latinRun++;
    } else {
      const closed = counted + Math.ceil(latinRun / 3);
      const next = isSpace(code) ? closed : closed + 1;
      if (next > maxTokens && i > start) break;
      counted = next;
      latinRun = 0;
    }
    i += width;
  }
  return { end: i, tokens: counted + Math.ceil(latinRun / 3) };
}

/**
 * The longest prefix of `text` (in whole code points) whose estimate fits `maxTokens`.
 * Used to cut a single sentence that alone exceeds the budget, and long heading lines.
 * Costs the prefix's length, not the text's.
 */
export function prefixWithinTokens(text: string, maxTokens: number): string {
  return text.slice(0, cutWithinTokens(text, 0, maxTokens).end);
}
