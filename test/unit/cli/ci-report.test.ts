import { spawnSync } from 'node:child_process';
import { parseDocument } from 'htmlparser2';
import { describe, expect, it } from 'vitest';
import { renderJunit, xmlEscape } from '../../../src/cli/ci-report/junit.js';
import type { CiReport } from '../../../src/cli/ci-report/report.js';
import { cell, renderSummary } from '../../../src/cli/ci-report/summary.js';
import type { AnalysisResult } from '../../../src/domain/analysis.js';
import type { PipelineStatus } from '../../../src/domain/status.js';

// The CI renderers: JUnit XML that strict parsers accept (one case per analysis step and per
// gate, failures with their reasons) and a Markdown summary with the statistics.

const NASTY = 'p99 <3000> & "quoted" \'single\' | pipe\nnext line \u0001ctl \uD800lone';

const analysis = (
  step: number,
  percent: number,
  verdict: AnalysisResult['verdict'],
  reason: string,
): AnalysisResult => ({
  step,
  canaryPercent: percent,
  verdict,
  reasons: verdict === 'pass' ? [] : [reason],
  provider: 'probe',
  startedAt: `2026-01-01T00:0${step}:00.000Z`,
  finishedAt: `2026-01-01T00:0${step}:08.500Z`,
  checks: [
    {
      metric: 'e2e_p99_ms',
      value: verdict === 'fail' ? 3100 : 120,
      threshold: 1500,
      comparator: '<=',
      verdict,
      message: reason,
      statistics: {
        test: 'mann-whitney-u',
        alpha: 0.05,
        n1: 40,
        n2: 38,
        u: 1444.5,
        p: verdict === 'fail' ? 0.00001234 : 0.41,
        effect: { measure: 'hodges-lehmann-ratio', estimate: 25.1, lower: 22.3, upper: 27.9, level: 0.95 },
      },
    },
    { metric: 'error_rate', threshold: 0.01, comparator: '<=', verdict: 'pass', message: 'no errors' },
  ],
});

const status: PipelineStatus = {
  kind: 'canary',
  workflowId: 'canary-llm-prod-qwen-abc123',
  service: { namespace: 'llm-prod', name: 'qwen-7b-chat' },
  stage: 'report',
  stages: [
    {
      name: 'claim',
      state: 'succeeded',
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: '2026-01-01T00:00:01.000Z',
      detail: 'stable revision r1',
    },
    {
      name: 'canary',
      state: 'failed',
      startedAt: '2026-01-01T00:00:01.000Z',
      finishedAt: '2026-01-01T00:02:00.000Z',
      detail: NASTY,
    },
    { name: 'load-test', state: 'skipped' },
    { name: 'approve-promote', state: 'pending' },
    {
      name: 'promote',
      state: 'failed',
      startedAt: '2026-01-01T00:02:00.000Z',
      finishedAt: '2026-01-01T00:02:01.000Z',
      detail: 'promote <failed> & stopped',
    },
    {
      name: 'report',
      state: 'succeeded',
      startedAt: '2026-01-01T00:02:01.000Z',
      finishedAt: '2026-01-01T00:02:02.000Z',
    },
  ],
  progress: { percent: 100, message: 'rolled back' },
  traffic: { stableRevision: 'r1', canaryRevision: 'r2', canaryPercent: 0 },
  analyses: 2,
  paused: false,
  outcome: 'rolled_back',
  reason: NASTY,
  compensations: [{ name: 'rollbackTraffic', state: 'succeeded' }],
  reportUri: 's3://reports/canary-llm-prod-qwen-abc123/report.html',
  artifacts: {},
};

const report: CiReport = {
  workflowId: status.workflowId,
  outcome: 'rolled_back',
  reason: NASTY,
  failureType: 'RolledBack',
  exitCode: 2,
  status,
  analyses: [
    analysis(0, 10, 'pass', 'within SLO'),
    analysis(1, 50, 'fail', NASTY),
    analysis(2, 100, 'inconclusive', 'too few samples'),
  ],
  uiUrl: 'http://127.0.0.1:8233/namespaces/default/workflows/canary-llm-prod-qwen-abc123',
};

/** The parts of a parsed XML node these checks read. */
interface Element {
  type: string;
  name: string;
  attribs: Record<string, string>;
  children?: unknown[];
}

function elements(node: { children?: unknown[] }, name: string): Element[] {
  const out: Element[] = [];
  for (const child of (node.children ?? []) as Element[]) {
    if (child.type === 'tag' && child.name === name) out.push(child);
    if (child.children) out.push(...elements(child, name));
  }
  return out;
}

describe('JUnit report', () => {
  const xml = renderJunit(report);

  it('is well-formed XML for a strict parser (expat)', () => {
    const py = spawnSync(
      'python3',
      [
        '-c',
        'import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.buffer.read()); print("ok")',
      ],
      {
        input: xml,
        encoding: 'utf8',
      },
    );
    if (py.error) return; // no python3 here: the structural checks below still run
    expect(py.stderr).toBe('');
    expect(py.stdout.trim()).toBe('ok');
  });

  it('has one case per analysis step and per gate, with the failures carrying their reasons', () => {
    const doc = parseDocument(xml, { xmlMode: true, decodeEntities: true });
    const suites = elements(doc, 'testsuite');
    expect(suites.map((s) => s.attribs.name)).toEqual([
      `${status.workflowId} analyses`,
      `${status.workflowId} gates`,
    ]);
    const [analyses, gates] = suites as [Element, Element];
    const analysisCases = elements(analyses, 'testcase');
    expect(analysisCases.map((c) => c.attribs.name)).toEqual([
      'analysis step 1 at 10% canary traffic',
      'analysis step 2 at 50% canary traffic',
      'analysis step 3 at 100% canary traffic',
    ]);
    expect(analyses.attribs).toMatchObject({ tests: '3', failures: '1', skipped: '1' });
    const failure = elements(analysisCases[1] as Element, 'failure')[0] as Element;
    // Entities decode back to exactly the reason (control characters and lone surrogates replaced).
    expect(failure.attribs.message).toBe(NASTY.replace('\u0001', '\uFFFD').replace('\uD800', '\uFFFD'));
    expect(elements(analysisCases[0] as Element, 'failure')).toHaveLength(0);
    expect(elements(analysisCases[2] as Element, 'skipped')[0]?.attribs.message).toBe(
      'inconclusive: too few samples',
    );
    expect(analysisCases[1]?.attribs.time).toBe('8.500');

    const gateCases = elements(gates, 'testcase');
    expect(gateCases.map((c) => c.attribs.name)).toEqual([
      'claim',
      'load-test',
      'approve-promote',
      'promote',
      'release outcome',
    ]);
    const promote = gateCases[3] as Element;
    expect(elements(promote, 'failure')[0]?.attribs.message).toBe('promote <failed> & stopped');
    const outcome = gateCases[4] as Element;
    expect(elements(outcome, 'failure')[0]?.attribs).toMatchObject({ type: 'RolledBack' });
    expect(gates.attribs).toMatchObject({ tests: '5', failures: '2', skipped: '2' });
  });

  it('escapes every markup character and keeps no raw control character', () => {
    expect(xmlEscape(`<a b="c" d='e'>&amp;</a>`)).toBe(
      '&lt;a b=&quot;c&quot; d=&apos;e&apos;&gt;&amp;amp;&lt;/a&gt;',
    );
    expect(xmlEscape('a\nb\tc\u0000d')).toBe('a&#10;b&#9;c\uFFFDd');
    expect(xmlEscape('emoji 😀 ok')).toBe('emoji 😀 ok');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the assertion is that there are none
    expect(xml).not.toMatch(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/);
  });

  it('marks a cancelled (still running) release as skipped, not failed', () => {
    const cancelled = renderJunit({
      ...report,
      outcome: 'running',
      cancelled: 'detached',
      exitCode: 5,
      analyses: [],
    });
    const doc = parseDocument(cancelled, { xmlMode: true });
    const outcome = elements(doc, 'testcase').find((c) => c.attribs.name === 'release outcome') as Element;
    expect(elements(outcome, 'skipped')[0]?.attribs.message).toMatch(/cancelled \(detached\)/);
    // Without analyses from the history, the status's last one is shown.
    expect(elements(doc, 'testcase').filter((c) => c.attribs.classname?.endsWith('.analysis'))).toHaveLength(
      0,
    );
  });
});

describe('Markdown summary', () => {
  const md = renderSummary(report);

  it('has the outcome, the stage timeline, the traffic steps and the statistics', () => {
    expect(md).toMatch(/^### ↩️ Canary release of `llm-prod\/qwen-7b-chat`: rolled back/);
    expect(md).toContain(
      '[Temporal UI](http://127.0.0.1:8233/namespaces/default/workflows/canary-llm-prod-qwen-abc123)',
    );
    expect(md).toContain('- Report: `s3://reports/canary-llm-prod-qwen-abc123/report.html`');
    expect(md).toContain('- Exit code: 2');
    expect(md).toMatch(/\| claim \| ✅ succeeded \| \+0 ms \| 1\.0 s \| stable revision r1 \|/);
    expect(md).toMatch(/\| 2 \| 50% \| ❌ fail \| 8\.5 s \|/);
    // U, p, effect with interval and level, sample counts.
    expect(md).toContain(
      '| 2 (50%) | e2e_p99_ms | ❌ fail | 3100 <= 1500 | mann-whitney-u | 1444.5 | 1.23e-5 | hodges-lehmann-ratio 25.1 [22.3, 27.9] (95% CI) | 40 / 38 |',
    );
    expect(md).toContain('| 1 (10%) | error_rate | ✅ pass | not measured <= 0.01 |');
  });

  it('keeps every table row a single row with the right number of cells', () => {
    const tables = md.split('\n\n').filter((block) => block.startsWith('| '));
    expect(tables).toHaveLength(3);
    const cells = (line: string) => line.replace(/\\\|/g, '').split('|').length - 2;
    for (const table of tables) {
      const lines = table.trim().split('\n');
      expect(lines[1]).toMatch(/^\| --- /);
      for (const line of lines) expect(cells(line), line).toBe(cells(lines[1] as string));
    }
    expect(cell('a|b\nc<d>')).toBe('a\\|b<br>c&lt;d&gt;');
  });

  it('says what happened on a cancelled job', () => {
    const detached = renderSummary({ ...report, outcome: 'running', cancelled: 'detached', exitCode: 5 });
    expect(detached).toContain(
      'the CLI detached, the release goes on (`qwenops status canary-llm-prod-qwen-abc123 --follow`)',
    );
    const aborted = renderSummary({ ...report, outcome: 'running', cancelled: 'aborted', exitCode: 6 });
    expect(aborted).toContain('the release was told to abort');
  });
});
