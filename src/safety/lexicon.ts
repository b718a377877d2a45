import { readFile } from 'node:fs/promises';
import { normalizeWord } from './normalize.js';

// A versioned lexicon file: {"version": "...", "entries": [{"word", "category", "match"?}]}.
// `match` is "word" (the default: the hit must start and end on a word boundary of the
// segmented text, so 大麻 does not fire inside 大麻烦) or "substring" (any occurrence).
// A bad file is refused as a whole, naming each bad entry's index and the rule it breaks.

export const MAX_WORD_LENGTH = 32;
const CATEGORY = /^[a-z][a-z0-9_-]{0,31}$/;

export type MatchMode = 'word' | 'substring';

export interface LexiconEntry {
  /** As written in the file. */
  word: string;
  /** normalizeWord(word): what is matched. */
  normalized: string;
  category: string;
  match: MatchMode;
}

export interface Lexicon {
  version: string;
  entries: LexiconEntry[];
}

export class LexiconError extends Error {
  override readonly name = 'LexiconError';
  constructor(
    readonly source: string,
    readonly issues: string[],
  ) {
    super(`invalid lexicon ${source}:\n  ${issues.join('\n  ')}`);
  }
}

/** Validates a parsed lexicon document; throws LexiconError listing every broken rule. */
export function parseLexicon(document: unknown, source = 'lexicon'): Lexicon {
  const issues: string[] = [];
  if (!document || typeof document !== 'object' || Array.isArray(document)) {
    throw new LexiconError(source, ['the lexicon must be an object {version, entries}']);
  }
  const { version, entries } = document as { version?: unknown; entries?: unknown };
  if (typeof version !== 'string' || version.trim() === '')
    issues.push('version: must be a non-empty string');
  if (!Array.isArray(entries)) {
    issues.push('entries: must be an array');
    throw new LexiconError(source, issues);
  }
  const seen = new Map<string, number>();
  const parsed: LexiconEntry[] = [];
  entries.forEach((raw, index) => {
    const at = `entry ${index}`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
      issues.push(`${at}: must be an object {word, category}`);
      return;
    }
    const { word, category, match } = raw as { word?: unknown; category?: unknown; match?: unknown };
    if (typeof word !== 'string') {
      issues.push(`${at}: word must be a string (got ${word === null ? 'null' : typeof word})`);
      return;
    }
    const normalized = normalizeWord(word);
    if (normalized === '') {
      issues.push(
        `${at}: word is empty${word === '' ? '' : ' after normalisation (only spaces or punctuation)'}`,
      );
      return;
    }
    if ([...normalized].length > MAX_WORD_LENGTH) {
      issues.push(
        `${at}: word is over-long (${[...normalized].length} characters, at most ${MAX_WORD_LENGTH})`,
      );
      return;
    }
    if (typeof category !== 'string' || !CATEGORY.test(category)) {
      issues.push(`${at}: category must match ${CATEGORY} (got ${JSON.stringify(category)})`);
      return;
    }
    if (match !== undefined && match !== 'word' && match !== 'substring') {
      issues.push(`${at}: match must be "word" or "substring" (got ${JSON.stringify(match)})`);
      return;
    }
    const first = seen.get(normalized);
    if (first !== undefined) {
      issues.push(`${at}: duplicate of entry ${first} (${JSON.stringify(normalized)} after normalisation)`);
      return;
    }
    seen.set(normalized, index);
    parsed.push({ word, normalized, category, match: (match as MatchMode | undefined) ?? 'word' });
  });
  if (issues.length > 0) throw new LexiconError(source, issues);
  return { version: (version as string).trim(), entries: parsed };
}

export async function loadLexiconFile(file: string): Promise<Lexicon> {
  let document: unknown;
  try {
    document = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new LexiconError(file, [`cannot read it as JSON: ${(err as Error).message}`]);
  }
  return parseLexicon(document, file);
}
