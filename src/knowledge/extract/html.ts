import { Parser } from 'htmlparser2';
import type { Block } from '../document.js';

// HTML into blocks with htmlparser2: <h1>..<h6> become headings, block elements end a
// paragraph, <br> ends a line, script/style/template content is dropped, entities are
// decoded, and whitespace collapses as a browser would render it (except inside <pre>).

const SKIP = new Set(['script', 'style', 'noscript', 'template', 'svg', 'head']);
const BLOCK = new Set([
  'p',
  'div',
  'section',
  'article',
  'main',
  'header',
  'footer',
  'aside',
  'nav',
  'li',
  'ul',
  'ol',
  'dl',
  'dt',
  'dd',
  'table',
  'tr',
  'thead',
  'tbody',
  'blockquote',
  'pre',
  'figure',
  'figcaption',
  'form',
  'fieldset',
  'address',
  'hr',
  'body',
  'html',
]);
const HEADING = /^h([1-6])$/;

export function htmlBlocks(html: string): { blocks: Block[]; title?: string } {
  const blocks: Block[] = [];
  let skipDepth = 0;
  let preDepth = 0;
  let inTitle = false;
  let title = '';
  let heading: { level: number; text: string } | undefined;
  let lines: string[] = [];
  let line = '';
  const endLine = () => {
    const trimmed = line.replace(/[ \t]+/g, ' ').trim();
    if (trimmed) lines.push(trimmed);
    line = '';
  };
  const endParagraph = () => {
    endLine();
    if (lines.length > 0) blocks.push({ kind: 'text', text: lines.join('\n') });
    lines = [];
  };
  const parser = new Parser(
    {
      onopentag(name) {
        if (name === 'title') inTitle = true;
        if (SKIP.has(name)) {
          skipDepth++;
          return;
        }
        if (skipDepth > 0) return;
        const h = HEADING.exec(name);
        if (h) {
          endParagraph();
          heading = { level: Number(h[1]), text: '' };
        } else if (name === 'br') {
          endLine();
        } else if (BLOCK.has(name)) {
          endParagraph();
          if (name === 'pre') preDepth++;
        } else if (name === 'td' || name === 'th') {
          line += ' ';
        }
      },
      ontext(text) {
        if (inTitle) title += text;
        if (skipDepth > 0) return;
        if (heading) {
          heading.text += text;
        } else if (preDepth > 0) {
          const parts = text.split('\n');
          parts.forEach((part, i) => {
            if (i > 0) endLine();
            line += part;
          });
        } else {
          line += text.replace(/\s+/g, ' ');
        }
      },
      onclosetag(name) {
        if (name === 'title') inTitle = false;
        if (SKIP.has(name)) {
          skipDepth = Math.max(0, skipDepth - 1);
          return;
        }
        if (skipDepth > 0) return;
        if (heading && HEADING.test(name)) {
          const text = heading.text.replace(/\s+/g, ' ').trim();
          if (text) blocks.push({ kind: 'heading', level: heading.level, text });
          heading = undefined;
        } else if (BLOCK.has(name)) {
          endParagraph();
          if (name === 'pre') preDepth = Math.max(0, preDepth - 1);
        }
      },
    },
    { decodeEntities: true, lowerCaseTags: true },
  );
  parser.write(html);
  parser.end();
  endParagraph();
  const cleanTitle = title.replace(/\s+/g, ' ').trim();
  return { blocks, title: cleanTitle || undefined };
}
