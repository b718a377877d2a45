import { type ChunkingOptions, chunkingSchema } from '../domain/knowledge.js';
import type { Block, ExtractedDocument } from './document.js';
import { estimateTokens, prefixWithinTokens } from './tokens.js';

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
// closing quotes or brackets right after it belong to it.
const SENTENCE = /[^。！？；!?;…]*(?:[。！？；!?;]+|…+|$)[”’」』）)\]》〉"']*/gu;

/** Splits one line into sentences (the pieces concatenate back to the line). */
export function splitSentences(line: string): string[] {
  const pieces: string[] = [];
  for (const match of line.matchAll(SENTENCE)) {
    if (match[0]) pieces.push(match[0]);
  }
  // English: also end a sentence at ". " (the Chinese punctuation above has no spaces).
  return pieces.flatMap((piece) => piece.split(/(?<=[a-zA-Z0-9)][.](?=\s))/u)).filter((p) => p.length > 0);
}

interface Unit {
  text: string;
  tokens: number;
  /** The unit ends a line: joining the next unit needs a newline, not nothing. */
  endsLine: boolean;
}

/** Sentence units of a text block; a sentence over `limit` is cut into pieces that fit. */
function unitsOf(text: string, limit: number): Unit[] {
  const units: Unit[] = [];
  const lines = text.split('\n');
  lines.forEach((line, lineIndex) => {
    const sentences = splitSentences(line.trim());
    sentences.forEach((sentence, i) => {
      const endsLine = i === sentences.length - 1 && lineIndex < lines.length - 1;
      let rest = sentence;
      while (rest.length > 0) {
        // Unit token counts exclude the 2 special tokens; the chunk adds them once.
        const piece = prefixWithinTokens(rest, limit + 2);
        rest = rest.slice(piece.length);
        units.push({
          text: piece,
          tokens: estimateTokens(piece) - 2,
          endsLine: rest.length === 0 && endsLine,
        });
      }
    });
  });
  return units;
}

function joinUnits(units: Unit[]): string {
  let text = '';
  units.forEach((unit, i) => {
    text += unit.text;
    if (i < units.length - 1) text += unit.endsLine ? '\n' : '';
  });
  return text.trim();
}

/** Splits a document into chunks; deterministic for the same document and options. */
export function chunkDocument(
  document: Pick<ExtractedDocument, 'title' | 'blocks'>,
  options: ChunkingOptions = DEFAULT_CHUNKING,
): TextChunk[] {
  const chunks: TextChunk[] = [];
  const path: Array<{ level: number; text: string }> = [];
  let current: Unit[] = [];
  let currentTokens = 0;

  const headingLine = () => (path.length > 0 ? path.map((h) => h.text).join(' > ') : document.title);
  // The heading line may take at most a quarter of the budget (long titles are cut).
  const headingBudget = () => Math.max(8, Math.floor(options.targetTokens / 4));
  const header = () => prefixWithinTokens(headingLine(), headingBudget()).trim();
  const headerTokens = () => (header() ? estimateTokens(header()) - 2 + 1 : 0);

  const emit = () => {
    if (current.length === 0) return;
    const body = joinUnits(current);
    if (body) {
      const head = header();
      const content = head ? `${head}\n${body}` : body;
      chunks.push({
        index: chunks.length,
        content,
        headingPath: path.map((h) => h.text),
        tokens: estimateTokens(content),
      });
    }
  };
  const flushSection = () => {
    emit();
    current = [];
    currentTokens = 0;
  };

  const addBlock = (block: Block) => {
    if (block.kind === 'heading') {
      flushSection();
      while (path.length > 0 && (path[path.length - 1] as { level: number }).level >= block.level) path.pop();
      path.push({ level: block.level, text: block.text });
      return;
    }
    const budget = Math.min(options.targetTokens, options.maxTokens) - 2 - headerTokens();
    for (const unit of unitsOf(block.text, budget)) {
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
    }
    // A paragraph end is a line end for the next paragraph's first sentence.
    const last = current[current.length - 1];
    if (last) last.endsLine = true;
  };

  for (const block of document.blocks) addBlock(block);
  flushSection();
  return chunks;
}
