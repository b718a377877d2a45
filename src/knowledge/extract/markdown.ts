import type { Block } from '../document.js';

// Markdown and plain text into blocks. Only structure the chunker needs is read:
// ATX headings (outside fenced code), paragraphs (blank-line separated, lines kept), and
// inline markup reduced to its text so it does not waste tokens or split words.

const ATX_HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
const FENCE = /^ {0,3}(```|~~~)/;

function stripInline(line: string): string {
  return line
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\[([^\]]+)\]\([^)]*\)/g, '$1')
    .replace(/(\*\*|__)(.+?)\1/g, '$2')
    .replace(/`([^`]+)`/g, '$1');
}

export function markdownBlocks(text: string): { blocks: Block[]; firstHeading?: string } {
  const blocks: Block[] = [];
  let paragraph: string[] = [];
  let inFence = false;
  let firstHeading: string | undefined;
  const flush = () => {
    const body = paragraph.join('\n').trim();
    if (body) blocks.push({ kind: 'text', text: body });
    paragraph = [];
  };
  for (const rawLine of text.split(/\r\n|\r|\n/)) {
    if (FENCE.test(rawLine)) {
      inFence = !inFence;
      continue;
    }
    if (inFence) {
      paragraph.push(rawLine);
      continue;
    }
    const heading = ATX_HEADING.exec(rawLine);
    if (heading) {
      flush();
      const headingText = stripInline(heading[2] ?? '').trim();
      if (headingText) {
        blocks.push({ kind: 'heading', level: (heading[1] as string).length, text: headingText });
        firstHeading ??= headingText;
      }
      continue;
    }
    if (rawLine.trim() === '') {
      flush();
      continue;
    }
    paragraph.push(stripInline(rawLine.trimEnd()));
  }
  flush();
  return { blocks, firstHeading };
}

export function plainTextBlocks(text: string): Block[] {
  return text
    .split(/(?:\r\n|\r|\n)[ \t]*(?:\r\n|\r|\n)/)
    .map((p) => p.replace(/\r\n|\r/g, '\n').trim())
    .filter((p) => p.length > 0)
    .map((p) => ({ kind: 'text', text: p }) as Block);
}
