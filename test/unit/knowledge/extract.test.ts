import { readFile } from 'node:fs/promises';
import path from 'node:path';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { SourceContentError } from '../../../src/knowledge/document.js';
import { decodeText, UndecodableSourceError } from '../../../src/knowledge/encoding.js';
import { extractDocument } from '../../../src/knowledge/extract/index.js';
import { SAMPLE_KNOWLEDGE_BASE_DIR } from '../../../src/knowledge/sample.js';
import { minimalPdf } from '../../support/minimal-pdf.js';

const text = '公司年假政策：员工入职满一年后，可享受带薪年假五天。';

describe('decodeText', () => {
  it('decodes UTF-8, with and without a byte-order mark', () => {
    expect(decodeText(Buffer.from(text))).toEqual({ text, encoding: 'utf-8', bom: false });
    expect(decodeText(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]))).toEqual({
      text,
      encoding: 'utf-8',
      bom: true,
    });
  });
  it('decodes UTF-16 LE and BE with a byte-order mark', () => {
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    const be = Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text, 'utf16le').swap16()]);
    expect(decodeText(le)).toMatchObject({ text, encoding: 'utf-16le' });
    expect(decodeText(be)).toMatchObject({ text, encoding: 'utf-16be' });
  });
  it('decodes GBK and GB18030 files', () => {
    expect(decodeText(iconv.encode(text, 'gbk'))).toEqual({ text, encoding: 'gb18030', bom: false });
    const rare = '㐀 GB18030 四字节字符测试。';
    expect(decodeText(iconv.encode(rare, 'gb18030')).text).toBe(rare);
  });
  it('refuses what it cannot decode, saying what it looks like', () => {
    expect(() => decodeText(Buffer.from('caf\xe9 au lait, cr\xe8me br\xfbl\xe9e', 'latin1'))).toThrow(
      UndecodableSourceError,
    );
    expect(() => decodeText(Buffer.from('caf\xe9 au lait, cr\xe8me br\xfbl\xe9e', 'latin1'))).toThrow(
      /ISO-8859-1/,
    );
    expect(() => decodeText(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01]))).toThrow(/NUL bytes/);
    expect(() => decodeText(Buffer.from(text, 'utf16le'))).toThrow(UndecodableSourceError);
  });
});

describe('extractDocument', () => {
  it('reads Markdown headings and strips inline markup', async () => {
    const doc = await extractDocument(
      'hr/leave.md',
      Buffer.from('# 年假政策\n\n请见[系统](http://x)，**必须**提前申请。\n\n```\n# 不是标题\n```'),
    );
    expect(doc.title).toBe('年假政策');
    expect(doc.blocks).toEqual([
      { kind: 'heading', level: 1, text: '年假政策' },
      { kind: 'text', text: '请见系统，必须提前申请。' },
      { kind: 'text', text: '# 不是标题' },
    ]);
  });
  it('extracts HTML text: headings, paragraphs, entities; no script or style', async () => {
    const html =
      '<html><head><title>报销</title><style>p{}</style></head><body><h1>报销流程</h1><p>发票&amp;行程单<br>须在30天内提交。</p><script>alert(1)</script><ul><li>第一步</li><li>第二步</li></ul></body></html>';
    const doc = await extractDocument('a.html', iconv.encode(html, 'gbk'));
    expect(doc.title).toBe('报销');
    expect(doc.encoding).toBe('gb18030');
    expect(doc.blocks).toEqual([
      { kind: 'heading', level: 1, text: '报销流程' },
      { kind: 'text', text: '发票&行程单\n须在30天内提交。' },
      { kind: 'text', text: '第一步' },
      { kind: 'text', text: '第二步' },
    ]);
  });
  it('reads JSON Lines records and names a bad line', async () => {
    const doc = await extractDocument(
      'faq.jsonl',
      Buffer.from('{"question":"年假几天？","answer":"五天。"}\n\n{"title":"报销","text":"三十天内。"}\n'),
    );
    expect(doc.blocks).toEqual([
      { kind: 'heading', level: 2, text: '年假几天？' },
      { kind: 'text', text: '五天。' },
      { kind: 'heading', level: 2, text: '报销' },
      { kind: 'text', text: '三十天内。' },
    ]);
    await expect(extractDocument('faq.jsonl', Buffer.from('{"text":"ok"}\nnot json\n'))).rejects.toThrow(
      /line 2: invalid JSON/,
    );
    await expect(extractDocument('faq.jsonl', Buffer.from('{"id":1}\n'))).rejects.toThrow(SourceContentError);
  });
  it('reads the text layer of a PDF, page by page', async () => {
    const pdf = minimalPdf(
      [['员工手册：年假政策。', '入职满一年享受五天带薪年假！'], ['报销须在30天内提交。']],
      '员工手册',
    );
    const doc = await extractDocument('handbook.pdf', pdf);
    expect(doc.title).toBe('员工手册');
    expect(doc.blocks).toEqual([
      { kind: 'text', text: '员工手册：年假政策。\n入职满一年享受五天带薪年假！' },
      { kind: 'text', text: '报销须在30天内提交。' },
    ]);
    await expect(extractDocument('broken.pdf', Buffer.from('%PDF-1.4 garbage'))).rejects.toThrow(
      /not a readable PDF/,
    );
  });
  it('refuses an unsupported extension', async () => {
    await expect(extractDocument('image.png', Buffer.from('x'))).rejects.toThrow(/unsupported file type/);
  });

  it('reads the bundled sample: its GBK file as GB18030 and its PDF text layer', async () => {
    const security = path.join(SAMPLE_KNOWLEDGE_BASE_DIR, 'it', 'information-security.txt');
    const gbk = await extractDocument('it/information-security.txt', await readFile(security));
    expect(gbk.encoding).toBe('gb18030');
    expect(gbk.blocks.map((b) => b.text).join('\n')).toContain('两小时内报告信息安全部');
    const pdf = await extractDocument(
      'hr/attendance.pdf',
      await readFile(path.join(SAMPLE_KNOWLEDGE_BASE_DIR, 'hr', 'attendance.pdf')),
    );
    expect(pdf.title).toBe('星澜科技考勤制度');
    expect(pdf.blocks.map((b) => b.text).join('\n')).toContain('每月迟到超过三次的，按旷工半天处理');
  });
});
