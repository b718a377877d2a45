// Normalisation against evasion, applied to the lexicon and to the text alike before
// matching: NFKC (full-width → half-width, compatibility forms), case folding, a small
// traditional → simplified table, and removal of whatever is inserted between characters
// to split a word (spaces, zero-width and other format characters, punctuation, symbols).
//
// The traditional → simplified table is deliberately tiny: it covers the characters of the
// shipped and sample lexicons (and a few common neighbours), not Chinese at large. A
// lexicon entry written in traditional characters is normalised by the same table, so an
// entry whose characters the table lacks still matches its own traditional spelling.

const TRADITIONAL_TO_SIMPLIFIED: Readonly<Record<string, string>> = {
  賭: '赌',
  錢: '钱',
  槍: '枪',
  藥: '药',
  詐: '诈',
  騙: '骗',
  傳: '传',
  銷: '销',
  黃: '黄',
  彈: '弹',
  製: '制',
  販: '贩',
  賣: '卖',
  買: '买',
  場: '场',
  網: '网',
  機: '机',
  極: '极',
  發: '发',
  煩: '烦',
  門: '门',
  義: '义',
  戀: '恋',
  穢: '秽',
};

/** Characters removed before matching: separators, format (zero-width) characters, punctuation, symbols. */
const REMOVED = /[\p{White_Space}\p{Cf}\p{P}\p{S}\p{Cc}]/u;

export interface NormalizedText {
  /** The text after normalisation, as matched. */
  text: string;
  /** For each UTF-16 index of `text`, the UTF-16 index in the original it came from. */
  origin: Int32Array;
}

function normalizeChar(ch: string): string {
  let out = ch.normalize('NFKC').toLowerCase();
  if (out.length === 1 || out.codePointAt(0) === ch.codePointAt(0)) {
    out = TRADITIONAL_TO_SIMPLIFIED[out] ?? out;
  } else {
    out = Array.from(out, (c) => TRADITIONAL_TO_SIMPLIFIED[c] ?? c).join('');
  }
  return out;
}

const TRADITIONAL_CODES = new Map<number, number>(
  Object.entries(TRADITIONAL_TO_SIMPLIFIED).map(([t, s]) => [t.charCodeAt(0), s.charCodeAt(0)]),
);

/**
 * Normalises `input` in one pass (linear in its length) and keeps, for every output unit,
 * where it came from, so a match can be shown in the original. CJK ideographs and ASCII
 * take a fast path; other characters go through NFKC one code point at a time.
 */
export function normalizeForMatching(input: string): NormalizedText {
  const out = new Uint16Array(input.length * 3 + 4);
  const origin = new Int32Array(input.length * 3 + 4);
  let length = 0;
  for (let i = 0; i < input.length; ) {
    const code = input.charCodeAt(i);
    if (code >= 0x4e00 && code <= 0x9fff) {
      // CJK unified ideographs: NFKC and case folding leave them as they are.
      out[length] = TRADITIONAL_CODES.get(code) ?? code;
      origin[length++] = i++;
      continue;
    }
    if (code < 0x80) {
      // ASCII: letters (lower-cased) and digits stay; spaces, punctuation, symbols, controls go.
      if ((code >= 0x30 && code <= 0x39) || (code >= 0x61 && code <= 0x7a)) {
        out[length] = code;
        origin[length++] = i;
      } else if (code >= 0x41 && code <= 0x5a) {
        out[length] = code + 0x20;
        origin[length++] = i;
      }
      i++;
      continue;
    }
    const point = input.codePointAt(i) as number;
    const ch = String.fromCodePoint(point);
    const normalized = normalizeChar(ch);
    for (let k = 0; k < normalized.length; k++) {
      const unit = normalized[k] as string;
      if (REMOVED.test(unit)) continue;
      if (length >= out.length) throw new Error('normalisation grew the text more than 3x');
      out[length] = unit.charCodeAt(0);
      origin[length++] = i;
    }
    i += ch.length;
  }
  const pieces: string[] = [];
  for (let at = 0; at < length; at += 8192) {
    pieces.push(String.fromCharCode(...out.subarray(at, Math.min(length, at + 8192))));
  }
  return { text: pieces.join(''), origin: origin.subarray(0, length) };
}

/** The normalised form alone (lexicon entries). */
export function normalizeWord(word: string): string {
  return normalizeForMatching(word).text;
}
