import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { startPromotion } from '../src/cli/pipeline-client.js';
import { PROCESS_CLOCK_PREFIX, type ProcessClock } from '../src/cluster/sandbox/simulated-jobs/common.js';
import { parsePromotionSpec } from '../src/domain/promotion-spec.js';
import type { PipelineStatus } from '../src/domain/status.js';
import { writeFixtureModel } from '../src/hub/fixture-model.js';
import { modulePath } from '../src/runtime/entrypoints.js';
import { statusQuery } from '../workflows/definitions.js';
import { startBenchStack } from './stack.js';

// promoteModel in the sandbox where every GPU Job is a simulated process that works 500 ms
// after it has loaded, on the real dev server with the production activities. Time that
// counts as the Jobs' is what the Job processes measured themselves: each prints its own
// clock as its last log line (QWENOPS_PROCESS_CLOCK: process start, i.e. Node's time
// origin before any module loaded, to exit, epoch ms), read here from the sandbox's Job
// logs. Stage times from the workflow are not used: they run back to back, so whatever the
// orchestration adds between two Jobs would sit inside a stage.
//   orchestration_overhead_ratio  pipeline wall time (client start -> result) / the sum of
//                                 the Job processes' run times. The wall time also holds the
//                                 stages that run no Job (resolve, the download activity,
//                                 the canary: two serving processes and its 1 s analysis
//                                 window, the report), so this is an upper bound on what
//                                 the orchestration adds; the gaps isolate the dispatch.
//   job_segment_overhead_ratio    first Job start -> last Job exit / the sum of the Jobs'
//                                 run times: the part of the pipeline only Jobs and the
//                                 orchestration between them fill
//   inter_stage_gap_ms_p50/_p99   one Job process's exit -> the next one's start (quantize
//                                 exit -> evaluate start: the sandbox notices the exit, the
//                                 activity's poll sees it, it completes, a workflow task
//                                 schedules the next activity, that creates the next Job,
//                                 the sandbox spawns it); one sample per run
//   job_process_ms_sum_p50        the sum of the Jobs' own run times, per run
//   job_startup_ms_p50            per Job process: start -> its own code running (the
//                                 runtime and module loading; inside the Jobs' run time)
//   promotion_wall_ms_p50         the pipeline's wall time
//   activity_roundtrip_ms_p50/_p99  a no-op activity's schedule -> completion -> next
//                                 workflow task round trip, in workflow time, same server

const RUNS = Number(process.env.QWENOPS_BENCH_ORCH_RUNS ?? 10);

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

const round = (value: number, digits = 0) => Math.round(value * 10 ** digits) / 10 ** digits;

interface JobRecordFile {
  spec: { workflowId: string; name: string; template: string };
  logFile: string;
}

/** Every Job process (attempts included) the sandbox ran for `workflowId`, by its own clock. */
async function jobProcessClocks(sandboxStateDir: string, workflowId: string): Promise<ProcessClock[]> {
  const dir = path.join(sandboxStateDir, 'jobs');
  const clocks: ProcessClock[] = [];
  for (const entry of await readdir(dir, { recursive: true })) {
    if (!entry.endsWith('.json')) continue;
    const record = JSON.parse(await readFile(path.join(dir, entry), 'utf8')) as JobRecordFile;
    if (record.spec.workflowId !== workflowId) continue;
    const log = await readFile(record.logFile, 'utf8');
    const found = log
      .split('\n')
      .filter((line) => line.startsWith(`${PROCESS_CLOCK_PREFIX} `))
      .map((line) => JSON.parse(line.slice(PROCESS_CLOCK_PREFIX.length + 1)) as ProcessClock);
    if (found.length === 0) throw new Error(`job ${record.spec.name} logged no ${PROCESS_CLOCK_PREFIX} line`);
    clocks.push(...found);
  }
  return clocks.sort((a, b) => a.startedAtMs - b.startedAtMs);
}

function stageSummary(status: PipelineStatus): string {
  return status.stages
    .filter((s) => s.startedAt && s.finishedAt)
    .map((s) => `${s.name} ${Date.parse(s.finishedAt as string) - Date.parse(s.startedAt as string)}`)
    .join(', ');
}

export async function runOrchestrationBench(): Promise<Record<string, number>> {
  const stack = await startBenchStack('orch', {
    extraWorkers: async (env) => {
      const roundtripBundle = await bundleWorkflowCode({
        workflowsPath: modulePath('bench/roundtrip-workflow'),
        logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} } as never,
      });
      return [
        await Worker.create({
          connection: env.nativeConnection,
          taskQueue: 'bench-roundtrip',
          workflowBundle: roundtripBundle,
          activities: { noop: async () => undefined },
        }),
      ];
    },
  });
  const { env } = stack;
  await writeFixtureModel(stack.config.hub.mirrorDir, 'qwen/Qwen-7B-Chat', 'master');
  try {
    const ratios: number[] = [];
    const segmentRatios: number[] = [];
    const walls: number[] = [];
    const jobSums: number[] = [];
    const gaps: number[] = [];
    const startups: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const spec = parsePromotionSpec({
        model: 'qwen/Qwen-7B-Chat',
        hub: { provider: 'local', revision: 'master' },
        approvals: { beforeCanary: false, beforePromote: false },
        canary: {
          steps: [100],
          analysisWindowSeconds: 1,
          minSamples: 4,
          probe: { requestsPerSecond: 8, maxTokens: 4, concurrency: 4 },
          slo: { p99LatencyMs: 5000, maxLatencyRatioVsStable: 10 },
        },
        loadTest: { enabled: false },
        execution: { heartbeatTimeoutSeconds: 10, gpuJobTimeoutSeconds: 60 },
      });
      const workflowId = `bench-orchestration-${run}`;
      const t0 = performance.now();
      const handle = await startPromotion(env.client, spec, workflowId);
      await handle.result();
      const wall = performance.now() - t0;
      const status = await handle.query(statusQuery);
      const clocks = await jobProcessClocks(stack.sandboxStateDir, workflowId);
      if (clocks.length < 2) throw new Error(`${workflowId}: ${clocks.length} Job processes, expected 2`);
      const jobSum = clocks.reduce((sum, c) => sum + c.runMs, 0);
      const first = clocks[0] as ProcessClock;
      const lastExit = Math.max(...clocks.map((c) => c.exitedAtMs));
      const runGaps = clocks.slice(1).map((c, i) => c.startedAtMs - (clocks[i] as ProcessClock).exitedAtMs);
      walls.push(wall);
      jobSums.push(jobSum);
      gaps.push(...runGaps);
      startups.push(...clocks.map((c) => c.bodyStartedAtMs - c.startedAtMs));
      ratios.push(wall / jobSum);
      segmentRatios.push((lastExit - first.startedAtMs) / jobSum);
      console.error(
        `run ${run}: wall ${round(wall)} ms; jobs ${clocks.map((c) => `${c.template} ${round(c.runMs)}`).join(', ')} ms; ` +
          `gaps ${runGaps.map((g) => round(g)).join(', ')} ms; stages (workflow time, ms): ${stageSummary(status)}`,
      );
    }
    const samples = await env.client.workflow.execute('activityRoundtrip', {
      args: [200],
      taskQueue: 'bench-roundtrip',
      workflowId: 'bench-activity-roundtrip',
    });
    const measured = (samples as number[]).slice(20); // the first calls warm caches and connections
    return {
      orchestration_overhead_ratio: round(percentile(ratios, 0.5), 3),
      job_segment_overhead_ratio: round(percentile(segmentRatios, 0.5), 3),
      inter_stage_gap_ms_p50: round(percentile(gaps, 0.5)),
      inter_stage_gap_ms_p99: round(percentile(gaps, 0.99)),
      inter_stage_gap_samples: gaps.length,
      job_process_ms_sum_p50: round(percentile(jobSums, 0.5)),
      job_startup_ms_p50: round(percentile(startups, 0.5)),
      promotion_wall_ms_p50: round(percentile(walls, 0.5)),
      activity_roundtrip_ms_p50: percentile(measured, 0.5),
      activity_roundtrip_ms_p99: percentile(measured, 0.99),
    };
  } finally {
    await stack.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await runOrchestrationBench();
  for (const [name, value] of Object.entries(figures)) console.log(`${name}=${value}`);
}
