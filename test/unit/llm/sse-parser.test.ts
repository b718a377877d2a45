import { describe, expect, it } from 'vitest';
import { SseParser } from '../../../src/llm/openai/sse.js';

function feedAll(parts: Array<string | Uint8Array>): string[] {
  const parser = new SseParser();
  const events: string[] = [];
  for (const part of parts) events.push(...parser.push(part));
  events.push(...parser.end());
  return events;
}

describe('SseParser', () => {
  it('splits events on blank lines and ignores comment lines', () => {
    expect(feedAll([': keep-alive\n\ndata: {"a":1}\n\ndata: [DONE]\n\n'])).toEqual(['{"a":1}', '[DONE]']);
  });

  it('reassembles an event split across reads at every possible byte', () => {
    const stream = 'data: {"x":"你好"}\r\n\r\n: ping\r\n\r\ndata: [DONE]\r\n\r\n';
    const bytes = new TextEncoder().encode(stream);
    for (let cut = 1; cut < bytes.length; cut++) {
      expect(feedAll([bytes.slice(0, cut), bytes.slice(cut)])).toEqual(['{"x":"你好"}', '[DONE]']);
    }
    // One byte per read: CRLF and UTF-8 sequences both split.
    expect(feedAll([...bytes].map((b) => Uint8Array.of(b)))).toEqual(['{"x":"你好"}', '[DONE]']);
  });

  it('joins multi-line data with newlines and accepts data without the space', () => {
    expect(feedAll(['data:line1\ndata: line2\nevent: x\nid: 3\n\n'])).toEqual(['line1\nline2']);
  });

  it('drops an event the stream did not terminate', () => {
    expect(feedAll(['data: complete\n\ndata: cut'])).toEqual(['complete']);
  });
});
