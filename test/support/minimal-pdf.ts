// Writes a small, valid PDF whose text layer holds the given lines (any Unicode, Chinese
// included): a Type0 font with Identity-H encoding and a ToUnicode CMap, the font itself
// not embedded (text extraction needs only the CMap). Used to make PDF fixtures and the
// bundled sample's PDF without a binary tool.

function utf16Hex(text: string): string {
  return Buffer.from(text, 'utf16le').swap16().toString('hex').toUpperCase();
}

export function minimalPdf(pages: string[][], title?: string): Buffer {
  const cids = new Map<string, number>();
  for (const lines of pages)
    for (const line of lines) for (const char of line) if (!cids.has(char)) cids.set(char, cids.size + 1);
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  const entries = [...cids.entries()];
  let bfchars = '';
  for (let i = 0; i < entries.length; i += 100) {
    const slice = entries.slice(i, i + 100);
    bfchars += `${slice.length} beginbfchar\n${slice.map(([char, cid]) => `<${hex(cid)}> <${utf16Hex(char)}>`).join('\n')}\nendbfchar\n`;
  }
  const cmap = `/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n${bfchars}endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n`;
  const objects: string[] = [];
  const pageCount = pages.length;
  // 1 catalog, 2 pages, 3 font, 4 descendant, 5 descriptor, 6 tounicode, 7 info, then page/content pairs.
  const firstPage = 8;
  const kids = pages.map((_, i) => `${firstPage + i * 2} 0 R`).join(' ');
  objects[1] = '<< /Type /Catalog /Pages 2 0 R >>';
  objects[2] = `<< /Type /Pages /Kids [${kids}] /Count ${pageCount} >>`;
  objects[3] =
    '<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /Identity-H /DescendantFonts [4 0 R] /ToUnicode 6 0 R >>';
  objects[4] =
    '<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor 5 0 R /DW 1000 >>';
  objects[5] =
    '<< /Type /FontDescriptor /FontName /STSong-Light /Flags 4 /FontBBox [0 -200 1000 900] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >>';
  objects[6] = `<< /Length ${Buffer.byteLength(cmap)} >>\nstream\n${cmap}endstream`;
  objects[7] = title
    ? `<< /Title <FEFF${utf16Hex(title)}> /Producer (qwenops test fixture) >>`
    : '<< /Producer (qwenops test fixture) >>';
  pages.forEach((lines, i) => {
    const content = lines
      .map(
        (line, n) =>
          `BT /F1 12 Tf 40 ${800 - n * 18} Td <${[...line].map((c) => hex(cids.get(c) as number)).join('')}> Tj ET`,
      )
      .join('\n');
    objects[firstPage + i * 2] =
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents ${firstPage + i * 2 + 1} 0 R >>`;
    objects[firstPage + i * 2 + 1] =
      `<< /Length ${Buffer.byteLength(content)} >>\nstream\n${content}\nendstream`;
  });
  let body = '%PDF-1.4\n%\xE2\xE3\xCF\xD3\n';
  const offsets: number[] = [];
  for (let n = 1; n < objects.length; n++) {
    offsets[n] = Buffer.byteLength(body, 'latin1');
    body += `${n} 0 obj\n${objects[n]}\nendobj\n`;
  }
  const xrefAt = Buffer.byteLength(body, 'latin1');
  body += `xref\n0 ${objects.length}\n0000000000 65535 f \n`;
  for (let n = 1; n < objects.length; n++) body += `${String(offsets[n]).padStart(10, '0')} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length} /Root 1 0 R /Info 7 0 R >>\nstartxref\n${xrefAt}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}
