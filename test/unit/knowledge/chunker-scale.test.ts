import { describe, expect, it } from 'vitest';
import {
  chunkDocument,
  chunkDocumentAsync,
  DocumentTooLargeError,
  type TextChunk,
} from '../../../src/knowledge/chunker.js';
import { markdownBlocks } from '../../../src/knowledge/extract/markdown.js';
import { bgeM3TokenUpperBound, prefixWithinTokens } from '../../../src/knowledge/tokens.js';

// One large single-line knowledge file (issue 9): chunking must be linear in the document
// and must hand the event loop back while it works (it runs in an activity worker that has
// to keep heartbeating and answering queries). Ratios only: no wall-clock thresholds.

const SENTENCE_FREE = '员工应当遵守公司的各项规章制度并按时完成工作任务 and follow the rules carefully ';

/** A single line of about `mb` megabytes (UTF-8) with no sentence end at all. */
function singleLine(mb: number): string {
  const bytes = mb * 1024 * 1024;
  return SENTENCE_FREE.repeat(Math.ceil(bytes / Buffer.byteLength(SENTENCE_FREE)));
}

const doc = (text: string) => ({ title: 'big', blocks: [{ kind: 'text' as const, text }] });
const unlimited = { maxChars: Number.MAX_SAFE_INTEGER };

function timed(fn: () => TextChunk[]): { ms: number; chunks: TextChunk[] } {
  const started = performance.now();
  const chunks = fn();
  return { ms: performance.now() - started, chunks };
}

describe('chunking large documents', () => {
  it('is linear: a 20 MB single line takes about 10x a 2 MB one', () => {
    const small = singleLine(2);
    const large = singleLine(20);
    chunkDocument(doc(small), undefined, unlimited); // warm up
    const best = (text: string, runs: number) => {
      let result = timed(() => chunkDocument(doc(text), undefined, unlimited));
      for (let i = 1; i < runs; i++) {
        const again = timed(() => chunkDocument(doc(text), undefined, unlimited));
        if (again.ms < result.ms) result = again;
      }
      return result;
    };
    const a = best(small, 3);
    const b = best(large, 2);
    // Quadratic (rescanning the remainder per piece) would be ~100x.
    expect(b.ms / a.ms).toBeLessThan(25);
    // Every piece fits the budget and the pieces give the line back whole (chunk bodies
    // are trimmed, so compare without whitespace).
    for (const chunk of b.chunks) expect(chunk.tokens).toBeLessThanOrEqual(512);
    const squeeze = (s: string) => s.replace(/\s+/g, '');
    expect(squeeze(b.chunks.map((c) => c.content.slice('big\n'.length)).join(''))).toBe(squeeze(large));
  });

  it('keeps the event loop responsive while chunking 20 MB (async variant)', async () => {
    const text = singleLine(20);
    const expected = chunkDocument(doc(text), undefined, unlimited);
    // A turn of the event loop that other work (queries, heartbeats) would get: counted by a
    // self-rescheduling setImmediate. Counting turns, not measuring gaps, keeps this exact on
    // a busy machine, where any gap can stretch.
    let turns = 0;
    let running = true;
    const spin = () => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const chunks = await chunkDocumentAsync(doc(text), undefined, unlimited);
    running = false;
    expect(chunks).toEqual(expected);
    // A 20 MB line is hundreds of slices: the loop got many turns while the chunker worked
    // (a synchronous chunker gives it none).
    expect(turns).toBeGreaterThanOrEqual(10);
  });

  it('refuses a document over the size limit, naming it and the limit', async () => {
    const text = 'x'.repeat(1000);
    expect(() => chunkDocument(doc(text), undefined, { maxChars: 500, name: 'manuals/huge.md' })).toThrow(
      DocumentTooLargeError,
    );
    await expect(
      chunkDocumentAsync(doc(text), undefined, { maxChars: 500, name: 'manuals/huge.md' }),
    ).rejects.toThrow(/document manuals\/huge\.md has 1003 characters of text, over the 500-character limit/);
  });

  it('stops between slices when the activity is cancelled', async () => {
    const controller = new AbortController();
    controller.abort(new Error('cancelled'));
    await expect(
      chunkDocumentAsync(doc(singleLine(2)), undefined, {
        ...unlimited,
        signal: controller.signal,
        sliceMs: 0,
      }),
    ).rejects.toThrow('cancelled');
  });

  it('cuts a long heading or sentence by scanning only the prefix it keeps', () => {
    const huge = 'a'.repeat(5_000_000);
    expect(prefixWithinTokens(huge, 10)).toBe('a'.repeat(24));
    expect(bgeM3TokenUpperBound(prefixWithinTokens(huge, 10))).toBe(10);
    expect(prefixWithinTokens('中文', 1)).toBe('中');
  });

  it('extracts a hostile single markdown line in linear time (unclosed links and emphasis)', () => {
    for (const unit of ['[a', '![a](', '**a\u2028', '__x']) {
      const small = unit.repeat(Math.ceil(500_000 / unit.length));
      const large = unit.repeat(Math.ceil(5_000_000 / unit.length));
      const once = (line: string) => {
        const started = performance.now();
        markdownBlocks(line);
        return performance.now() - started;
      };
      once(small); // warm up
      // Small and large alternate, so both see the same host load; the best of each counts.
      let bestSmall = Number.POSITIVE_INFINITY;
      let bestLarge = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 4; i++) {
        bestSmall = Math.min(bestSmall, once(small));
        bestLarge = Math.min(bestLarge, once(large));
      }
      // 10x the text: ~10x the time (bound loose: small timings are noisy); the old regexes (rescanning to the line end from
      // every unclosed "[") took minutes here.
      expect(bestLarge / Math.max(bestSmall, 2)).toBeLessThan(40);
    }
    expect(
      markdownBlocks('see [the docs](http://x/y) and ![logo](l.png), **bold** __too__ `code`').blocks,
    ).toEqual([{ kind: 'text', text: 'see the docs and logo, bold too code' }]);
  });
});
