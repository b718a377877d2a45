import { type Block, SourceContentError } from '../document.js';

// JSON Lines: one record per line. A record's text is its "text", "content" or "body"
// field, or a question/answer pair; its heading is "title" or the question. A line that
// is not a JSON object with text fails the whole source, naming the line: indexing the
// rest silently would lose records without anyone noticing.

const TEXT_FIELDS = ['text', 'content', 'body', 'answer'] as const;

export function jsonlBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split(/\r\n|\r|\n/);
  lines.forEach((line, index) => {
    if (line.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw new SourceContentError(`line ${index + 1}: invalid JSON (${(err as Error).message})`);
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record)) {
      throw new SourceContentError(`line ${index + 1}: expected a JSON object`);
    }
    const fields = record as Record<string, unknown>;
    const body = TEXT_FIELDS.map((f) => fields[f]).find(
      (v): v is string => typeof v === 'string' && v.trim() !== '',
    );
    if (body === undefined) {
      throw new SourceContentError(`line ${index + 1}: no text field (one of ${TEXT_FIELDS.join(', ')})`);
    }
    const heading = [fields.title, fields.question].find(
      (v): v is string => typeof v === 'string' && v.trim() !== '',
    );
    if (heading) blocks.push({ kind: 'heading', level: 2, text: heading.trim() });
    blocks.push({ kind: 'text', text: body.trim() });
  });
  return blocks;
}
