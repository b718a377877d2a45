import { afterEach, describe, expect, it, vi } from 'vitest';
import { followReindexProgress, renderReport } from '../../../src/cli/commands/kb.js';
import {
  renderReindexProgressLine,
  renderReindexStatus,
  renderReportThroughput,
} from '../../../src/cli/render.js';
import {
  emptyCounters,
  formatEta,
  formatRate,
  formatReindexDetails,
  pushThroughputSample,
  type ReindexReport,
  type ReindexStatus,
  reindexThroughput,
  THROUGHPUT_WINDOW_SAMPLES,
  type ThroughputSample,
} from '../../../src/domain/knowledge.js';

// Progress of a long re-index for a person: the rates and ETA the workflow computes
// (pure, from totals and index time) and how the CLI and the Temporal UI show them.

const T0 = Date.parse('2026-12-07T10:00:00.000Z');

/** 1 000 sources listed; 400 done in 100 s, the last 100 of them in the last 20 s. */
function samples(): ThroughputSample[] {
  let window: ThroughputSample[] = [];
  for (let i = 1; i <= 10; i++) {
    const sources = i <= 8 ? 37.5 * i : 300 + 50 * (i - 8);
    window = pushThroughputSample(window, {
      indexMs: i * 10_000,
      sources,
      documents: sources,
      chunks: 3 * sources,
      embeddedInputs: 3 * sources,
    });
  }
  return window;
}

function runningStatus(): ReindexStatus {
  const throughput = reindexThroughput({ now: T0, samples: samples(), sourcesListed: 1000, embedMs: 60_000 });
  return {
    kind: 'knowledge-reindex',
    table: 'qwen_knowledge',
    mode: 'full',
    phase: 'index',
    progress: { percent: 35, message: '400/1000 sources, 1200 chunks added' },
    sourcesListed: 1000,
    sourcesDone: 400,
    counters: {
      ...emptyCounters(),
      documents: 400,
      chunksAdded: 1200,
      embeddedInputs: 1200,
      embedMs: 60_000,
    },
    failures: [],
    batchesInFlight: 4,
    throughput,
    outcome: 'running',
  };
}

describe('re-index throughput (workflow side, pure)', () => {
  it('rates over the whole phase and over the window, ETA at the recent rate', () => {
    const t = reindexThroughput({ now: T0, samples: samples(), sourcesListed: 1000, embedMs: 60_000 });
    expect(t).toBeDefined();
    expect(t?.elapsedMs).toBe(100_000);
    expect(t?.sourcesPerSecond).toBe(4);
    expect(t?.documentsPerSecond).toBe(4);
    expect(t?.chunksPerSecond).toBe(12);
    expect(t?.embeddedInputsPerSecond).toBe(12);
    // 1 200 inputs in 60 s of embedding the batches measured.
    expect(t?.embeddedInputsPerEmbedSecond).toBe(20);
    // The window: the last 8 samples, 30 s .. 100 s: 112.5 -> 400 sources.
    expect(t?.recent?.windowMs).toBe(70_000);
    expect(t?.recent?.sourcesPerSecond).toBe(4.107);
    expect(t?.eta).toEqual({
      remainingSources: 600,
      remainingMs: Math.round((600 * 1000) / 4.107),
      at: new Date(T0 + Math.round((600 * 1000) / 4.107)).toISOString(),
      basis: 'recent',
    });
    expect(t?.asOf).toBe('2026-12-07T10:00:00.000Z');
  });

  it('keeps at most THROUGHPUT_WINDOW_SAMPLES samples; one at the same time replaces the last', () => {
    const window = samples();
    expect(window).toHaveLength(THROUGHPUT_WINDOW_SAMPLES);
    expect(window[0]?.indexMs).toBe(30_000);
    const same = pushThroughputSample(window, { ...(window.at(-1) as ThroughputSample), sources: 410 });
    expect(same).toHaveLength(THROUGHPUT_WINDOW_SAMPLES);
    expect(same.at(-1)?.sources).toBe(410);
    expect(same[0]?.indexMs).toBe(30_000);
  });

  it('no rates before a sample, the average with one sample, no ETA without a known total', () => {
    expect(reindexThroughput({ now: T0, samples: [], sourcesListed: 10, embedMs: 0 })).toBeUndefined();
    const one = reindexThroughput({
      now: T0,
      samples: [{ indexMs: 2000, sources: 5, documents: 5, chunks: 15, embeddedInputs: 0 }],
      sourcesListed: 10,
      embedMs: 0,
    });
    expect(one?.recent).toBeUndefined();
    expect(one?.embeddedInputsPerEmbedSecond).toBeUndefined();
    expect(one?.eta).toEqual({
      remainingSources: 5,
      remainingMs: 2000,
      at: '2026-12-07T10:00:02.000Z',
      basis: 'average',
    });
    // The listing grew past its count: no ETA rather than a negative one.
    const grown = reindexThroughput({
      now: T0,
      samples: [{ indexMs: 2000, sources: 12, documents: 12, chunks: 36, embeddedInputs: 36 }],
      sourcesListed: 10,
      embedMs: 100,
    });
    expect(grown?.eta).toBeUndefined();
    expect(reindexThroughput({ now: T0, samples: samples(), embedMs: 1 })?.eta).toBeUndefined();
  });

  it('formats rates and remaining times for one line', () => {
    expect(formatRate(0.123)).toBe('0.12/s');
    expect(formatRate(4.107)).toBe('4.1/s');
    expect(formatRate(42.4)).toBe('42/s');
    expect(formatRate(1234)).toBe('1.2k/s');
    expect(formatRate(45_000)).toBe('45k/s');
    expect(formatEta(45_400)).toBe('45 s');
    expect(formatEta(146_000)).toBe('2m26s');
    expect(formatEta(3 * 3_600_000 + 7 * 60_000)).toBe('3h07m');
  });

  it('current details for the Temporal UI: phase, sources in flight, rates and ETA', () => {
    const details = formatReindexDetails(runningStatus());
    expect(details).toContain('**qwen_knowledge**: running, phase **index** (35%)');
    expect(details).toContain('sources 400/1000, 4 batches in flight');
    expect(details).toContain(
      'now 4.1/s docs, 12/s chunks, 12/s embedding inputs (20/s per batch while embedding), ETA 2m26s (index phase)',
    );
  });
});

describe('re-index progress in the CLI', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('kb status: averages, recent rates and the ETA of the index phase', () => {
    expect(renderReindexStatus(runningStatus()).split('\n')).toEqual([
      'qwen_knowledge: running, phase index (35%): 400/1000 sources, 1200 chunks added',
      '  sources 400/1000 (4 batches in flight); documents 400; chunks +1200 =0 -0; embedding calls 0, inputs 1200',
      '  rate (average over 1m40s indexing): 4.0/s sources, 4.0/s documents, 12/s chunks, 12/s embedding inputs (20/s per batch while embedding)',
      '  rate (last 1m10s): 4.1/s sources, 4.1/s documents, 12/s chunks, 12/s embedding inputs',
      `  ETA of the index phase: 2m26s (600 sources left at the recent rate, about 2026-12-07T10:02:26.092Z; as of 2026-12-07T10:00:00.000Z)`,
    ]);
  });

  it('kb status without a known total says the ETA is unknown; before the first batch, no rates', () => {
    const status = runningStatus();
    status.sourcesListed = undefined;
    status.throughput = reindexThroughput({ now: T0, samples: samples(), embedMs: 60_000 });
    expect(renderReindexStatus(status)).toContain('ETA of the index phase: unknown');
    const fresh = { ...runningStatus(), throughput: undefined };
    expect(renderReindexStatus(fresh)).not.toContain('rate');
  });

  it('the --wait progress line and the report line', () => {
    expect(renderReindexProgressLine(runningStatus())).toBe(
      'index 35% 400/1000 sources | now 4.1/s docs, 12/s chunks, 12/s embedding inputs (20/s per batch while embedding), ETA 2m26s (index phase)',
    );
    const done: ReindexStatus = {
      ...runningStatus(),
      phase: 'verify',
      progress: { percent: 93, message: '' },
    };
    expect(renderReindexProgressLine(done)).toBe('verify 93% 400/1000 sources');
    const throughput = runningStatus().throughput;
    expect(renderReportThroughput({ throughput })).toBe(
      '  throughput: average 4.0/s docs, 12/s chunks, 12/s embedding inputs (20/s per batch while embedding), ETA 2m26s (index phase) over 1m40s of indexing',
    );
    expect(renderReportThroughput({})).toBeUndefined();
  });

  it('a finished report shows the average throughput without an ETA', () => {
    const throughput = reindexThroughput({
      now: T0,
      samples: [{ indexMs: 50_000, sources: 1000, documents: 1000, chunks: 3000, embeddedInputs: 3000 }],
      sourcesListed: 1000,
      embedMs: 100_000,
    });
    const report = {
      runId: 'r',
      table: 'qwen_knowledge',
      mode: 'full',
      source: 'directory /srv',
      embedder: 'lexical',
      embeddingModel: 'lexical',
      requestedBy: 'test',
      startedAt: '',
      finishedAt: '',
      outcome: 'succeeded',
      counters: { ...emptyCounters(), documents: 1000, chunksAdded: 3000, embeddedInputs: 3000 },
      failures: [],
      rowsBefore: 0,
      rowsAfter: 3000,
      phaseMs: { index: 50_000 },
      throughput,
    } satisfies ReindexReport;
    expect(renderReport(report)).toContain(
      '  throughput: average 20/s docs, 60/s chunks, 60/s embedding inputs (30/s per batch while embedding) over 50.0 s of indexing',
    );
  });

  it('--wait polls the status query and prints a line when it changed, and stops', async () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    let calls = 0;
    const statuses = [runningStatus(), runningStatus(), { ...runningStatus(), sourcesDone: 500 }];
    const stop = followReindexProgress(
      async () => {
        const status = statuses[Math.min(calls++, statuses.length - 1)];
        if (calls === 2) throw new Error('query failed: between two runs');
        return status as ReindexStatus;
      },
      1000,
      (line) => lines.push(line),
    );
    for (let i = 0; i < 4; i++) await vi.advanceTimersByTimeAsync(1000);
    stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toBe(4);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\] index 35% 400\/1000 sources \| now 4\.1\/s docs/);
    expect(lines[1]).toContain('500/1000 sources');
    // 0 turns it off.
    const none = followReindexProgress(
      async () => runningStatus(),
      0,
      (line) => lines.push(line),
    );
    none();
  });
});
