import type { Block } from '../document.js';

// Markdown and plain text into blocks. Only structure the chunker needs is read:
// ATX headings (outside fenced code), paragraphs (blank-line separated, lines kept), and
// inline markup reduced to its text so it does not waste tokens or split words.

const ATX_HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
const FENCE = /^ {0,3}(```|~~~)/;

/**
 * First index of `needle` at or after a position, for positions that only grow: each call
 * reuses the last answer while it is still ahead, so a whole line costs one scan per needle
 * (searching afresh from every candidate is quadratic on a hostile line like "[[[[...").
 */
function forwardFinder(line: string, needle: string): (from: number) => number {
  let found = -2;
  let searchedFrom = -1;
  return (from) => {
    if (found === -1 && searchedFrom <= from) return -1;
    if (found < from) {
      found = line.indexOf(needle, from);
      searchedFrom = from;
    }
    return found;
  };
}

/**
 * What `line.replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')` (image) or, without the "!",
 * `/\[([^\]]+)\]\([^)]*\)/g` (link) does, in linear time.
 */
function stripLinks(line: string, image: boolean): string {
  const opener = image ? '![' : '[';
  const nextOpener = forwardFinder(line, opener);
  const nextClose = forwardFinder(line, ']');
  const nextParen = forwardFinder(line, ')');
  let out = '';
  let last = 0;
  let p = 0;
  for (;;) {
    p = nextOpener(p);
    if (p === -1) break;
    const textStart = p + opener.length;
    const close = nextClose(textStart);
    if (close === -1) break; // no "]" ahead: no later match either
    if ((!image && close === textStart) || line[close + 1] !== '(') {
      p++;
      continue;
    }
    const paren = nextParen(close + 2);
    if (paren === -1) break; // later matches would need a ")" even further on
    out += line.slice(last, p) + line.slice(textStart, close);
    last = paren + 1;
    p = paren + 1;
  }
  return last === 0 ? line : out + line.slice(last);
}

const LINE_TERMINATORS = ['\n', '\r', '\u2028', '\u2029'];

/** What `line.replace(/(\*\*|__)(.+?)\1/g, '$2')` does, in linear time. */
function stripEmphasis(line: string): string {
  const next = { '**': forwardFinder(line, '**'), __: forwardFinder(line, '__') };
  const terminators = LINE_TERMINATORS.map((t) => forwardFinder(line, t));
  const nextTerminator = (from: number) =>
    terminators.reduce((min, find) => {
      const at = find(from);
      return at !== -1 && at < min ? at : min;
    }, Number.POSITIVE_INFINITY);
  let out = '';
  let last = 0;
  let p = 0;
  for (;;) {
    const star = next['**'](p);
    const under = next.__(p);
    if (star === -1 && under === -1) break;
    p = star === -1 ? under : under === -1 ? star : Math.min(star, under);
    const delimiter = p === star ? '**' : '__';
    // ".+?": at least one character, none a line terminator, up to the first closing delimiter.
    const closing = next[delimiter](p + 3);
    if (closing === -1 || nextTerminator(p + 2) < closing) {
      p++;
      continue;
    }
    out += line.slice(last, p) + line.slice(p + 2, closing);
    last = closing + 2;
    p = closing + 2;
  }
  return last === 0 ? line : out + line.slice(last);
}

function stripInline(line: string): string {
  // `([^`]+)`: a failed attempt stops at the next backtick, so the regex is linear already.
  return stripEmphasis(stripLinks(stripLinks(line, true), false)).replace(/`([^`]+)`/g, '$1');
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
