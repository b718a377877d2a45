import { type ChunkingOptions, chunkingSchema } from '../domain/knowledge.js';
import type { ExtractedDocument } from './document.js';
import { bgeM3TokenUpperBound, cutWithinTokens, prefixWithinTokens } from './tokens.js';

// Chinese-aware chunking. A chunk never mixes two sections (a heading starts a new one),
// never splits a sentence unless that sentence alone exceeds the budget, and prefers to
// end at a sentence end (。！？；!?; and their closing quotes/brackets) or a line end.
// Consecutive chunks of a section overlap by whole trailing sentences. Each chunk's
// embedded text starts with its heading path, so a chunk about "报销时限" under
// "报销流程" still says what it is about; the same path is kept in its metadata.

export { type ChunkingOptions, chunkingSchema } from '../domain/knowledge.js';
export const DEFAULT_CHUNKING: ChunkingOptions = chunkingSchema.parse({});

export interface TextChunk {
  /** 0-based position of the chunk in its document. */
  index: number;
  /** The text that is embedded and stored: heading path line, then the body. */
  content: string;
  headingPath: string[];
  tokens: number;
}

// A sentence ends at 。！？；!?; (or …… / an English period followed by a space), and any
// closing quotes or brackets right after it belong to it. Scanned by hand, not by one
// regex over the line: a regex's greedy match over a line of many megabytes without
// punctuation exhausts the regex engine's stack.
const TERMINATORS = new Set([...'。！？；!?;']);
const ELLIPSIS = '…';
const CLOSERS = new Set([...'”’」』）)]》〉"\'']);
const SPACE = /\s/u;
/** How many characters a scan covers before it lets the caller hand the thread back. */
const SCAN_SLICE = 1 << 16;

/** "x." followed by whitespace ends an English sentence ("x": a letter, a digit or ")"). */
function endsEnglishSentence(line: string, dot: number, sentenceStart: number, sentenceEnd: number): boolean {
  if (dot - 1 < sentenceStart || dot + 1 >= sentenceEnd) return false;
  const before = line.charCodeAt(dot - 1);
  const isWordChar =
    (before >= 0x61 && before <= 0x7a) ||
    (before >= 0x41 && before <= 0x5a) ||
    (before >= 0x30 && before <= 0x39) ||
    before === 0x29;
  return isWordChar && SPACE.test(String.fromCodePoint(line.codePointAt(dot + 1) as number));
}

/**
 * The sentences of one line, lazily, in one pass (the pieces concatenate back to the
 * line). Yields `undefined` every SCAN_SLICE characters of a long sentence, so a caller
 * can hand the event loop back even inside one many-megabyte sentence.
 */
function* sentencesOf(line: string): Generator<string | undefined> {
  const length = line.length;
  let start = 0;
  let dot = line.indexOf('.');
  while (start < length) {
    // The end of the sentence that starts at `start`: the terminator run, then closers.
    let i = start;
    for (;;) {
      const stop = Math.min(length, i + SCAN_SLICE);
      while (i < stop) {
        const char = line[i] as string;
        if (TERMINATORS.has(char) || char === ELLIPSIS) break;
        i++;
      }
      if (i < stop || stop === length) break;
      yield undefined;
    }
    if (i < length) {
      if (line[i] === ELLIPSIS) while (i < length && line[i] === ELLIPSIS) i++;
      else while (i < length && TERMINATORS.has(line[i] as string)) i++;
    }
    while (i < length && CLOSERS.has(line[i] as string)) i++;
    const end = i;
    // English ends inside it (a split looks only inside the sentence, not past its end).
    let from = start;
    let dots = 0;
    while (dot !== -1 && dot < end) {
      if (endsEnglishSentence(line, dot, start, end)) {
        yield line.slice(from, dot + 1);
        from = dot + 1;
      } else if (++dots % SCAN_SLICE === 0) yield undefined;
      dot = line.indexOf('.', dot + 1);
    }
    if (from < end) yield line.slice(from, end);
    start = end;
  }
}

/** Splits one line into sentences (the pieces concatenate back to the line). */
export function splitSentences(line: string): string[] {
  const sentences: string[] = [];
  for (const sentence of sentencesOf(line)) if (sentence !== undefined) sentences.push(sentence);
  return sentences;
}

interface Unit {
  text: string;
  tokens: number;
  /** The unit ends a line: joining the next unit needs a newline, not nothing. */
  endsLine: boolean;
}

/**
 * Sentence units of a text block, lazily; a sentence over `limit` is cut into pieces that
 * fit, each cut found by one forward scan from where the last one ended (linear in the
 * block, however long a sentence or a line is).
 */
function* unitsOf(text: string, limit: number): Generator<Unit | undefined> {
  let lineStart = 0;
  while (lineStart <= text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    const lastLine = lineEnd === -1;
    if (lastLine) lineEnd = text.length;
    const line = text.slice(lineStart, lineEnd).trim();
    let pending: string | undefined;
    const emitSentence = function* (sentence: string, endsLine: boolean): Generator<Unit> {
      let at = 0;
      while (at < sentence.length) {
        // Unit token counts exclude the 2 special tokens; the chunk adds them once.
        const cut = cutWithinTokens(sentence, at, limit + 2);
        const piece = at === 0 && cut.end === sentence.length ? sentence : sentence.slice(at, cut.end);
        at = cut.end;
        yield { text: piece, tokens: cut.tokens - 2, endsLine: at >= sentence.length && endsLine };
      }
    };
    // One sentence of look-ahead: the last sentence of a line (not of the block) ends a line.
    for (const sentence of sentencesOf(line)) {
      if (sentence === undefined) {
        yield undefined; // a long scan: a point to hand the thread back
        continue;
      }
      if (pending !== undefined) yield* emitSentence(pending, false);
      pending = sentence;
    }
    if (pending !== undefined) yield* emitSentence(pending, !lastLine);
    if (lastLine) break;
    lineStart = lineEnd + 1;
  }
}

function joinUnits(units: Unit[]): string {
  let text = '';
  units.forEach((unit, i) => {
    text += unit.text;
    if (i < units.length - 1) text += unit.endsLine ? '\n' : '';
  });
  return text.trim();
}

/** Characters of text a single document may bring to the chunker (32 Mi). */
export const DEFAULT_MAX_DOCUMENT_CHARS = 32 * 1024 * 1024;

/** A document over the size limit: refused whole (reported per source, never retried). */
export class DocumentTooLargeError extends Error {
  override readonly name = 'DocumentTooLargeError';
}

export interface ChunkRunOptions {
  /** Refuse a document whose text (blocks and title together) is longer than this. */
  maxChars?: number;
  /** Names the document in a refusal (its source key). */
  name?: string;
}

function documentChars(document: Pick<ExtractedDocument, 'title' | 'blocks'>): number {
  let chars = document.title.length;
  for (const block of document.blocks) chars += block.text.length;
  return chars;
}

function assertDocumentSize(
  document: Pick<ExtractedDocument, 'title' | 'blocks'>,
  run: ChunkRunOptions,
): void {
  const maxChars = run.maxChars ?? DEFAULT_MAX_DOCUMENT_CHARS;
  const chars = documentChars(document);
  if (chars > maxChars) {
    throw new DocumentTooLargeError(
      `document ${run.name ?? JSON.stringify(document.title)} has ${chars} characters of text, over the ${maxChars}-character limit for one document (maxDocumentChars); split it into smaller files`,
    );
  }
}

/**
 * The chunker as a generator: yields `undefined` after every unit it places (a point where
 * the caller may hand the thread back), returns the chunks. Linear in the document.
 */
function* chunkSteps(
  document: Pick<ExtractedDocument, 'title' | 'blocks'>,
  options: ChunkingOptions,
): Generator<undefined, TextChunk[]> {
  const chunks: TextChunk[] = [];
  const path: Array<{ level: number; text: string }> = [];
  let current: Unit[] = [];
  let currentTokens = 0;

  // The heading line may take at most a quarter of the budget (long titles are cut). It
  // changes only at a heading, so it is computed once per heading, not once per chunk.
  const headingBudget = Math.max(8, Math.floor(options.targetTokens / 4));
  let cachedHeader: { text: string; tokens: number } | undefined;
  const header = () => {
    if (!cachedHeader) {
      const line = path.length > 0 ? path.map((h) => h.text).join(' > ') : document.title;
      const text = prefixWithinTokens(line, headingBudget).trim();
      cachedHeader = { text, tokens: text ? bgeM3TokenUpperBound(text) - 2 + 1 : 0 };
    }
    return cachedHeader;
  };

  const emit = () => {
    if (current.length === 0) return;
    const body = joinUnits(current);
    if (body) {
      const head = header().text;
      const content = head ? `${head}\n${body}` : body;
      chunks.push({
        index: chunks.length,
        content,
        headingPath: path.map((h) => h.text),
        tokens: bgeM3TokenUpperBound(content),
      });
    }
  };
  const flushSection = () => {
    emit();
    current = [];
    currentTokens = 0;
  };

  for (const block of document.blocks) {
    if (block.kind === 'heading') {
      flushSection();
      while (path.length > 0 && (path[path.length - 1] as { level: number }).level >= block.level) path.pop();
      path.push({ level: block.level, text: block.text });
      cachedHeader = undefined;
      yield;
      continue;
    }
    const budget = Math.min(options.targetTokens, options.maxTokens) - 2 - header().tokens;
    for (const unit of unitsOf(block.text, budget)) {
      if (unit === undefined) {
        yield;
        continue;
      }
      if (currentTokens + unit.tokens > budget && current.length > 0) {
        emit();
        // Overlap: the trailing whole sentences of the chunk just emitted, within budget.
        const carried: Unit[] = [];
        let carriedTokens = 0;
        for (let i = current.length - 1; i >= 0; i--) {
          const candidate = current[i] as Unit;
          if (carriedTokens + candidate.tokens > options.overlapTokens) break;
          if (carriedTokens + candidate.tokens + unit.tokens > budget) break;
          carried.unshift(candidate);
          carriedTokens += candidate.tokens;
        }
        current = carried;
        currentTokens = carriedTokens;
      }
      current.push(unit);
      currentTokens += unit.tokens;
      yield;
    }
    // A paragraph end is a line end for the next paragraph's first sentence.
    const last = current[current.length - 1];
    if (last) last.endsLine = true;
  }
  flushSection();
  return chunks;
}

/** Splits a document into chunks; deterministic for the same document and options. */
export function chunkDocument(
  document: Pick<ExtractedDocument, 'title' | 'blocks'>,
  options: ChunkingOptions = DEFAULT_CHUNKING,
  run: ChunkRunOptions = {},
): TextChunk[] {
  assertDocumentSize(document, run);
  const steps = chunkSteps(document, options);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

export interface AsyncChunkRunOptions extends ChunkRunOptions {
  /** Hand the event loop back after this many ms of work (default 10). */
  sliceMs?: number;
  /** Stops between slices (activity cancellation). */
  signal?: AbortSignal;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * chunkDocument for a worker: the same chunks, but the event loop gets the thread back
 * every few milliseconds (setImmediate), so heartbeats, queries and other activities on
 * the worker keep running while a large document is chunked.
 */
export async function chunkDocumentAsync(
  document: Pick<ExtractedDocument, 'title' | 'blocks'>,
  options: ChunkingOptions = DEFAULT_CHUNKING,
  run: AsyncChunkRunOptions = {},
): Promise<TextChunk[]> {
  assertDocumentSize(document, run);
  const sliceMs = run.sliceMs ?? 10;
  const steps = chunkSteps(document, options);
  let sliceStart = performance.now();
  let count = 0;
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
    // Reading the clock every step would cost more than a small step does.
    if (++count % 16 === 0 && performance.now() - sliceStart >= sliceMs) {
      await nextTurn();
      run.signal?.throwIfAborted();
      sliceStart = performance.now();
    }
  }
}
