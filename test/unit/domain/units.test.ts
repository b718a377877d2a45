import { describe, expect, it } from 'vitest';
import { clipUtf8 } from '../../../src/domain/units.js';

describe('clipUtf8', () => {
  const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

  it('leaves text that fits alone, and cuts longer text to the byte limit on a character boundary', () => {
    expect(clipUtf8('abc', 3)).toBe('abc');
    const chinese = '年假'.repeat(400); // 2400 bytes
    const clipped = clipUtf8(chinese, 2048);
    expect(bytes(clipped)).toBeLessThanOrEqual(2048);
    expect(clipped.endsWith('…')).toBe(true);
    expect(clipped.slice(0, -1)).toBe(chinese.slice(0, clipped.length - 1));
    const emoji = `${'x'.repeat(2044)}😀😀`;
    expect(bytes(clipUtf8(emoji, 2048))).toBeLessThanOrEqual(2048);
    expect(clipUtf8(emoji, 2048)).not.toContain('\uFFFD');
  });
});
