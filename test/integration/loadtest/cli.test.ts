import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { startProcess, waitForExit } from '../../support/processes.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// `qwenops loadtest` as users run it: a child process against the serving simulator.

let sim: TestSimulator;
let stateDir: string;

beforeAll(async () => {
  sim = await startSimulator({ ttftMs: 20, tpotMs: 3, jitterSigma: 0.1 });
  stateDir = await mkdtemp(path.join(tmpdir(), 'qwenops-cli-loadtest-'));
});

afterAll(async () => {
  await sim?.close();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

async function qwenops(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const child = startProcess('qwenops', [...nodeEntrypoint('src/cli/main'), ...args], {
    env: { QWENOPS_STORE_DIR: path.join(stateDir, 'store'), QWENOPS_LOG_LEVEL: 'silent' },
  });
  child.child.stdout?.on('data', (c: Buffer) => stdout.push(c));
  child.child.stderr?.on('data', (c: Buffer) => stderr.push(c));
  const code = await waitForExit(child);
  return { code, stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() };
}

describe('qwenops loadtest', () => {
  it('runs an open-loop test, shows progress, stores the report and exits 0 when SLOs hold', async () => {
    const { code, stdout, stderr } = await qwenops([
      'loadtest',
      '--url',
      sim.baseUrl,
      '--rate',
      '20',
      '--duration',
      '2s',
      '--max-tokens',
      '8',
      '--slo',
      'p99_e2e_ms=5000',
      '--slo',
      'error_rate_pct=0',
      '--out',
      path.join(stateDir, 'out'),
      '--records',
      path.join(stateDir, 'records.jsonl'),
    ]);
    expect(code, stderr).toBe(0);
    // Not a terminal: progress comes as plain lines, the last one at 100 %.
    expect(stderr).toMatch(/\[#+\] 100% done \d+s \| sent \d+ ok \d+ err 0/);
    expect(stdout).toMatch(/requests in [\d.]+ s \(open loop, achieved [\d.]+ req\/s of 20\)/);
    expect(stdout).toMatch(/met {4}p99 E2E [\d.]+ ms meets SLO <= 5000 ms/);
    expect(stdout).toMatch(/report: file:\/\/.*\/store\/loadtests\/.*\/report\.html/);
    expect(stdout.trim().split('\n').at(-1)).toBe('SLOs met');
    const out = await readdir(path.join(stateDir, 'out'));
    expect(out.sort()).toEqual(['report.html', 'report.json']);
    const report = JSON.parse(await readFile(path.join(stateDir, 'out', 'report.json'), 'utf8'));
    expect(report.request.slo).toEqual({ p99E2eMs: 5000, maxErrorRatePct: 0 });
    const records = (await readFile(path.join(stateDir, 'records.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(records).toHaveLength(report.results.requests);
    expect(records[0]).toMatchObject({
      ok: true,
      status: 200,
      tokenSource: 'usage',
      ttftMs: expect.any(Number),
      e2eMs: expect.any(Number),
    });
    expect(records[0].itlMs.length).toBeGreaterThan(0);
  });

  it('exits 3 when an SLO is missed, and prints JSON with --json', async () => {
    const { code, stdout } = await qwenops([
      '--json',
      'loadtest',
      '--url',
      sim.baseUrl,
      '--concurrency',
      '2',
      '--requests',
      '10',
      '--max-tokens',
      '8',
      '--slo',
      'p50_ttft_ms=1',
      '--no-store',
    ]);
    expect(code).toBe(3);
    const parsed = JSON.parse(stdout);
    expect(parsed.passed).toBe(false);
    expect(parsed.reportUris).toEqual([]);
    expect(parsed.report.pacing.mode).toBe('closed');
    expect(parsed.report.results.requests).toBe(10);
    expect(parsed.report.slo.results[0].message).toMatch(/p50 TTFT [\d.]+ ms misses SLO <= 1 ms/);
  });

  it('refuses bad flags with exit 64, naming the problem', async () => {
    // In-process: the same main() the binary runs, without a process start per case.
    const run = async (args: string[]) => {
      let stderr = '';
      const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
        stderr += String(chunk);
        return true;
      });
      try {
        return { code: await main(['node', 'qwenops', ...args]), stderr };
      } finally {
        spy.mockRestore();
        process.exitCode = undefined;
      }
    };
    const before = sim.stats().requests.total;
    const zeroRate = await run(['loadtest', '--url', sim.baseUrl, '--rate', '0', '--duration', '1s']);
    expect(zeroRate.code).toBe(64);
    expect(zeroRate.stderr).toMatch(/requestsPerSecond: must be > 0/);
    const negative = await run(['loadtest', '--url', sim.baseUrl, '--rate', '-5']);
    expect(negative.code).toBe(64);
    expect(negative.stderr).toMatch(/requestsPerSecond: must be > 0/);
    const huge = await run([
      'loadtest',
      '--url',
      sim.baseUrl,
      '--mode',
      'closed',
      '--concurrency',
      '1000000',
    ]);
    expect(huge.code).toBe(64);
    expect(huge.stderr).toMatch(/concurrency: must be <= 10000/);
    const badUrl = await run(['loadtest', '--url', 'localhost:8000']);
    expect(badUrl.code).toBe(64);
    expect(badUrl.stderr).toMatch(/url: must be an absolute http\(s\) URL/);
    const badSlo = await run(['loadtest', '--url', sim.baseUrl, '--slo', 'p99_latency=3']);
    expect(badSlo.code).toBe(64);
    expect(badSlo.stderr).toMatch(/--slo p99_latency=3: must be name=value with name one of/);
    const badDuration = await run(['loadtest', '--url', sim.baseUrl, '--duration', 'soon']);
    expect(badDuration.code).toBe(64);
    expect(badDuration.stderr).toMatch(/must be a duration such as 500ms, 30s, 2m or 1h/);
    expect(sim.stats().requests.total).toBe(before); // nothing was sent for any of them
  });

  it('fails with a clear message when nothing answers at the URL', async () => {
    const { code, stderr } = await qwenops([
      'loadtest',
      '--url',
      'http://127.0.0.1:9/v1',
      '--duration',
      '1s',
    ]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/qwenops: cannot reach http:\/\/127\.0\.0\.1:9: cannot connect: ECONNREFUSED/);
  });
});
