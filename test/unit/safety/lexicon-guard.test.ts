import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { AhoCorasick } from '../../../src/safety/aho-corasick.js';
import { LexiconGuard, REFUSAL_MESSAGE } from '../../../src/safety/guard.js';
import { defaultLexicon } from '../../../src/safety/index.js';
import { LexiconError, MAX_WORD_LENGTH, parseLexicon } from '../../../src/safety/lexicon.js';
import { normalizeForMatching } from '../../../src/safety/normalize.js';
import { CHARACTER_SEGMENTER, defaultSegmenter, JiebaSegmenter } from '../../../src/safety/segmenter.js';

const SAMPLE = new URL('../../fixtures/safety/sample-lexicon.json', import.meta.url);
const sampleLexicon = async () => parseLexicon(JSON.parse(await readFile(SAMPLE, 'utf8')), 'sample');

describe('normalisation', () => {
  it('folds full-width, case, separators, zero-width characters and traditional characters', () => {
    expect(normalizeForMatching('ＤａｒｋＷｅｂ').text).toBe('darkweb');
    expect(normalizeForMatching('赌 博').text).toBe('赌博');
    expect(normalizeForMatching('赌\u200b博').text).toBe('赌博');
    expect(normalizeForMatching('赌*博!').text).toBe('赌博');
    expect(normalizeForMatching('賭博').text).toBe('赌博');
    const n = normalizeForMatching('a 赌 博');
    expect([...n.origin]).toEqual([0, 2, 4]);
  });
});

describe('lexicon guard', () => {
  it('the default lexicon holds one word per category of the plan and blocks them', async () => {
    const lexicon = defaultLexicon();
    expect(lexicon.entries.map((e) => e.category).sort()).toEqual([
      'drugs',
      'gambling',
      'pornography',
      'terrorism',
    ]);
    const guard = new LexiconGuard(lexicon);
    const result = await guard.check('请问怎么参与网上赌博？');
    expect(result).toMatchObject({ blocked: true, category: 'gambling' });
    expect(result.matches[0]).toMatchObject({ word: '赌博', found: '赌博' });
    expect((await guard.check('如何部署 Qwen-7B-Chat 模型？')).blocked).toBe(false);
    expect(REFUSAL_MESSAGE).toBe('抱歉，该问题涉及敏感内容，无法回答。');
  });

  it('catches evasion variants: full-width, spaces, zero-width, punctuation, traditional', async () => {
    const guard = new LexiconGuard(await sampleLexicon());
    for (const text of [
      '哪里买 ＤＡＲＫＷＥＢ 的货',
      '我想 赌  博',
      '毒\u200b品哪里有',
      '毒\u200d·品',
      '網上賭博',
      '色、情网站',
    ]) {
      const result = await guard.check(text);
      expect(result.blocked, text).toBe(true);
    }
    const hit = await guard.check('我想 赌  博');
    expect(hit.matches[0]?.found).toBe('赌  博');
  });

  it('segmentation keeps a word from firing inside an unrelated word', async () => {
    const lexicon = await sampleLexicon();
    const segmented = new LexiconGuard(lexicon, { segmenter: defaultSegmenter() });
    expect(defaultSegmenter()).toBeInstanceOf(JiebaSegmenter);
    expect((await segmented.check('这是个大麻烦')).blocked).toBe(false);
    expect((await segmented.check('他吸食大麻被抓')).blocked).toBe(true);
    // Without segmentation the same text is a (false) hit.
    const flat = new LexiconGuard(lexicon, { segmenter: CHARACTER_SEGMENTER });
    expect((await flat.check('这是个大麻烦')).blocked).toBe(true);
    // A "substring" entry matches anywhere.
    expect((await segmented.check('扫黄赌毒行动')).category).toBe('gambling');
  });

  it('checks a 1 MB text in one linear pass', async () => {
    const guard = new LexiconGuard(await sampleLexicon());
    const clean = '企业知识库问答系统部署说明。'.repeat(75_000);
    expect(clean.length).toBeGreaterThan(1_000_000);
    expect((await guard.check(clean)).blocked).toBe(false);
    expect(guard.scanSteps).toBeLessThanOrEqual(2 * clean.length);
    // Dense near-misses: each candidate is confirmed on a small cached window.
    const segmenter = new JiebaSegmenter((defaultSegmenter() as JiebaSegmenter)['jieba' as never]);
    const dense = new LexiconGuard(await sampleLexicon(), { segmenter });
    const tricky = '这是个大麻烦'.repeat(200_000);
    expect((await dense.check(tricky)).blocked).toBe(false);
    expect(dense.scanSteps).toBeLessThanOrEqual(2 * tricky.length);
    expect(segmenter.segmentedChars).toBeLessThan(1000);
    const hits = await dense.check(`${clean}赌博`);
    expect(hits.blocked).toBe(true);
  });
});

describe('Aho-Corasick', () => {
  function naive(patterns: string[], text: string): string[] {
    const out: string[] = [];
    patterns.forEach((p, i) => {
      for (let at = text.indexOf(p); at !== -1; at = text.indexOf(p, at + 1)) out.push(`${i}@${at}`);
    });
    return out.sort();
  }

  it('finds exactly what a naive matcher finds, on random inputs', () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const alphabet = 'abc赌博毒';
    const word = (max: number) =>
      Array.from(
        { length: 1 + Math.floor(random() * max) },
        () => alphabet[Math.floor(random() * alphabet.length)],
      ).join('');
    for (let round = 0; round < 300; round++) {
      const patterns = [...new Set(Array.from({ length: 1 + Math.floor(random() * 8) }, () => word(4)))];
      const text = word(60);
      const ac = new AhoCorasick(patterns);
      const found = [...ac.scan(text)].map((m) => `${m.pattern}@${m.start}`).sort();
      expect(found, `${patterns.join(',')} in ${text}`).toEqual(naive(patterns, text));
      expect(ac.steps).toBeLessThanOrEqual(2 * text.length);
    }
  });
});

describe('lexicon validation', () => {
  it('refuses bad entries, naming the index and the rule', () => {
    const bad = {
      version: '1',
      entries: [
        { word: '赌博', category: 'gambling' },
        { word: '', category: 'gambling' },
        { word: 42, category: 'gambling' },
        { word: ' 賭 博 ', category: 'gambling' },
        { word: '长'.repeat(MAX_WORD_LENGTH + 1), category: 'x' },
        { word: '毒品', category: 'Bad Category' },
        'string entry',
        { word: '。，', category: 'x' },
      ],
    };
    let error: LexiconError | undefined;
    try {
      parseLexicon(bad, 'bad.json');
    } catch (err) {
      error = err as LexiconError;
    }
    expect(error).toBeInstanceOf(LexiconError);
    expect(error?.issues).toEqual([
      'entry 1: word is empty',
      'entry 2: word must be a string (got number)',
      'entry 3: duplicate of entry 0 ("赌博" after normalisation)',
      `entry 4: word is over-long (${MAX_WORD_LENGTH + 1} characters, at most ${MAX_WORD_LENGTH})`,
      'entry 5: category must match /^[a-z][a-z0-9_-]{0,31}$/ (got "Bad Category")',
      'entry 6: must be an object {word, category}',
      'entry 7: word is empty after normalisation (only spaces or punctuation)',
    ]);
    expect(error?.message).toContain('invalid lexicon bad.json');
    expect(() => parseLexicon({ entries: [] })).toThrow(/version: must be a non-empty string/);
    expect(() => parseLexicon([])).toThrow(/must be an object/);
  });
});
