import chardet from 'chardet';

// Turns a source file's bytes into text. Supported: UTF-8 (with or without BOM), UTF-16
// LE/BE with a BOM, and GB18030 (a superset of GBK and GB2312, what Chinese Windows tools
// write). Anything else is refused with a reason naming what it looks like: a file is
// reported, never silently dropped or indexed as mojibake.

export type TextEncoding = 'utf-8' | 'utf-16le' | 'utf-16be' | 'gb18030';

export interface DecodedText {
  text: string;
  encoding: TextEncoding;
  /** True when a byte-order mark announced the encoding. */
  bom: boolean;
}

export class UndecodableSourceError extends Error {
  override readonly name = 'UndecodableSourceError';
}

function decodeStrict(bytes: Uint8Array, encoding: TextEncoding): string | undefined {
  try {
    return new TextDecoder(encoding, { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function hasNul(bytes: Uint8Array): boolean {
  return bytes.indexOf(0) !== -1;
}

/** Most non-ASCII characters are CJK ideographs or CJK punctuation: plausible Chinese text. */
function looksChinese(text: string): boolean {
  let nonAscii = 0;
  let cjk = 0;
  for (const char of text) {
    const code = char.codePointAt(0) as number;
    if (code < 0x80) continue;
    nonAscii++;
    if (
      (code >= 0x4e00 && code <= 0x9fff) ||
      (code >= 0x3000 && code <= 0x303f) ||
      (code >= 0xff00 && code <= 0xffef)
    ) {
      cjk++;
    }
  }
  return nonAscii > 0 && cjk / nonAscii >= 0.8;
}

export function decodeText(bytes: Uint8Array): DecodedText {
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    const text = decodeStrict(bytes.subarray(3), 'utf-8');
    if (text === undefined)
      throw new UndecodableSourceError('has a UTF-8 byte-order mark but invalid UTF-8 bytes');
    return { text, encoding: 'utf-8', bom: true };
  }
  if (
    bytes.length >= 2 &&
    ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
  ) {
    const encoding = bytes[0] === 0xff ? 'utf-16le' : 'utf-16be';
    const text = decodeStrict(bytes.subarray(2), encoding);
    if (text === undefined)
      throw new UndecodableSourceError(
        `has a ${encoding.toUpperCase()} byte-order mark but invalid ${encoding.toUpperCase()} data`,
      );
    return { text, encoding, bom: true };
  }
  if (hasNul(bytes)) {
    throw new UndecodableSourceError(
      'contains NUL bytes: binary data, or UTF-16 without a byte-order mark (not supported)',
    );
  }
  const utf8 = decodeStrict(bytes, 'utf-8');
  if (utf8 !== undefined) return { text: utf8, encoding: 'utf-8', bom: false };
  const candidates = chardet.analyse(bytes);
  const top = candidates[0];
  const gb = decodeStrict(bytes, 'gb18030');
  if (gb !== undefined && (top?.name === 'GB18030' || looksChinese(gb))) {
    return { text: gb, encoding: 'gb18030', bom: false };
  }
  const guess = top ? ` (it looks like ${top.name}, confidence ${top.confidence}%)` : '';
  throw new UndecodableSourceError(
    `is not valid UTF-8, UTF-16 with a byte-order mark, or GB18030/GBK${guess}`,
  );
}
