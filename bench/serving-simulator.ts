import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Pool } from 'undici';
import { TrafficProxy } from '../src/cluster/sandbox/traffic-proxy.js';
import { SseParser } from '../src/llm/openai/sse.js';
import type { SimulatorStats } from '../src/llm/simulator/server.js';
import { createLogger } from '../src/observability/logger.js';
import { nodeEntrypoint } from '../src/runtime/entrypoints.js';

// Does the serving simulator keep its timing promise under load, and what does the
// sandbox proxy add? All figures are ratios of two things measured in this same run:
//   simulator_streams_<n>_itl_ratio      client-measured mean inter-token gap / configured TPOT
//   simulator_streams_<n>_e2e_p50_ratio  client-measured median E2E / ideal (TTFT + (tokens-1) * TPOT)
//   simulator_streams_<n>_server_e2e_p50_ratio     the simulator's own median E2E (/admin/stats) / ideal
//   simulator_streams_<n>_client_server_p99_ratio  client p99 E2E / the simulator's own p99
//   sandbox_proxy_e2e_p50_ratio          median E2E through the traffic proxy / direct, same load
// Jitter is off so the ideal is exact; a ratio near 1 means no drift. The simulator runs
// as its own process (as it does in the sandbox); client and proxy share this one.

const TTFT_MS = 50;
const TPOT_MS = 10;
const TOKENS = 50;

interface StreamTiming {
  e2e: number;
  gaps: number[];
}

async function stream(pool: Pool, origin: string): Promise<StreamTiming> {
  const started = performance.now();
  const response = await pool.request({
    origin,
    path: '/v1/chat/completions',
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [{ role: 'user', content: '压测' }],
      max_tokens: TOKENS,
      ignore_eos: true,
      stream: true,
    }),
  });
  if (response.statusCode !== 200)
    throw new Error(`status ${response.statusCode}: ${await response.body.text()}`);
  const parser = new SseParser();
  const tokenTimes: number[] = [];
  for await (const read of response.body) {
    const now = performance.now();
    for (const event of parser.push(read as Buffer)) {
      if (event.includes('"content":"') && !event.includes('"role"')) tokenTimes.push(now);
    }
  }
  const gaps = tokenTimes.slice(1).map((t, i) => t - (tokenTimes[i] as number));
  return { e2e: (tokenTimes.at(-1) as number) - started, gaps };
}

const percentile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
};
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

const pools = new Map<string, Pool>();

/** `streams` concurrent streams over kept-alive connections (a first wave opens them). */
async function wave(origin: string, streams: number): Promise<StreamTiming[]> {
  let pool = pools.get(origin);
  if (!pool) {
    pool = new Pool(origin, { connections: 1000, pipelining: 1 });
    pools.set(origin, pool);
  }
  const p = pool;
  return Promise.all(Array.from({ length: streams }, () => stream(p, origin)));
}

async function startSimulatorProcess() {
  const [command, ...args] = nodeEntrypoint('src/llm/simulator/main');
  const child = spawn(
    command as string,
    [
      ...args,
      '--port',
      '0',
      '--ttft-ms',
      String(TTFT_MS),
      '--tpot-ms',
      String(TPOT_MS),
      '--max-concurrency',
      '10000',
    ],
    {
      env: { ...process.env, QWENOPS_SIM_JITTER_SIGMA: '0', QWENOPS_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  for await (const line of createInterface({ input: child.stdout })) {
    if (line.includes('"event":"listening"')) {
      const { url, port } = JSON.parse(line) as { url: string; port: number };
      return { url, port, child };
    }
  }
  throw new Error('serving simulator exited before it was ready');
}

export async function runServingSimulatorBench(print: (line: string) => void = console.log): Promise<void> {
  const logger = createLogger('bench', 'silent');
  const sim = await startSimulatorProcess();
  const admin = async (path: string, method = 'GET') =>
    (await (await fetch(`${sim.url}${path}`, { method })).json()) as SimulatorStats;
  const proxy = new TrafficProxy('bench/proxy', logger);
  await proxy.listen(0);
  proxy.setTargets([{ target: { revision: 'bench-00001', host: '127.0.0.1', port: sim.port }, weight: 100 }]);
  const ideal = TTFT_MS + (TOKENS - 1) * TPOT_MS;
  try {
    // Warm-up: JIT, and the connections a load tester would keep alive.
    await wave(sim.url, 500);
    await wave(`http://127.0.0.1:${proxy.port}`, 100);
    for (const streams of [100, 500]) {
      await admin('/admin/stats/reset', 'POST');
      const timings = await wave(sim.url, streams);
      const server = await admin('/admin/stats');
      const e2e = timings.map((t) => t.e2e);
      print(
        `simulator_streams_${streams}_itl_ratio=${(mean(timings.flatMap((t) => t.gaps)) / TPOT_MS).toFixed(3)}`,
      );
      print(`simulator_streams_${streams}_e2e_p50_ratio=${(percentile(e2e, 0.5) / ideal).toFixed(3)}`);
      print(`simulator_streams_${streams}_server_e2e_p50_ratio=${(server.e2eMs.p50 / ideal).toFixed(3)}`);
      print(
        `simulator_streams_${streams}_client_server_p99_ratio=${(percentile(e2e, 0.99) / server.e2eMs.p99).toFixed(3)}`,
      );
    }
    const direct = (await wave(sim.url, 100)).map((t) => t.e2e);
    const proxied = (await wave(`http://127.0.0.1:${proxy.port}`, 100)).map((t) => t.e2e);
    print(`sandbox_proxy_e2e_p50_ratio=${(percentile(proxied, 0.5) / percentile(direct, 0.5)).toFixed(3)}`);
  } finally {
    await Promise.all([...pools.values()].map((p) => p.close()));
    pools.clear();
    await proxy.close();
    sim.child.kill('SIGTERM');
    await once(sim.child, 'exit');
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runServingSimulatorBench();
}
