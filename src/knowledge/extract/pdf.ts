import { createRequire } from 'node:module';
import path from 'node:path';
import { type Block, SourceContentError } from '../document.js';

// The text layer of a PDF, page by page, with Mozilla's pdf.js. Scanned PDFs have no text
// layer: they come back with no blocks (and so no chunks), which the report shows as a
// document with zero chunks rather than an error. pdf.js is loaded on first use: it is
// large and most corpora have no PDF.

type PdfJs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');
let pdfjs: Promise<PdfJs> | undefined;

const require = createRequire(import.meta.url);
const pdfjsRoot = path.dirname(require.resolve('pdfjs-dist/package.json'));

export async function pdfBlocks(bytes: Uint8Array): Promise<{ blocks: Block[]; title?: string }> {
  pdfjs ??= import('pdfjs-dist/legacy/build/pdf.mjs');
  const { getDocument, VerbosityLevel } = await pdfjs;
  const task = getDocument({
    // pdf.js takes ownership of (detaches) the buffer it is given: hand it a copy.
    data: new Uint8Array(bytes),
    // Predefined CJK CMaps (UniGB-UCS2-H...) ship with the package; read them from disk.
    cMapUrl: `${path.join(pdfjsRoot, 'cmaps')}/`,
    cMapPacked: true,
    standardFontDataUrl: `${path.join(pdfjsRoot, 'standard_fonts')}/`,
    isEvalSupported: false,
    disableFontFace: true,
    useSystemFonts: false,
    verbosity: VerbosityLevel.ERRORS,
  });
  let document: Awaited<typeof task.promise>;
  try {
    document = await task.promise;
  } catch (err) {
    throw new SourceContentError(`not a readable PDF (${(err as Error).message})`);
  }
  try {
    const blocks: Block[] = [];
    for (let pageNumber = 1; pageNumber <= document.numPages; pageNumber++) {
      const page = await document.getPage(pageNumber);
      const content = await page.getTextContent();
      let text = '';
      for (const item of content.items) {
        if (!('str' in item)) continue;
        text += item.str;
        if (item.hasEOL) text += '\n';
      }
      page.cleanup();
      for (const paragraph of text.split(/\n[ \t]*\n/)) {
        const body = paragraph.trim();
        if (body) blocks.push({ kind: 'text', text: body });
      }
    }
    const info = (await document.getMetadata().catch(() => undefined))?.info as
      | { Title?: unknown }
      | undefined;
    const title = typeof info?.Title === 'string' && info.Title.trim() ? info.Title.trim() : undefined;
    return { blocks, title };
  } finally {
    await document.destroy();
  }
}
