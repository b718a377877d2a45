import { AhoCorasick } from './aho-corasick.js';
import type { Lexicon } from './lexicon.js';
import { normalizeForMatching } from './normalize.js';
import { defaultSegmenter, type Segmenter } from './segmenter.js';

// The guard port: one check of a text, blocked or not, with what matched. The lexicon
// guard is the default; a moderation classifier (./moderation.ts) answers the same way,
// and AnyGuard blocks when any of several does.

/** The production plan's refusal, shown for a refused question and instead of a blocked answer. */
export const REFUSAL_MESSAGE = '抱歉，该问题涉及敏感内容，无法回答。';

export interface GuardMatch {
  /** The lexicon word (as written), or the classifier's category. */
  word: string;
  category: string;
  /** What the text held there, as written (lexicon guard only). */
  found?: string;
  /** [start, end) in the original text, UTF-16 units (lexicon guard only). */
  start?: number;
  end?: number;
}

export interface GuardResult {
  blocked: boolean;
  matches: GuardMatch[];
  /** The first match's category, when blocked. */
  category?: string;
}

export interface Guard {
  readonly name: string;
  check(text: string): Promise<GuardResult>;
}

export interface LexiconGuardOptions {
  /** jieba by default; CHARACTER_SEGMENTER matches without segmentation. */
  segmenter?: Segmenter;
  /** Stop after this many confirmed matches (the verdict is already known). */
  maxMatches?: number;
}

export class LexiconGuard implements Guard {
  readonly name: string;
  private readonly automaton: AhoCorasick;
  private readonly maxMatches: number;
  private segmenter: Segmenter | undefined;

  constructor(
    readonly lexicon: Lexicon,
    options: LexiconGuardOptions = {},
  ) {
    this.name = `lexicon@${lexicon.version}`;
    this.automaton = new AhoCorasick(lexicon.entries.map((e) => e.normalized));
    this.maxMatches = options.maxMatches ?? 32;
    this.segmenter = options.segmenter;
  }

  /** Work done by the last scan (automaton steps), for tests of linearity. */
  get scanSteps(): number {
    return this.automaton.steps;
  }

  checkSync(text: string): GuardResult {
    const normalized = normalizeForMatching(text);
    const matches: GuardMatch[] = [];
    for (const hit of this.automaton.scan(normalized.text)) {
      const entry = this.lexicon.entries[hit.pattern];
      if (!entry) continue;
      if (entry.match === 'word') {
        this.segmenter ??= defaultSegmenter();
        if (!this.segmenter.standsAsWord(normalized.text, hit.start, hit.end)) continue;
      }
      const start = normalized.origin[hit.start] as number;
      const last = normalized.origin[hit.end - 1] as number;
      const end =
        last + (text.codePointAt(last) !== undefined && (text.codePointAt(last) as number) > 0xffff ? 2 : 1);
      matches.push({ word: entry.word, category: entry.category, found: text.slice(start, end), start, end });
      if (matches.length >= this.maxMatches) break;
    }
    const first = matches[0];
    return first ? { blocked: true, matches, category: first.category } : { blocked: false, matches };
  }

  async check(text: string): Promise<GuardResult> {
    return this.checkSync(text);
  }
}

/** Blocks when any guard does; asks them in order and stops at the first block. */
export class AnyGuard implements Guard {
  readonly name: string;
  constructor(private readonly guards: readonly Guard[]) {
    this.name = guards.map((g) => g.name).join('+');
  }

  async check(text: string): Promise<GuardResult> {
    for (const guard of this.guards) {
      const result = await guard.check(text);
      if (result.blocked) return result;
    }
    return { blocked: false, matches: [] };
  }
}
