import path from 'node:path';
import type { TextEncoding } from './encoding.js';

// What extractors produce and the chunker consumes: a title and a flat list of blocks,
// headings kept apart from text so chunks can carry their heading path.

export const SOURCE_FORMATS = ['markdown', 'text', 'html', 'jsonl', 'pdf'] as const;
export type SourceFormat = (typeof SOURCE_FORMATS)[number];

export type Block = { kind: 'heading'; level: number; text: string } | { kind: 'text'; text: string };

export interface ExtractedDocument {
  title: string;
  format: SourceFormat;
  /** The detected text encoding; absent for PDF (its text layer is Unicode already). */
  encoding?: TextEncoding;
  blocks: Block[];
}

const EXTENSIONS: Record<string, SourceFormat> = {
  '.md': 'markdown',
  '.markdown': 'markdown',
  '.txt': 'text',
  '.text': 'text',
  '.html': 'html',
  '.htm': 'html',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.pdf': 'pdf',
};

/** The format a source key's extension names, or undefined when it is not one we index. */
export function formatOfKey(key: string): SourceFormat | undefined {
  return EXTENSIONS[path.posix.extname(key).toLowerCase()];
}

/** A readable fallback title: the file name without its extension. */
export function titleFromKey(key: string): string {
  const base = path.posix.basename(key);
  return base.slice(0, base.length - path.posix.extname(base).length) || base;
}

/** Errors about one source's content (bad JSON line, broken PDF, bad encoding). */
export class SourceContentError extends Error {
  override readonly name = 'SourceContentError';
}
