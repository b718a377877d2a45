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

/**
 * Client pacing lag p99 beyond this fraction of a latency SLO means the load generator,
 * not the server, decides whether the SLO holds.
 */
export const CLIENT_LAG_SLO_FRACTION = 0.1;

/**
 * A warning when the generator's own pacing lag (send time minus scheduled time) p99 is over
 * CLIENT_LAG_SLO_FRACTION of the tightest SLO it enters: TTFT and E2E run from the scheduled
 * send, so a late send is in them (ITL and TPOT are gaps after the first token, untouched by it).
 */
export function clientLimitWarning(lagP99Ms: number | undefined, slo: LoadTestSlo): string | undefined {
  if (lagP99Ms === undefined) return undefined;
  const judged = LATENCY_SLO_KEYS.filter(
    ({ key, metric }) => (metric === 'ttft' || metric === 'e2e') && slo[key] !== undefined,
  ).sort((a, b) => (slo[a.key] as number) - (slo[b.key] as number));
  const tightest = judged[0];
  if (!tightest) return undefined;
  const threshold = slo[tightest.key] as number;
  if (lagP99Ms <= threshold * CLIENT_LAG_SLO_FRACTION) return undefined;
  return `client pacing lag p99 ${fmt(lagP99Ms)} ms is over ${CLIENT_LAG_SLO_FRACTION * 100} % of the p${tightest.percentile} ${METRIC_LABEL[tightest.metric]} SLO (${fmt(threshold)} ms): the load generator, not the server, limits this result; give the client more CPU, lower the rate or the in-flight cap, or run it nearer the server`;
}
