import {
  type AnalysisCheck,
  type AnalysisResult,
  combineVerdicts,
  type LatencySummary,
  type RevisionMeasurement,
  type Verdict,
} from '../domain/analysis.js';
import type { Slo } from '../domain/promotion-spec.js';
import type { Logger } from '../observability/logger.js';

// The canary judgement, pure: given what the canary and the stable revision did under the
// same load, each check is pass, fail or inconclusive, and the result combines them (any
// fail fails; otherwise any inconclusive is inconclusive). As in Argo Rollouts and
// Flagger, a measurement that could not be made (too few samples, no data, a provider
// error) is inconclusive, never a pass and never a breach.

export interface LatencyBounds {
  /** The histogram bucket holding the p99: it lies in (lowerMs, upperMs]. */
  lowerMs: number;
  upperMs: number;
}

export interface JudgeInput {
  canary: RevisionMeasurement;
  stable?: RevisionMeasurement;
  slo: Slo;
  minSamples: number;
  /** Where the figures come from, for messages ("probe client", "Prometheus"). */
  source: string;
  /**
   * Ratio checks fail only when the canary's p99 is also this many ms above the stable's:
   * p99 over a short window is noisy, and a 1.5x ratio on a 10 ms figure is no regression.
   */
  latencyNoiseFloorMs: number;
  /** Histogram resolution of the canary's p99 E2E (Prometheus); absent for exact client figures. */
  canaryE2eBounds?: LatencyBounds;
  /** Measurement problems (provider errors, missing series): each makes the result inconclusive. */
  problems?: string[];
  /**
   * A problem that makes every figure meaningless (the probe asked for a model neither
   * revision serves): no check is judged, the result is inconclusive.
   */
  invalidMeasurement?: string;
  /** Extra figures worth showing (KV cache usage, aborted requests...). */
  notes?: string[];
}

export interface Judgement {
  verdict: Verdict;
  reasons: string[];
  checks: AnalysisCheck[];
}

const ms = (v: number) => `${v.toFixed(1)} ms`;

function p99(summary: LatencySummary | undefined): number | undefined {
  return summary && summary.count > 0 ? summary.p99Ms : undefined;
}

export function judgeCanary(input: JudgeInput): Judgement {
  const { canary, stable, slo, minSamples, source } = input;
  if (input.invalidMeasurement) {
    const check: AnalysisCheck = {
      metric: 'measurement',
      threshold: 0,
      comparator: '<=',
      verdict: 'inconclusive',
      message: input.invalidMeasurement,
    };
    return {
      verdict: 'inconclusive',
      reasons: [input.invalidMeasurement, ...(input.notes ?? [])],
      checks: [check],
    };
  }
  const checks: AnalysisCheck[] = [];
  const notes: string[] = [...(input.notes ?? [])];

  for (const problem of input.problems ?? []) {
    checks.push({
      metric: 'measurement',
      threshold: 0,
      comparator: '<=',
      verdict: 'inconclusive',
      message: problem,
    });
  }

  const canaryEnough = canary.requests >= minSamples;
  checks.push({
    metric: 'canary_samples',
    value: canary.requests,
    threshold: minSamples,
    comparator: '>=',
    verdict: canaryEnough ? 'pass' : 'inconclusive',
    message: canaryEnough
      ? `canary: ${canary.requests} requests measured (minimum ${minSamples})`
      : `too few samples: canary ${canary.revision} served ${canary.requests} requests, ${minSamples} needed (${source})`,
  });
  const stableEnough = stable === undefined || stable.requests >= minSamples;
  if (stable) {
    checks.push({
      metric: 'stable_samples',
      value: stable.requests,
      threshold: minSamples,
      comparator: '>=',
      verdict: stableEnough ? 'pass' : 'inconclusive',
      message: stableEnough
        ? `stable: ${stable.requests} requests measured (minimum ${minSamples})`
        : `too few samples: stable ${stable.revision} served ${stable.requests} requests, ${minSamples} needed (${source})`,
    });
  }

  // Error rate: decided on the canary alone once there are enough requests.
  checks.push({
    metric: 'error_rate_pct',
    value: canary.errorRatePct,
    threshold: slo.maxErrorRatePct,
    comparator: '<=',
    verdict: !canaryEnough ? 'inconclusive' : canary.errorRatePct <= slo.maxErrorRatePct ? 'pass' : 'fail',
    message: `canary error rate ${canary.errorRatePct.toFixed(2)} % (${canary.errors} of ${canary.requests}) ${canary.errorRatePct <= slo.maxErrorRatePct ? 'within' : 'over'} the ${slo.maxErrorRatePct} % limit`,
  });

  // Absolute p99 E2E against the SLO.
  const canaryP99 = p99(canary.latency);
  const latencySamples = canary.latency?.count ?? 0;
  if (canaryP99 === undefined || latencySamples < Math.min(minSamples, canary.requests) || !canaryEnough) {
    checks.push({
      metric: 'p99_latency_ms',
      value: canaryP99,
      threshold: slo.p99LatencyMs,
      comparator: '<=',
      verdict: 'inconclusive',
      message:
        canaryP99 === undefined
          ? `no successful canary request to measure p99 latency from (${source})`
          : `p99 latency ${ms(canaryP99)} rests on ${latencySamples} samples, too few to judge`,
    });
  } else {
    checks.push(absoluteLatencyCheck(canaryP99, slo.p99LatencyMs, input.canaryE2eBounds));
  }

  // Canary vs stable under the same load.
  if (!stable) {
    notes.push('no stable revision to compare with: the latency ratio was not checked');
  } else {
    for (const [metric, label, c, s] of [
      ['p99_latency_ratio_vs_stable', 'p99 E2E', canary.latency, stable.latency],
      ['p99_ttft_ratio_vs_stable', 'p99 TTFT', canary.ttft, stable.ttft],
    ] as const) {
      const cv = p99(c);
      const sv = p99(s);
      if (cv === undefined && sv === undefined && metric === 'p99_ttft_ratio_vs_stable') continue;
      if (cv === undefined || sv === undefined || !canaryEnough || !stableEnough) {
        checks.push({
          metric,
          threshold: slo.maxLatencyRatioVsStable,
          comparator: '<=',
          verdict: 'inconclusive',
          message: `${label} ratio not measurable (canary ${cv === undefined ? 'n/a' : ms(cv)}, stable ${sv === undefined ? 'n/a' : ms(sv)}, enough samples: canary ${canaryEnough}, stable ${stableEnough})`,
        });
        continue;
      }
      const ratio = sv > 0 ? cv / sv : cv > 0 ? Number.POSITIVE_INFINITY : 1;
      const over = ratio > slo.maxLatencyRatioVsStable;
      const beyondNoise = cv - sv > input.latencyNoiseFloorMs;
      const verdict: Verdict = over && beyondNoise ? 'fail' : 'pass';
      checks.push({
        metric,
        value: Number.isFinite(ratio) ? Math.round(ratio * 1000) / 1000 : ratio,
        threshold: slo.maxLatencyRatioVsStable,
        comparator: '<=',
        verdict,
        message:
          verdict === 'fail'
            ? `canary ${label} ${ms(cv)} is ${ratio.toFixed(2)}x the stable's ${ms(sv)} (limit ${slo.maxLatencyRatioVsStable}x)`
            : over
              ? `canary ${label} ${ms(cv)} vs stable ${ms(sv)}: ${ratio.toFixed(2)}x but within the ${input.latencyNoiseFloorMs} ms noise floor`
              : `canary ${label} ${ms(cv)} vs stable ${ms(sv)}: ${ratio.toFixed(2)}x (limit ${slo.maxLatencyRatioVsStable}x)`,
      });
    }
  }

  const verdict = combineVerdicts(checks.map((c) => c.verdict));
  const headline = checks.filter((c) => c.verdict === verdict && verdict !== 'pass').map((c) => c.message);
  const reasons =
    verdict === 'pass'
      ? [
          `canary ${canary.revision} passed ${checks.length} checks (${source})`,
          ...checks.map((c) => c.message),
        ]
      : [...headline, ...checks.filter((c) => c.verdict !== verdict).map((c) => c.message)];
  return { verdict, reasons: [...reasons, ...notes], checks };
}

/**
 * p99 against an absolute limit. With histogram data (Prometheus) the p99 is only known
 * to lie in one bucket: a bucket wholly under the limit passes, one wholly over fails, and
 * a bucket straddling the limit cannot decide (inconclusive), instead of trusting the
 * linear interpolation inside a bucket that may be hundreds of ms wide.
 */
function absoluteLatencyCheck(
  p99Ms: number,
  limitMs: number,
  bounds: LatencyBounds | undefined,
): AnalysisCheck {
  const base = {
    metric: 'p99_latency_ms',
    value: Math.round(p99Ms * 1000) / 1000,
    threshold: limitMs,
    comparator: '<=' as const,
  };
  if (!bounds) {
    const ok = p99Ms <= limitMs;
    return {
      ...base,
      verdict: ok ? 'pass' : 'fail',
      message: `canary p99 E2E ${ms(p99Ms)} ${ok ? 'within' : 'over'} the ${limitMs} ms SLO`,
    };
  }
  if (bounds.upperMs <= limitMs) {
    return {
      ...base,
      verdict: 'pass',
      message: `canary p99 E2E <= ${ms(bounds.upperMs)} (histogram bucket), within the ${limitMs} ms SLO`,
    };
  }
  if (bounds.lowerMs >= limitMs) {
    return {
      ...base,
      verdict: 'fail',
      message: `canary p99 E2E > ${ms(bounds.lowerMs)} (histogram bucket), over the ${limitMs} ms SLO`,
    };
  }
  return {
    ...base,
    verdict: 'inconclusive',
    message: `canary p99 E2E lies between ${ms(bounds.lowerMs)} and ${Number.isFinite(bounds.upperMs) ? ms(bounds.upperMs) : '+Inf'}: the histogram buckets cannot tell whether it is under ${limitMs} ms`,
  };
}

/** The AnalysisResult every provider returns for a judgement, logged once the same way. */
export function toAnalysisResult(
  request: { step: number; canaryPercent: number },
  judgement: Judgement,
  context: {
    provider: string;
    canary: RevisionMeasurement;
    stable?: RevisionMeasurement;
    startedAt: Date;
    logger?: Logger;
  },
): AnalysisResult {
  context.logger?.info(
    {
      step: request.step,
      verdict: judgement.verdict,
      canary: context.canary.revision,
      reason: judgement.reasons[0],
    },
    `canary analysis (${context.provider})`,
  );
  return {
    step: request.step,
    canaryPercent: request.canaryPercent,
    verdict: judgement.verdict,
    reasons: judgement.reasons,
    checks: judgement.checks,
    provider: context.provider,
    canary: context.canary,
    stable: context.stable,
    startedAt: context.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
  };
}
