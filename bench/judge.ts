import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { judgeCanary } from '../src/analysis/checks.js';
import { ProbeCanaryAnalyzer } from '../src/analysis/probe.js';
import {
  type LatencyMetricName,
  type LatencySummary,
  latencySummaryOf,
  type RevisionMeasurement,
  type Verdict,
} from '../src/domain/analysis.js';
import { type LatencyDistribution, LogGridBinner } from '../src/domain/latency-distribution.js';
import { canaryPlanSchema, type Slo, sloSchema } from '../src/domain/promotion-spec.js';
import { seededRandom } from '../src/domain/random.js';
import { createServingSimulator, type ServingSimulator } from '../src/llm/simulator/server.js';
import { createLogger } from '../src/observability/logger.js';

// How often does the canary judge roll back a canary as good as stable, and how often does
// it catch a worse one? The new statistical judge (judgeCanary) side by side with the old
// threshold rule (canary p99 > SLO, or canary p99 / stable p99 > 1.5 and > 10 ms apart,
// or error rate > 1 %: fail).
//
// Method, in two stages:
// 1. Real canaries: RUNS A/A and RUNS A/B probe analyses (ProbeCanaryAnalyzer: the real
//    open-loop load generator against two in-process serving simulators, canary and stable
//    probed at once), each a WINDOW_S-second window at PROBE_RPS. The A/B canary is 1.5x
//    slower (TTFT and TPOT). For half of the runs a CPU hog (a child process spinning
//    `while(true){}`) runs beside them, so the host noise is real. Their verdicts are
//    printed as judge_real_* figures (few runs: coarse rates).
// 2. Bootstrap, for the rates: each trial picks one real A/A run at random (so half the
//    trials carry hog noise) and pools the per-request samples both healthy revisions
//    measured in it (E2E, TTFT, TPOT, as the probe client recorded them: log-grid bins of a
//    few %). Canary and stable windows of the default analysis size (60 s x 10 req/s = 600
//    requests each) are drawn from that pool with replacement:
//    - A/A: both from the pool (a false rollback is a 'fail' verdict; inconclusive counted apart);
//    - A/B p99 1.5x: the canary's draws scaled by 1.5 (so its p99 is 1.5x);
//    - errors: each canary request fails with probability 2 %, the stable's never, at the
//      default window and a few other sizes (the exact tests need ~7 errors for p < 0.01);
//    - time to rollback: a 2x latency fault, windows of the default analysis length (60 s
//      plus the probe's 5 s warm-up) judged one after another until the first 'fail'; the
//      canary's share of user traffic (10 % of 20 req/s) served meanwhile is the count of
//      bad requests, next to Flagger's defaults (interval 1 min x threshold 5 failed checks).

const RUNS = Number(process.env.QWENOPS_BENCH_JUDGE_RUNS ?? 20);
const TRIALS = Number(process.env.QWENOPS_BENCH_JUDGE_TRIALS ?? 1000);
const WINDOW_S = 2;
const PROBE_RPS = 100;
const SLOWDOWN = 1.5;
const SLO: Slo = sloSchema.parse({ p99LatencyMs: 300, maxErrorRatePct: 1, maxLatencyRatioVsStable: 1.5 });
const MIN_SAMPLES = 30;
const NOISE_FLOOR_MS = 10;
/** Requests per revision in a default analysis: the default window at the probe's default rate. */
const DEFAULT_PLAN = canaryPlanSchema.parse({});
const DEFAULT_WINDOW_REQUESTS = DEFAULT_PLAN.analysisWindowSeconds * DEFAULT_PLAN.probe.requestsPerSecond;
/** Window sizes the error power curve is printed for (the default window is added). */
const ERROR_WINDOWS = [300, 1000];
// Time to rollback: 2x fault, 10 % canary weight, 20 req/s of user traffic.
const USER_RPS = 20;
const CANARY_WEIGHT = 0.1;
const ANALYSIS_SECONDS = 60 + 5; // default window + probe warm-up
const MAX_WINDOWS = 20;
const FLAGGER_BAD_REQUESTS = 5 * 60 * USER_RPS * CANARY_WEIGHT;

const METRICS: LatencyMetricName[] = ['e2e', 'ttft', 'tpot'];
type Samples = Record<LatencyMetricName, number[]>;

const random = seededRandom(20261207);

function expand(dist: LatencyDistribution | undefined): number[] {
  if (!dist) return [];
  const out: number[] = [];
  dist.values.forEach((v, i) => {
    for (let k = 0; k < (dist.counts[i] as number); k++) out.push(v);
  });
  return out;
}

function samplesOf(m: RevisionMeasurement | undefined): Samples {
  return {
    e2e: expand(m?.distributions?.e2e),
    ttft: expand(m?.distributions?.ttft),
    tpot: expand(m?.distributions?.tpot),
  };
}

function summaryOf(values: number[]): LatencySummary {
  return latencySummaryOf(values) as LatencySummary;
}

/** A window of `requests` drawn from the pool; `errorProb` of them fail; latencies x `scale`. */
function drawWindow(
  revision: string,
  pool: Samples,
  requests: number,
  scale = 1,
  errorProb = 0,
): RevisionMeasurement {
  let errors = 0;
  for (let i = 0; i < requests; i++) if (random() < errorProb) errors++;
  const ok = requests - errors;
  const drawn = {} as Samples;
  const distributions: Partial<Record<LatencyMetricName, LatencyDistribution>> = {};
  for (const metric of METRICS) {
    const from = pool[metric];
    const binner = new LogGridBinner();
    const values: number[] = [];
    for (let i = 0; i < ok && from.length > 0; i++) {
      const v = (from[Math.floor(random() * from.length)] as number) * scale;
      values.push(v);
      binner.add(v);
    }
    drawn[metric] = values;
    const dist = binner.toDistribution();
    if (dist) distributions[metric] = dist;
  }
  return {
    revision,
    requests,
    errors,
    errorRatePct: requests > 0 ? (errors / requests) * 100 : 0,
    latency: drawn.e2e.length > 0 ? summaryOf(drawn.e2e) : undefined,
    ttft: drawn.ttft.length > 0 ? summaryOf(drawn.ttft) : undefined,
    distributions,
  };
}

/** Which checks decided the new judge's non-pass verdicts, for stderr. */
const decidedBy = new Map<string, number>();

function newJudge(canary: RevisionMeasurement, stable: RevisionMeasurement): Verdict {
  const j = judgeCanary({
    canary,
    stable,
    slo: SLO,
    minSamples: MIN_SAMPLES,
    source: 'bench',
    latencyNoiseFloorMs: NOISE_FLOOR_MS,
  });
  for (const c of j.checks) {
    if (j.verdict !== 'pass' && c.verdict === j.verdict) {
      const key = `${j.verdict}:${c.metric}`;
      decidedBy.set(key, (decidedBy.get(key) ?? 0) + 1);
    }
  }
  return j.verdict;
}

/** The old threshold judge, compactly: absolute p99 SLO, p99 ratio vs stable, error rate. */
function thresholdJudge(canary: RevisionMeasurement, stable: RevisionMeasurement): Verdict {
  if (canary.errorRatePct > SLO.maxErrorRatePct) return 'fail';
  const c = canary.latency?.p99Ms;
  const s = stable.latency?.p99Ms;
  if (c === undefined) return 'inconclusive';
  if (c > SLO.p99LatencyMs) return 'fail';
  if (s !== undefined && s > 0 && c / s > SLO.maxLatencyRatioVsStable && c - s > NOISE_FLOOR_MS)
    return 'fail';
  return 'pass';
}

function startHog(): ChildProcess {
  return spawn(process.execPath, ['-e', 'while(true){}'], { stdio: 'ignore' });
}

async function stopHog(hog: ChildProcess): Promise<void> {
  if (hog.exitCode !== null || hog.signalCode !== null) return;
  const exited = once(hog, 'exit');
  hog.kill('SIGKILL');
  await exited;
}

interface RealRun {
  kind: 'aa' | 'ab';
  hog: boolean;
  verdict: Verdict;
  threshold: Verdict;
  canary?: RevisionMeasurement;
  stable?: RevisionMeasurement;
}

async function realRuns(log: (line: string) => void): Promise<RealRun[]> {
  const logger = createLogger('bench', 'silent');
  const timing = { ttftMs: 50, tpotMs: 10, jitterSigma: 0.2 };
  const sims: ServingSimulator[] = [];
  const start = async (options: Parameters<typeof createServingSimulator>[0]) => {
    const sim = await createServingSimulator({ port: 0, ...options }, { logger });
    sims.push(sim);
    return sim;
  };
  const stable = await start({ ...timing, revision: 'stable', seed: 1 });
  const equal = await start({ ...timing, revision: 'canary-equal', seed: 2 });
  const slow = await start({
    ttftMs: timing.ttftMs * SLOWDOWN,
    tpotMs: timing.tpotMs * SLOWDOWN,
    jitterSigma: timing.jitterSigma,
    revision: 'canary-slow',
    seed: 3,
  });
  const analyzer = new ProbeCanaryAnalyzer({ latencyNoiseFloorMs: NOISE_FLOOR_MS });
  const runs: RealRun[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const hog = i % 2 === 1;
      const hogProcess = hog ? startHog() : undefined;
      try {
        for (const kind of ['aa', 'ab'] as const) {
          const canary = kind === 'aa' ? equal : slow;
          const result = await analyzer.analyse({
            step: i,
            canaryPercent: 10,
            model: 'qwen-7b-chat',
            canary: { revision: kind === 'aa' ? 'canary-equal' : 'canary-slow', baseUrl: `${canary.url}/v1` },
            stable: { revision: 'stable', baseUrl: `${stable.url}/v1` },
            windowSeconds: WINDOW_S,
            minSamples: MIN_SAMPLES,
            probe: { requestsPerSecond: PROBE_RPS, maxTokens: 16, concurrency: 64 },
            slo: SLO,
          });
          const threshold =
            result.canary && result.stable ? thresholdJudge(result.canary, result.stable) : 'inconclusive';
          runs.push({
            kind,
            hog,
            verdict: result.verdict,
            threshold,
            canary: result.canary,
            stable: result.stable,
          });
          log(
            `run ${i} ${kind}${hog ? ' +hog' : ''}: judge ${result.verdict}, threshold ${threshold}, ` +
              `p99 canary ${result.canary?.latency?.p99Ms?.toFixed(1)} ms stable ${result.stable?.latency?.p99Ms?.toFixed(1)} ms, ` +
              `n ${result.canary?.requests}/${result.stable?.requests}`,
          );
        }
      } finally {
        if (hogProcess) await stopHog(hogProcess);
      }
    }
  } finally {
    await Promise.all(sims.map((s) => s.close()));
  }
  return runs;
}

const rate = (verdicts: Verdict[], v: Verdict) =>
  verdicts.length === 0 ? Number.NaN : verdicts.filter((x) => x === v).length / verdicts.length;
const fmt = (v: number) => v.toFixed(3);

export async function runJudgeBench(print: (line: string) => void = console.log): Promise<void> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  log(
    `method: ${RUNS} real A/A and ${RUNS} A/B (canary ${SLOWDOWN}x slower) probe analyses of ${WINDOW_S} s at ${PROBE_RPS} req/s ` +
      `on the serving simulator, a CPU hog beside half of them; then ${TRIALS} bootstrap trials per figure, ` +
      'each resampling the per-request samples of both healthy revisions of one real A/A run ' +
      `(windows of ${DEFAULT_WINDOW_REQUESTS} requests; A/B: canary draws x${SLOWDOWN}; errors: 2 % per canary request vs 0)`,
  );
  const t0 = Date.now();
  const runs = await realRuns(log);
  log(`real runs: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const aa = runs.filter((r) => r.kind === 'aa');
  const ab = runs.filter((r) => r.kind === 'ab');
  print(`judge_real_aa_runs=${aa.length}`);
  print(
    `judge_real_aa_false_rollback_rate=${fmt(
      rate(
        aa.map((r) => r.verdict),
        'fail',
      ),
    )}`,
  );
  print(
    `judge_real_aa_false_rollback_rate_hog=${fmt(
      rate(
        aa.filter((r) => r.hog).map((r) => r.verdict),
        'fail',
      ),
    )}`,
  );
  print(
    `judge_real_ab_detect_rate_1_5x=${fmt(
      rate(
        ab.map((r) => r.verdict),
        'fail',
      ),
    )}`,
  );
  print(
    `threshold_real_aa_false_rollback_rate=${fmt(
      rate(
        aa.map((r) => r.threshold),
        'fail',
      ),
    )}`,
  );
  print(
    `threshold_real_aa_false_rollback_rate_hog=${fmt(
      rate(
        aa.filter((r) => r.hog).map((r) => r.threshold),
        'fail',
      ),
    )}`,
  );
  print(
    `threshold_real_ab_detect_rate_1_5x=${fmt(
      rate(
        ab.map((r) => r.threshold),
        'fail',
      ),
    )}`,
  );

  // Pools: per real A/A run, the samples of both healthy revisions together.
  const pools: Samples[] = aa
    .map((r) => {
      const c = samplesOf(r.canary);
      const s = samplesOf(r.stable);
      return { e2e: [...c.e2e, ...s.e2e], ttft: [...c.ttft, ...s.ttft], tpot: [...c.tpot, ...s.tpot] };
    })
    .filter((p) => p.e2e.length >= MIN_SAMPLES);
  if (pools.length === 0) throw new Error('no real A/A run yielded samples to resample');
  const pickPool = () => pools[Math.floor(random() * pools.length)] as Samples;
  log(
    `bootstrap: ${pools.length} pools of ${Math.round(pools.reduce((s, p) => s + p.e2e.length, 0) / pools.length)} samples on average`,
  );

  const trials = (make: () => [RevisionMeasurement, RevisionMeasurement]) => {
    const judge: Verdict[] = [];
    const threshold: Verdict[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const [canary, stable] = make();
      judge.push(newJudge(canary, stable));
      threshold.push(thresholdJudge(canary, stable));
    }
    return { judge, threshold };
  };

  const n = DEFAULT_WINDOW_REQUESTS;
  print(`judge_bootstrap_trials=${TRIALS}`);
  print(`judge_window_requests=${n}`);
  decidedBy.clear();
  const aaTrials = trials(() => {
    const pool = pickPool();
    return [drawWindow('canary', pool, n), drawWindow('stable', pool, n)];
  });
  log(`A/A trials not passed, by deciding check: ${JSON.stringify(Object.fromEntries(decidedBy))}`);
  print(`judge_false_rollback_rate=${fmt(rate(aaTrials.judge, 'fail'))}`);
  print(`judge_inconclusive_rate_aa=${fmt(rate(aaTrials.judge, 'inconclusive'))}`);
  print(`threshold_false_rollback_rate=${fmt(rate(aaTrials.threshold, 'fail'))}`);

  const abTrials = trials(() => {
    const pool = pickPool();
    return [drawWindow('canary', pool, n, SLOWDOWN), drawWindow('stable', pool, n)];
  });
  print(`judge_detect_rate_p99_1_5x=${fmt(rate(abTrials.judge, 'fail'))}`);
  print(`threshold_detect_rate_p99_1_5x=${fmt(rate(abTrials.threshold, 'fail'))}`);

  // Errors: the headline at the default window, and the power curve over window sizes.
  const errorRates = new Map<number, { judge: number; threshold: number }>();
  for (const size of [...new Set([...ERROR_WINDOWS, n])].sort((a, b) => a - b)) {
    const e = trials(() => {
      const pool = pickPool();
      return [drawWindow('canary', pool, size, 1, 0.02), drawWindow('stable', pool, size)];
    });
    errorRates.set(size, { judge: rate(e.judge, 'fail'), threshold: rate(e.threshold, 'fail') });
    log(
      `errors 2 % vs 0 at ${size} requests: judge ${fmt(rate(e.judge, 'fail'))}, threshold ${fmt(rate(e.threshold, 'fail'))}`,
    );
  }
  print(`judge_detect_rate_errors_2pct=${fmt(errorRates.get(n)?.judge ?? Number.NaN)}`);
  print(`threshold_detect_rate_errors_2pct=${fmt(errorRates.get(n)?.threshold ?? Number.NaN)}`);
  for (const [size, rates] of errorRates) {
    if (size !== n) print(`judge_detect_rate_errors_2pct_at_${size}=${fmt(rates.judge)}`);
  }

  // Time to rollback under a 2x latency fault: windows judged one after another.
  const perWindow = ANALYSIS_SECONDS * USER_RPS * CANARY_WEIGHT;
  const sequences = Math.max(50, Math.round(TRIALS / 5));
  const badJudge: number[] = [];
  const badThreshold: number[] = [];
  for (let t = 0; t < sequences; t++) {
    let judgeAt = 0;
    let thresholdAt = 0;
    for (let w = 1; w <= MAX_WINDOWS && (judgeAt === 0 || thresholdAt === 0); w++) {
      const pool = pickPool();
      const canary = drawWindow('canary', pool, n, 2);
      const stable = drawWindow('stable', pool, n);
      if (judgeAt === 0 && newJudge(canary, stable) === 'fail') judgeAt = w;
      if (thresholdAt === 0 && thresholdJudge(canary, stable) === 'fail') thresholdAt = w;
    }
    badJudge.push((judgeAt || MAX_WINDOWS) * perWindow);
    badThreshold.push((thresholdAt || MAX_WINDOWS) * perWindow);
  }
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  print(`bad_requests_before_rollback=${mean(badJudge).toFixed(0)}`);
  print(`threshold_bad_requests_before_rollback=${mean(badThreshold).toFixed(0)}`);
  print(`flagger_default_bad_requests_before_rollback=${FLAGGER_BAD_REQUESTS}`);
  log(`bootstrap: ${((Date.now() - t0) / 1000).toFixed(0)} s since the real runs started`);
  log(
    `bad requests: per window ${perWindow} (${ANALYSIS_SECONDS} s x ${USER_RPS} req/s x ${CANARY_WEIGHT}), mean over ${sequences} sequences; ` +
      `Flagger: 5 failed checks x 60 s x ${USER_RPS} req/s x ${CANARY_WEIGHT}`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runJudgeBench();
}
