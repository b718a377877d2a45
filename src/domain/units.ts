/** "15.4 GB", "256.0 KB": decimal units, as hubs and GPU specs quote sizes. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * `text` cut to at most `maxBytes` of UTF-8 (whole characters only), with "…" when cut.
 * Temporal limits a search attribute value in bytes, and a reason can carry Chinese text
 * or a log tail: a value over the limit fails the workflow task, so it must never happen.
 */
export function clipUtf8(text: string, maxBytes: number): string {
  const size = (cp: number) => (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
  let total = 0;
  for (const char of text) total += size(char.codePointAt(0) as number);
  if (total <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const n = size(char.codePointAt(0) as number);
    if (bytes + n > maxBytes - 3) break; // "…" is 3 bytes
    bytes += n;
    end += char.length;
  }
  return `${text.slice(0, end)}…`;
}
