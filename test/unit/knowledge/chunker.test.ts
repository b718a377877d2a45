import { describe, expect, it } from 'vitest';
import { chunkingSchema } from '../../../src/domain/knowledge.js';
import { InputValidationError, parseInput } from '../../../src/domain/validation.js';
import { chunkDocument, splitSentences } from '../../../src/knowledge/chunker.js';
import { markdownBlocks } from '../../../src/knowledge/extract/markdown.js';
import { bgeM3TokenUpperBound } from '../../../src/knowledge/tokens.js';

const options = (o: Record<string, number>) => chunkingSchema.parse(o);

describe('splitSentences', () => {
  it('ends sentences at 。！？； and keeps closing quotes with them', () => {
    expect(splitSentences('今天下雨。他说：“明天呢？”好的！第一；第二')).toEqual([
      '今天下雨。',
      '他说：“明天呢？”',
      '好的！',
      '第一；',
      '第二',
    ]);
  });
  it('splits English at ". " and keeps the text whole', () => {
    const line = 'Submit the form. Then wait 3 days.';
    expect(splitSentences(line).join('')).toBe(line);
    expect(splitSentences(line)).toHaveLength(2);
  });
});

describe('chunkDocument', () => {
  const sentence = (i: number) => `第${i}条规定：员工应当遵守公司的各项规章制度并按时完成工作任务。`;

  it('never splits a sentence that fits, stays within the budget, and overlaps by whole sentences', () => {
    const text = Array.from({ length: 60 }, (_, i) => sentence(i)).join('');
    const chunks = chunkDocument(
      { title: '员工手册', blocks: [{ kind: 'text', text }] },
      options({ targetTokens: 128, overlapTokens: 40 }),
    );
    expect(chunks.length).toBeGreaterThan(5);
    for (const chunk of chunks) {
      expect(chunk.tokens).toBeLessThanOrEqual(128);
      const body = chunk.content.split('\n').slice(1).join('');
      // Every chunk body is a run of whole sentences.
      expect(body.endsWith('。')).toBe(true);
      expect(body.startsWith('第')).toBe(true);
    }
    // Overlap: the next chunk starts with the previous chunk's last sentence.
    const last = chunks[0]?.content.split('。').filter(Boolean).pop();
    expect(chunks[1]?.content).toContain(`${last}。`);
  });

  it('starts a new chunk at each heading and carries the heading path', () => {
    const { blocks } = markdownBlocks(
      '# 手册\n\n总则内容。\n\n## 年假\n\n年假五天。\n\n### 申请\n\n提前三天申请。\n\n## 报销\n\n三十天内报销。',
    );
    const chunks = chunkDocument({ title: '手册', blocks });
    expect(chunks.map((c) => c.headingPath)).toEqual([
      ['手册'],
      ['手册', '年假'],
      ['手册', '年假', '申请'],
      ['手册', '报销'],
    ]);
    expect(chunks[2]?.content).toBe('手册 > 年假 > 申请\n提前三天申请。');
    expect(chunks.map((c) => c.index)).toEqual([0, 1, 2, 3]);
  });

  it('cuts a single sentence only when it alone exceeds the budget, and every piece fits', () => {
    const huge = '无标点的超长句子'.repeat(400);
    const chunks = chunkDocument(
      { title: 't', blocks: [{ kind: 'text', text: `短句。${huge}。结尾。` }] },
      options({ targetTokens: 256, overlapTokens: 0 }),
    );
    expect(chunks.length).toBeGreaterThan(10);
    for (const chunk of chunks) expect(chunk.tokens).toBeLessThanOrEqual(256);
    expect(chunks.map((c) => c.content.split('\n')[1]).join('')).toBe(`短句。${huge}。结尾。`);
  });

  it('is deterministic', () => {
    const doc = {
      title: 'x',
      blocks: [{ kind: 'text' as const, text: Array.from({ length: 30 }, (_, i) => sentence(i)).join('\n') }],
    };
    expect(chunkDocument(doc)).toEqual(chunkDocument(doc));
  });

  it('keeps line boundaries as sentence boundaries', () => {
    const chunks = chunkDocument({
      title: 't',
      blocks: [{ kind: 'text', text: '第一行没有句号\n第二行也没有' }],
    });
    expect(chunks[0]?.content).toBe('t\n第一行没有句号\n第二行也没有');
  });

  it('refuses settings over the bge-m3 limit, naming the field', () => {
    expect(() => parseInput('chunking', chunkingSchema, { targetTokens: 9000 })).toThrow(
      InputValidationError,
    );
    expect(() => parseInput('chunking', chunkingSchema, { targetTokens: 9000 })).toThrow(
      /targetTokens: must be <= 8192/,
    );
    expect(() => parseInput('chunking', chunkingSchema, { targetTokens: 100, overlapTokens: 60 })).toThrow(
      /overlapTokens: must be less than half/,
    );
  });
});

describe('bgeM3TokenUpperBound', () => {
  it('counts CJK characters one each and Latin words by thirds, plus the two special tokens', () => {
    expect(bgeM3TokenUpperBound('')).toBe(2);
    expect(bgeM3TokenUpperBound('年假政策')).toBe(6);
    expect(bgeM3TokenUpperBound('abcdef')).toBe(4);
    expect(bgeM3TokenUpperBound('年假 policy 2024!')).toBe(2 + 2 + 2 + 4 + 1);
  });
});
