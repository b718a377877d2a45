import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { type LoadTestReport, runLoadTest } from '../src/loadtest/index.js';
import { nodeEntrypoint } from '../src/runtime/entrypoints.js';
import { toolBinary } from '../src/runtime/tools.js';

// How good is the load generator as an instrument? Measured side by side in one run, each
// server its own process on loopback:
//   loadgen_rps_vs_wrk            our highest non-streaming request rate / wrk's, same
//                                 endpoint, same body, same connections (target >= 0.4),
//                                 against a canned-answer server on several processes
//                                 (bench/static-chat-server.ts), not the simulator, whose
//                                 own ceiling it used to measure; *_rps_limited_by names
//                                 the side that saturated (the one nearer all of its CPU,
//                                 or "host" when neither got most of its CPU)
//   loadgen_p99_error_ms          |client p99 E2E - the simulator's own p99 E2E| with 500
//                                 concurrent streams (target <= 2)
//   coordinated_omission_visible  1 when the same 1 s server stall shows in the open-loop
//                                 p99 E2E and the closed loop (one request in flight, as
//                                 wrk-style tools send) hides it: open- and closed-loop
//                                 p99 are both printed, stalled and not
// plus the absolute figures behind each ratio, for reading them.

const execFileAsync = promisify(execFile);

interface SimulatorProcess {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

async function startSimulator(args: string[]): Promise<SimulatorProcess> {
  return startServer('src/llm/simulator/main', ['--port', '0', ...args]);
}

/** A server entrypoint that prints {"event":"listening","url":...} on stdout when ready. */
async function startServer(
  entrypoint: string,
  args: string[],
): Promise<SimulatorProcess & { pids: number[] }> {
  const [cmd, ...rest] = nodeEntrypoint(entrypoint);
  const child = spawn(cmd as string, [...rest, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, QWENOPS_LOG_LEVEL: 'warn' },
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const { url, pids } = await new Promise<{ url: string; pids?: number[] }>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.includes('"event":"listening"')) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`${entrypoint} exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    pids: pids ?? [child.pid as number],
    child,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

async function admin(
  url: string,
  method: 'GET' | 'POST',
  pathName: string,
  body?: unknown,
): Promise<unknown> {
  const response = await request(`${url}${pathName}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.body.json();
}

const PROMPT = [{ role: 'user', content: '你好,请用一句话介绍你自己。' }];

/** Linux clock ticks per second, the unit of /proc/<pid>/stat CPU times. */
function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** CPU seconds (user + system) the processes have used so far, from /proc. */
async function cpuSeconds(pids: number[], ticks: number): Promise<number> {
  let total = 0;
  for (const pid of pids) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += Number(fields[11]) + Number(fields[12]);
  }
  return total / ticks;
}

interface RateRun {
  rps: number;
  /** CPU used over the run, in % of what each side can use: one thread for the client, one core per server process. */
  clientCpuPct: number;
  serverCpuPct: number;
}

/**
 * The side nearer all of its CPU: the one that saturated first and set the rate; "host" when
 * neither got 80 % of its CPU (other processes on the machine took it: neither side's
 * ceiling was measured).
 */
const limitedBy = (run: RateRun) =>
  Math.max(run.clientCpuPct, run.serverCpuPct) < 80
    ? 'host'
    : run.clientCpuPct >= run.serverCpuPct
      ? 'client'
      : 'server';

/**
 * wrk and the load generator, one client thread each, 64 connections, the same POST body,
 * against a server that does as little as one can, on as many processes as the machine
 * spares beside the client (so on a big machine the client saturates first; on a small
 * one, the CPU figures say which side did).
 */
async function maxRate(seconds: number): Promise<{ ours: RateRun; wrk: RateRun; serverProcesses: number }> {
  const workers = Math.max(1, Math.min(4, availableParallelism() - 1));
  const server = await startServer('bench/static-chat-server', ['--workers', String(workers)]);
  const dir = await mkdtemp(path.join(tmpdir(), 'qwenops-bench-'));
  const ticks = clockTicks();
  try {
    const body = JSON.stringify({ model: 'qwen-7b-chat', messages: PROMPT, max_tokens: 1, stream: false });
    const script = path.join(dir, 'post.lua');
    await writeFile(
      script,
      `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`,
    );
    const prompts = path.join(dir, 'prompt.jsonl');
    await writeFile(prompts, `${JSON.stringify({ messages: PROMPT })}\n`);
    const connections = 64;
    const serverPct = (cpu: number, wallS: number) => (cpu / wallS / server.pids.length) * 100;
    const ours = async (): Promise<RateRun> => {
      const cpu0 = process.cpuUsage();
      const server0 = await cpuSeconds(server.pids, ticks);
      const t0 = performance.now();
      const report = await runLoadTest({
        url: `${server.url}/v1`,
        model: 'qwen-7b-chat',
        mode: 'closed',
        concurrency: connections,
        warmupSeconds: 1,
        durationSeconds: seconds,
        maxTokens: 1,
        stream: false,
        prompts: { kind: 'jsonl', path: prompts },
      });
      const wallS = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const serverCpu = (await cpuSeconds(server.pids, ticks)) - server0;
      if (report.results.failed > 0)
        throw new Error(`load generator saw errors: ${JSON.stringify(report.results.errors.byClass)}`);
      return {
        rps: report.results.ok / report.results.durationSeconds,
        clientCpuPct: ((cpu.user + cpu.system) / 1e6 / wallS) * 100,
        serverCpuPct: serverPct(serverCpu, wallS),
      };
    };
    const wrkPath = (() => {
      try {
        return toolBinary('wrk', 'make setup');
      } catch {
        return '/usr/bin/wrk';
      }
    })();
    const wrk = async (): Promise<RateRun> => {
      const server0 = await cpuSeconds(server.pids, ticks);
      const t0 = performance.now();
      // bash's `times` prints its children's CPU times last: wrk's own CPU use.
      const { stdout } = await execFileAsync('bash', [
        '-c',
        '"$@"; code=$?; times; exit $code',
        'bash',
        wrkPath,
        '-t1',
        `-c${connections}`,
        `-d${seconds}s`,
        '-s',
        script,
        `${server.url}/v1/chat/completions`,
      ]);
      const wallS = (performance.now() - t0) / 1000;
      const serverCpu = (await cpuSeconds(server.pids, ticks)) - server0;
      if (/Non-2xx or 3xx responses/.test(stdout)) throw new Error(`wrk saw error answers:\n${stdout}`);
      const match = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
      if (!match) throw new Error(`no Requests/sec in wrk output:\n${stdout}`);
      const times = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stdout);
      if (!times) throw new Error(`no CPU times after the wrk output:\n${stdout}`);
      const [, um, us, sm, ss] = times.map(Number) as number[];
      const wrkCpu = (um as number) * 60 + (us as number) + (sm as number) * 60 + (ss as number);
      return {
        rps: Number(match[1]),
        clientCpuPct: (wrkCpu / wallS) * 100,
        serverCpuPct: serverPct(serverCpu, wallS),
      };
    };
    // Alternate, best of two each: the machine's other load affects both the same way.
    const oursRuns = [await ours()];
    const wrkRuns = [await wrk()];
    oursRuns.push(await ours());
    wrkRuns.push(await wrk());
    const best = (runs: RateRun[]) => runs.reduce((a, b) => (b.rps > a.rps ? b : a));
    return { ours: best(oursRuns), wrk: best(wrkRuns), serverProcesses: server.pids.length };
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * 500 streams in flight; the simulator's own E2E percentiles are the ground truth. The
 * server stamps a request when it reads it, so time a request waits before that (500
 * connects at once, 500 requests in one burst) is real client latency it cannot see. A
 * warm-up run on the same connections and a ramp-up of the workers keep such bursts out,
 * so the comparison measures the client's accuracy, not the burst.
 */
async function p99Error(): Promise<{ error: number; client: number; server: number }> {
  // 500 streams at 25 tokens/s each (TPOT 40 ms, 16 tokens, TTFT 150 ms): about what one GPU
  // gives a 7B model at batch 500. Much faster streams would load the single-threaded
  // simulator until its own event loop, not the client, sets the error.
  const sim = await startSimulator(['--ttft-ms', '150', '--tpot-ms', '40', '--max-concurrency', '1000']);
  const dispatcher = new Agent({ connections: 500, pipelining: 1, keepAliveTimeout: 60_000 });
  try {
    const settings = {
      url: `${sim.url}/v1`,
      model: 'qwen-7b-chat',
      mode: 'closed' as const,
      concurrency: 500,
      maxTokens: 16,
      ignoreEos: true,
      prompts: { kind: 'builtin-zh' as const, maxChars: 60 },
      // Workers start spread over about one answer's time, as a steady client population would.
      rampUpSeconds: 0.75,
    };
    await runLoadTest({ ...settings, durationSeconds: 3 }, { dispatcher });
    // Three measured runs; the median error, so one scheduling hiccup of this shared
    // machine does not decide the figure.
    const trials: { error: number; client: number; server: number }[] = [];
    for (let i = 0; i < 3; i++) {
      await admin(sim.url, 'POST', '/admin/stats/reset');
      const report = await runLoadTest({ ...settings, durationSeconds: 5 }, { dispatcher });
      const stats = (await admin(sim.url, 'GET', '/admin/stats')) as {
        e2eMs: { p99: number; count: number };
      };
      if (report.results.failed > 0) {
        throw new Error(`errors at 500 streams: ${JSON.stringify(report.results.errors.byClass)}`);
      }
      if (stats.e2eMs.count !== report.results.ok) {
        throw new Error(`server counted ${stats.e2eMs.count} answers, the client ${report.results.ok}`);
      }
      const client = report.results.latency.e2e?.p99Ms ?? Number.NaN;
      trials.push({ error: Math.abs(client - stats.e2eMs.p99), client, server: stats.e2eMs.p99 });
    }
    trials.sort((a, b) => a.error - b.error);
    return trials[1] as { error: number; client: number; server: number };
  } finally {
    await dispatcher.destroy();
    await sim.stop();
  }
}

interface StallRun {
  p99: number;
  /** Measured requests whose E2E was 500 ms or more: the ones that waited out the stall. */
  slow: number;
  requests: number;
}

/**
 * The same 1 s server stall, 2 s into a 6 s run, under an open loop (50 req/s, regular
 * arrivals) and under a closed loop with one request in flight (how wrk-style tools and
 * many single-threaded benchmarks measure), each beside a run without the stall. The
 * closed loop simply stops sending during the stall, so one of its ~200 requests sees it
 * and its p99 stays far under the stall: coordinated omission. The open loop keeps
 * sending on schedule, about one request in ten waits 500 ms or more, and its p99 shows it.
 */
async function stallVisibility(): Promise<{
  open: StallRun;
  closed: StallRun;
  openBaseline: StallRun;
  closedBaseline: StallRun;
}> {
  // Short answers (~25 ms): a closed loop's one stalled request is then well under 1 %.
  const sim = await startSimulator(['--ttft-ms', '10', '--tpot-ms', '2']);
  try {
    const base = { url: `${sim.url}/v1`, model: 'qwen-7b-chat', maxTokens: 8, durationSeconds: 6 };
    const open = { ...base, mode: 'open' as const, requestsPerSecond: 50, burstiness: 50 };
    const closed = { ...base, mode: 'closed' as const, concurrency: 1 };
    const measure = async (settings: typeof open | typeof closed, stall: boolean): Promise<StallRun> => {
      let slow = 0;
      const run = runLoadTest(settings, {
        onRecord: (record, measured) => {
          if (measured && (record.e2eMs ?? 0) >= 500) slow += 1;
        },
      });
      let report: LoadTestReport;
      if (stall) {
        [report] = await Promise.all([
          run,
          sleep(2000).then(() => admin(sim.url, 'POST', '/admin/faults', { stallMs: 1000 })),
        ]);
        await admin(sim.url, 'POST', '/admin/faults', { stallMs: 0 });
      } else report = await run;
      if (report.results.failed > 0)
        throw new Error(`errors in the stall runs: ${JSON.stringify(report.results.errors.byClass)}`);
      return {
        p99: report.results.latency.e2e?.p99Ms ?? Number.NaN,
        slow,
        requests: report.results.requests,
      };
    };
    const openBaseline = await measure(open, false);
    const openStalled = await measure(open, true);
    const closedBaseline = await measure(closed, false);
    const closedStalled = await measure(closed, true);
    return { open: openStalled, closed: closedStalled, openBaseline, closedBaseline };
  } finally {
    await sim.stop();
  }
}

const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

export async function runLoadgenBench(): Promise<Record<string, number | string>> {
  const rate = await maxRate(5);
  const accuracy = await p99Error();
  const stall = await stallVisibility();
  // The open loop shows the 1 s stall (p99 carries at least half of it, well above its
  // no-stall p99); the closed loop, facing the same stall, does not (p99 under half of it;
  // its no-stall p99 beside it says how much of the rest is host noise).
  const openSees = stall.open.p99 >= 500 && stall.open.p99 > 3 * stall.openBaseline.p99;
  const closedHides = stall.closed.p99 < 500;
  return {
    loadgen_rps_vs_wrk: round(rate.ours.rps / rate.wrk.rps),
    loadgen_rps_limited_by: limitedBy(rate.ours),
    wrk_rps_limited_by: limitedBy(rate.wrk),
    loadgen_p99_error_ms: round(accuracy.error),
    coordinated_omission_visible: openSees && closedHides ? 1 : 0,
    loadgen_max_rps: round(rate.ours.rps, 1),
    wrk_max_rps: round(rate.wrk.rps, 1),
    loadgen_client_cpu_pct: round(rate.ours.clientCpuPct, 1),
    loadgen_server_cpu_pct: round(rate.ours.serverCpuPct, 1),
    wrk_client_cpu_pct: round(rate.wrk.clientCpuPct, 1),
    wrk_server_cpu_pct: round(rate.wrk.serverCpuPct, 1),
    rate_server_processes: rate.serverProcesses,
    loadgen_p99_e2e_ms_500_streams: round(accuracy.client),
    simulator_p99_e2e_ms_500_streams: round(accuracy.server),
    open_loop_stall_p99_e2e_ms: round(stall.open.p99, 1),
    closed_loop_stall_p99_e2e_ms: round(stall.closed.p99, 1),
    open_loop_no_stall_p99_e2e_ms: round(stall.openBaseline.p99, 1),
    closed_loop_no_stall_p99_e2e_ms: round(stall.closedBaseline.p99, 1),
    open_loop_stall_slow_requests: stall.open.slow,
    closed_loop_stall_slow_requests: stall.closed.slow,
    open_loop_stall_requests: stall.open.requests,
    closed_loop_stall_requests: stall.closed.requests,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runLoadgenBench().then(
    (figures) => {
      for (const [name, value] of Object.entries(figures)) console.log(`${name}=${value}`);
    },
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
