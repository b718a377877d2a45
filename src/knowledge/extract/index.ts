import {
  type ExtractedDocument,
  formatOfKey,
  SourceContentError,
  type SourceFormat,
  titleFromKey,
} from '../document.js';
import { decodeText } from '../encoding.js';
import { htmlBlocks } from './html.js';
import { jsonlBlocks } from './jsonl.js';
import { markdownBlocks, plainTextBlocks } from './markdown.js';
import { pdfBlocks } from './pdf.js';

// One entry point: bytes + key in, title + blocks out. Throws UndecodableSourceError
// (encoding) or SourceContentError (format), both reported per source by the indexer.

export async function extractDocument(
  key: string,
  bytes: Uint8Array,
  format?: SourceFormat,
): Promise<ExtractedDocument> {
  const kind = format ?? formatOfKey(key);
  if (!kind) throw new SourceContentError('unsupported file type (extension)');
  const fallbackTitle = titleFromKey(key);
  if (kind === 'pdf') {
    const { blocks, title } = await pdfBlocks(bytes);
    return { title: title ?? fallbackTitle, format: kind, blocks };
  }
  const { text, encoding } = decodeText(bytes);
  switch (kind) {
    case 'markdown': {
      const { blocks, firstHeading } = markdownBlocks(text);
      return { title: firstHeading ?? fallbackTitle, format: kind, encoding, blocks };
    }
    case 'text':
      return { title: fallbackTitle, format: kind, encoding, blocks: plainTextBlocks(text) };
    case 'html': {
      const { blocks, title } = htmlBlocks(text);
      const firstHeading = blocks.find((b) => b.kind === 'heading')?.text;
      return { title: title ?? firstHeading ?? fallbackTitle, format: kind, encoding, blocks };
    }
    case 'jsonl':
      return { title: fallbackTitle, format: kind, encoding, blocks: jsonlBlocks(text) };
  }
}
