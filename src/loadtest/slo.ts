import { LATENCY_SLO_KEYS, type LoadTestSlo } from '../domain/load-test.js';
import type { AggregateResult } from './aggregate.js';

// Judging a finished load test against its SLOs. A figure that could not be measured (no
// successful request, so no p99) never passes: the SLO is reported missed, saying why.

export interface SloResult {
  /** The SLO key, e.g. "p99E2eMs", "maxErrorRatePct". */
  key: string;
  /** Human label, e.g. "p99 E2E". */
  label: string;
  comparator: '<=' | '>=';
  threshold: number;
  observed?: number;
  met: boolean;
  message: string;
}

export interface SloEvaluation {
  /** True when every SLO is met (and vacuously when none is set). */
  passed: boolean;
  results: SloResult[];
}

const METRIC_LABEL = { ttft: 'TTFT', tpot: 'TPOT', itl: 'ITL', e2e: 'E2E' } as const;

/** "p99_e2e_ms" style name used by the CLI flag, for messages users map back to their input. */
export function sloFlagName(key: string): string {
  return key.replace(/([A-Z])/g, '_$1').toLowerCase();
}

function fmt(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
}

export function evaluateSlo(slo: LoadTestSlo, aggregate: AggregateResult): SloEvaluation {
  const results: SloResult[] = [];
  const check = (
    key: string,
    label: string,
    comparator: '<=' | '>=',
    threshold: number,
    observed: number | undefined,
    unit: string,
    missing: string,
  ) => {
    if (observed === undefined) {
      results.push({
        key,
        label,
        comparator,
        threshold,
        met: false,
        message: `${label}: not measured (${missing}); SLO ${comparator} ${fmt(threshold)}${unit} counts as missed`,
      });
      return;
    }
    const met = comparator === '<=' ? observed <= threshold : observed >= threshold;
    results.push({
      key,
      label,
      comparator,
      threshold,
      observed,
      met,
      message: `${label} ${fmt(observed)}${unit} ${met ? 'meets' : 'misses'} SLO ${comparator} ${fmt(threshold)}${unit}`,
    });
  };
  const none = aggregate.ok === 0 ? 'no successful requests' : 'no samples of this metric';
  for (const { key, percentile, metric } of LATENCY_SLO_KEYS) {
    const threshold = slo[key];
    if (threshold === undefined) continue;
    const stats = aggregate.latency[metric];
    const observed = stats ? stats[`p${percentile}Ms`] : undefined;
    check(
      key,
      `p${percentile} ${METRIC_LABEL[metric]}`,
      '<=',
      threshold,
      observed,
      ' ms',
      metric === 'ttft' || metric === 'itl' || metric === 'tpot'
        ? `${none}; TTFT/ITL/TPOT need streaming`
        : none,
    );
  }
  if (slo.maxErrorRatePct !== undefined) {
    check(
      'maxErrorRatePct',
      'error rate',
      '<=',
      slo.maxErrorRatePct,
      aggregate.requests > 0 ? aggregate.errorRatePct : undefined,
      ' %',
      'no requests',
    );
  }
  if (slo.minOutputTokensPerSecond !== undefined) {
    check(
      'minOutputTokensPerSecond',
      'output tokens/s',
      '>=',
      slo.minOutputTokensPerSecond,
      aggregate.ok > 0 ? aggregate.throughput.outputTokensPerSecond : undefined,
      '',
      'no successful requests',
    );
  }
  if (slo.minGoodputPct !== undefined) {
    check(
      'minGoodputPct',
      'goodput',
      '>=',
      slo.minGoodputPct,
      aggregate.requests > 0 ? aggregate.goodput.pct : undefined,
      ' %',
      'no requests',
    );
  }
  return { passed: results.every((r) => r.met), results };
}
