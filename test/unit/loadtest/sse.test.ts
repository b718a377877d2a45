import { describe, expect, it } from 'vitest';
import { SseDecoder } from '../../../src/llm/openai/sse.js';

function decode(pieces: Uint8Array[]) {
  const data: string[] = [];
  const comments: string[] = [];
  const malformed: string[] = [];
  const decoder = new SseDecoder({
    onData: (d) => data.push(d),
    onComment: (c) => comments.push(c),
    onMalformed: (m) => malformed.push(m),
  });
  for (const piece of pieces) decoder.push(piece);
  decoder.end();
  return { data, comments, malformed };
}

const chunk = (content: string) =>
  `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content } }] })}\n\n`;

// Tokens with leading/trailing spaces, multi-byte Chinese and an emoji (4 bytes in UTF-8).
const STREAM =
  ': keep-alive\n\n' +
  chunk('你好') +
  chunk(' world') +
  chunk('  two spaces ') +
  ': ping\r\n\r\n' +
  chunk('😀 emoji') +
  `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 4 } })}\n\n` +
  'data: [DONE]\n\n';

const contents = (data: string[]) =>
  data
    .filter((d) => d !== '[DONE]')
    .flatMap((d) => (JSON.parse(d).choices as { delta: { content: string } }[]).map((c) => c.delta.content));

describe('SseDecoder', () => {
  it('yields the same events and exact text wherever the byte stream is split', () => {
    const bytes = new TextEncoder().encode(STREAM);
    const whole = decode([bytes]);
    expect(contents(whole.data)).toEqual(['你好', ' world', '  two spaces ', '😀 emoji']);
    expect(whole.data.at(-1)).toBe('[DONE]');
    expect(whole.comments).toEqual(['keep-alive', 'ping']);
    expect(whole.malformed).toEqual([]);
    // Every single split point, including inside multi-byte characters and between \r and \n.
    for (let cut = 1; cut < bytes.length; cut++) {
      const split = decode([bytes.subarray(0, cut), bytes.subarray(cut)]);
      expect(split.data, `split at byte ${cut}`).toEqual(whole.data);
      expect(split.comments).toEqual(whole.comments);
    }
    // One byte per read.
    const single = decode(Array.from(bytes, (b) => Uint8Array.of(b)));
    expect(single.data).toEqual(whole.data);
  });

  it('accepts CRLF and CR line endings and joins multi-line data with newlines', () => {
    const text = 'data: first\r\ndata: second\r\n\r\ndata: third\r\rdata:no-space\n\n';
    expect(decode([new TextEncoder().encode(text)]).data).toEqual(['first\nsecond', 'third', 'no-space']);
  });

  it('strips exactly one space after "data:" as the SSE spec says', () => {
    expect(decode([new TextEncoder().encode('data:   x\n\n')]).data).toEqual(['  x']);
  });

  it('reports lines that are not SSE (raw JSON, HTML) as malformed and stops', () => {
    const raw = decode([
      new TextEncoder().encode('{"choices":[{"delta":{"content":"x"}}]}\n\ndata: late\n\n'),
    ]);
    expect(raw.malformed).toHaveLength(1);
    expect(raw.malformed[0]).toMatch(/not an SSE line: "\{\\"choices\\"/);
    expect(raw.data).toEqual([]);
    const html = decode([new TextEncoder().encode('<html><body>502 Bad Gateway</body></html>\n')]);
    expect(html.malformed[0]).toMatch(/not an SSE line: "<html>/);
  });

  it('drops an unterminated event at the end of the body', () => {
    expect(decode([new TextEncoder().encode('data: complete\n\ndata: cut off')]).data).toEqual(['complete']);
  });
});
