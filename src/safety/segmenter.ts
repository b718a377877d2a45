import { createRequire } from 'node:module';

// Chinese word segmentation with jieba (@node-rs/jieba: Rust jieba-rs behind N-API, its
// prebuilt binary comes as an npm optional dependency per platform). Used only to confirm
// a lexicon hit: a "word" entry counts when the hit starts and ends on token boundaries,
// so 大麻 is not found inside 大麻烦. Only a window around each candidate is segmented,
// which keeps the work linear in the text and bounded per candidate; windows are cached.
// When the native module does not load (an unsupported platform), the guard falls back to
// character-level matching (every position is a boundary) and says so in `segmenter.name`.

export interface Segmenter {
  readonly name: string;
  /**
   * Whether the hit [start, end) of `text` stands as a word: it lies inside one token (a
   * compound holding the word, 色情网站), or starts and ends on token boundaries (暴力|恐怖).
   * A token that straddles its start or end (大|麻烦 for 大麻) makes it a false hit.
   */
  standsAsWord(text: string, start: number, end: number): boolean;
}

/** No segmentation: every position is a boundary (character-level matching). */
export const CHARACTER_SEGMENTER: Segmenter = {
  name: 'character',
  standsAsWord: () => true,
};

/** Characters of context on each side of a candidate. */
const WINDOW = 16;
const CACHE_LIMIT = 4096;

interface JiebaLike {
  cut(sentence: string, hmm?: boolean): string[];
}

export class JiebaSegmenter implements Segmenter {
  readonly name = 'jieba';
  /** Window text → its token boundaries, ascending (0 first, the window length last). */
  private readonly cache = new Map<string, number[]>();
  /** Characters handed to jieba so far (tests check the work stays bounded). */
  segmentedChars = 0;

  constructor(private readonly jieba: JiebaLike) {}

  standsAsWord(text: string, start: number, end: number): boolean {
    const from = Math.max(0, start - WINDOW);
    const to = Math.min(text.length, end + WINDOW);
    const window = text.slice(from, to);
    let boundaries = this.cache.get(window);
    if (!boundaries) {
      this.segmentedChars += window.length;
      boundaries = [0];
      let offset = 0;
      for (const token of this.jieba.cut(window, false)) {
        offset += token.length;
        boundaries.push(offset);
      }
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(window, boundaries);
    }
    const s = start - from;
    const e = end - from;
    const first = tokenIndex(boundaries, s);
    const last = tokenIndex(boundaries, e - 1);
    if (first === last) return true;
    return boundaries[first] === s && boundaries[last + 1] === e;
  }
}

/** Index of the token holding position p: the last boundary <= p. */
function tokenIndex(boundaries: readonly number[], p: number): number {
  let lo = 0;
  let hi = boundaries.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((boundaries[mid] as number) <= p) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

let shared: Segmenter | undefined;
let loadError: string | undefined;

/** jieba with its bundled dictionary (loaded once, about half a second), or the character fallback. */
export function defaultSegmenter(): Segmenter {
  if (shared) return shared;
  try {
    const require = createRequire(import.meta.url);
    const { Jieba } = require('@node-rs/jieba') as { Jieba: { withDict(dict: Uint8Array): JiebaLike } };
    const { dict } = require('@node-rs/jieba/dict') as { dict: Uint8Array };
    shared = new JiebaSegmenter(Jieba.withDict(dict));
  } catch (err) {
    loadError = (err as Error).message;
    shared = CHARACTER_SEGMENTER;
  }
  return shared;
}

/** Why jieba did not load, when it did not. */
export function segmenterLoadError(): string | undefined {
  return loadError;
}
