import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_STACK_PORTS } from '../../src/cli/embedded-stack.js';
import { nodeEntrypoint } from '../../src/runtime/entrypoints.js';
import { freePort } from '../support/ports.js';

// `make demo` as a user runs it (on free ports, its default metrics port taken, in a temp
// state dir): it must promote the first model, roll the faulted one back by itself, answer
// from the knowledge base, exit 0 and leave no process behind.

let stateDir: string;
let metricsBlocker: net.Server | undefined;

/** Listens on 127.0.0.1:port; undefined when something else already does. */
async function holdPort(port: number): Promise<net.Server | undefined> {
  const server = net.createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

afterAll(async () => {
  if (metricsBlocker) await new Promise((r) => metricsBlocker?.close(r));
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe('qwenops demo', () => {
  it('promotes one model, rolls the faulted one back, answers from the knowledge base, exits 0', async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-demo-'));
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    // The default worker-metrics port is taken for the whole run, as by another qwenops stack
    // (if something already holds it, it stays taken either way): no --metrics-port flag, so
    // the stack must serve the worker's metrics on a free port and say so, not crash.
    metricsBlocker = await holdPort(DEFAULT_STACK_PORTS.metrics);
    const [cmd, ...pre] = nodeEntrypoint('src/cli/main');
    const child = spawn(
      cmd as string,
      [
        ...pre,
        'demo',
        '--state-dir',
        stateDir,
        '--temporal-port',
        String(ports[0]),
        '--ui-port',
        String(ports[1]),
        '--sandbox-port',
        String(ports[2]),
        '--database-port',
        String(ports[3]),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, QWENOPS_LOG_LEVEL: 'warn' } },
    );
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, out.slice(-4000)).toBe(0);
    expect(out).toMatch(/promotion 1: demo-\S+-promote -> promoted \[as expected\]/);
    expect(out).toMatch(
      /promotion 2: demo-\S+-latency-fault -> rolled_back \(canary analysis failed at 10% traffic/,
    );
    expect(out).toContain('approving "before-canary" with the approveGate update');
    expect(out).toMatch(
      /second run \(unchanged corpus\): incremental mode, \d+ documents, chunks \+0 =\d+ -0, 0 embedding calls/,
    );
    expect(out).toContain('hr/annual-leave.md');
    // The UI link comes while the UI is up (not after it was stopped), and the end says so.
    const link = out.indexOf(`Temporal UI: http://127.0.0.1:${ports[1]}/namespaces/default/workflows`);
    const stopping = out.indexOf('stopping temporal');
    expect(link, out.slice(-4000)).toBeGreaterThan(-1);
    expect(stopping).toBeGreaterThan(link);
    expect(out.slice(stopping)).not.toContain('Temporal UI: http');
    expect(out.slice(stopping)).toMatch(
      /the stack is stopped: the Temporal UI \(http:\/\/127\.0\.0\.1:\d+\) is no longer served/,
    );
    expect(out).toMatch(
      new RegExp(
        `worker metrics: port ${DEFAULT_STACK_PORTS.metrics} is in use .*; serving them on 127\\.0\\.0\\.1:\\d+ instead`,
      ),
    );

    // The report the demo points at exists, and the stack is gone (ports free again).
    const reportUri = /report: (file:\/\/\S+report\.json)/.exec(out)?.[1];
    expect(reportUri).toBeDefined();
    const report = JSON.parse(await readFile(new URL(reportUri as string), 'utf8')) as {
      status: { outcome: string };
      safetyGate: {
        passed: boolean;
        tally: { shouldRefuse: { prompts: number }; normal: { prompts: number } };
      };
    };
    expect(report.status.outcome).toBe('promoted');
    // The safety gate ran in the demo: its rates with their counts, in the output and the report.
    expect(out).toMatch(
      /safety gate: should-refuse refusal rate 100\.0% \(40\/40, 95% CI [\d.]+%-100\.0%\) >= 95\.0%: ok; normal refusal rate 0\.0% \(0\/40/,
    );
    expect(report.safetyGate.passed).toBe(true);
    expect(report.safetyGate.tally.normal.prompts).toBe(40);
    const markdown = await readFile(
      new URL((reportUri as string).replace(/report\.json$/, 'report.md')),
      'utf8',
    );
    expect(markdown).toMatch(/## Safety gate: passed/);
    expect(markdown).toMatch(/\| should refuse \| 40 \| 40 \| 100\.0% \|/);
    const { waitForPort } = await import('../support/ports.js');
    await expect(waitForPort(ports[0] as number, 500)).rejects.toThrow();
  });
});
