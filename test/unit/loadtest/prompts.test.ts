import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputValidationError } from '../../../src/domain/validation.js';
import {
  BUILTIN_ZH_PROMPTS,
  loadPrompts,
  parsePromptJsonl,
  promptChars,
  syntheticPrompts,
} from '../../../src/loadtest/prompts/index.js';

const CJK = /[\u4e00-\u9fff]/;

describe('built-in Chinese dialogue set', () => {
  it('is Chinese, varied in length, with multi-turn and system prompts', () => {
    expect(BUILTIN_ZH_PROMPTS.length).toBeGreaterThanOrEqual(30);
    const lengths = BUILTIN_ZH_PROMPTS.map(promptChars);
    expect(Math.min(...lengths)).toBeLessThan(10);
    expect(Math.max(...lengths)).toBeGreaterThan(400);
    expect(lengths.filter((n) => n > 100).length).toBeGreaterThan(5);
    const chinese = BUILTIN_ZH_PROMPTS.filter((p) => p.messages.some((m) => CJK.test(m.content)));
    expect(chinese.length).toBe(BUILTIN_ZH_PROMPTS.length);
    expect(BUILTIN_ZH_PROMPTS.some((p) => p.messages.filter((m) => m.role === 'user').length > 1)).toBe(true);
    expect(BUILTIN_ZH_PROMPTS.some((p) => p.messages[0]?.role === 'system')).toBe(true);
    expect(new Set(BUILTIN_ZH_PROMPTS.map((p) => p.id)).size).toBe(BUILTIN_ZH_PROMPTS.length);
    // Every conversation ends with the user's turn.
    for (const p of BUILTIN_ZH_PROMPTS) expect(p.messages.at(-1)?.role).toBe('user');
  });

  it('loads in a seeded order and filters short probes by length', async () => {
    const a = await loadPrompts({ kind: 'builtin-zh' }, 1);
    const b = await loadPrompts({ kind: 'builtin-zh' }, 1);
    const c = await loadPrompts({ kind: 'builtin-zh' }, 2);
    expect(a.map((p) => p.id)).toEqual(b.map((p) => p.id));
    expect(a.map((p) => p.id)).not.toEqual(c.map((p) => p.id));
    const short = await loadPrompts({ kind: 'builtin-zh', maxChars: 60 }, 1);
    expect(short.length).toBeGreaterThan(5);
    expect(short.every((p) => promptChars(p) <= 60)).toBe(true);
    await expect(loadPrompts({ kind: 'builtin-zh', maxChars: 1 }, 1)).rejects.toThrow(/prompts.maxChars/);
  });
});

describe('synthetic prompts', () => {
  it('have lengths in the asked range and are reproducible', () => {
    const items = syntheticPrompts({ minInputTokens: 20, maxInputTokens: 80, count: 200, seed: 3 });
    const lengths = items.map(
      (p) => (p.messages[0]?.content.length ?? 0) - '请阅读下面的文字并简要复述:'.length,
    );
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(20);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(80);
    expect(new Set(lengths).size).toBeGreaterThan(30);
    expect(syntheticPrompts({ minInputTokens: 20, maxInputTokens: 80, count: 200, seed: 3 })).toEqual(items);
  });
});

describe('JSONL prompt files', () => {
  it('reads messages and prompt lines, skipping blanks and comments', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'prompts-'));
    const file = path.join(dir, 'p.jsonl');
    await writeFile(
      file,
      [
        '# test prompts',
        '{"messages":[{"role":"system","content":"简短回答"},{"role":"user","content":"你好"}],"max_tokens":8}',
        '',
        '{"id":"q2","prompt":"今天天气怎么样?"}',
      ].join('\n'),
    );
    const items = await loadPrompts({ kind: 'jsonl', path: file }, 1);
    expect(items).toHaveLength(2);
    const byId = Object.fromEntries(items.map((p) => [p.id, p]));
    expect(byId['line-2']).toEqual({
      id: 'line-2',
      messages: [
        { role: 'system', content: '简短回答' },
        { role: 'user', content: '你好' },
      ],
      maxTokens: 8,
    });
    expect(byId.q2!.messages).toEqual([{ role: 'user', content: '今天天气怎么样?' }]);
  });

  it('names every bad line and rule', async () => {
    let error: unknown;
    try {
      parsePromptJsonl(
        [
          '{"prompt":"ok"}',
          'not json',
          '{"messages":[{"role":"robot","content":"x"}]}',
          '{"prompt":"a","messages":[]}',
        ].join('\n'),
        'p.jsonl',
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputValidationError);
    const message = (error as Error).message;
    expect(message).toMatch(/p\.jsonl:2: not JSON/);
    expect(message).toMatch(/p\.jsonl:3 messages\.0\.role: must be "system", "user" or "assistant"/);
    expect(message).toMatch(/p\.jsonl:4/);
    expect(() => parsePromptJsonl('\n# only a comment\n', 'empty.jsonl')).toThrow(
      /empty\.jsonl: holds no prompts/,
    );
    await expect(loadPrompts({ kind: 'jsonl', path: '/nonexistent/prompts.jsonl' }, 1)).rejects.toThrow(
      /prompts\.path: cannot read \/nonexistent\/prompts\.jsonl: ENOENT/,
    );
  });
});
