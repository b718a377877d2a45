import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeEntrypoint } from '../../src/runtime/entrypoints.js';
import { freePort } from '../support/ports.js';

// `make demo` as a user runs it (on free ports, in a temp state dir): it must promote the
// first model, roll the faulted one back by itself, answer from the knowledge base, exit 0
// and leave no process behind.

let stateDir: string;

afterAll(async () => {
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe('qwenops demo', () => {
  it('promotes one model, rolls the faulted one back, answers from the knowledge base, exits 0', async () => {
    stateDir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-demo-'));
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
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
        '--metrics-port',
        String(ports[3]),
        '--database-port',
        String(ports[4]),
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
    expect(out).toContain('Temporal UI: http://127.0.0.1:');

    // The report the demo points at exists, and the stack is gone (ports free again).
    const reportUri = /report: (file:\/\/\S+report\.json)/.exec(out)?.[1];
    expect(reportUri).toBeDefined();
    const report = JSON.parse(await readFile(new URL(reportUri as string), 'utf8')) as {
      status: { outcome: string };
    };
    expect(report.status.outcome).toBe('promoted');
    const { waitForPort } = await import('../support/ports.js');
    await expect(waitForPort(ports[0] as number, 500)).rejects.toThrow();
  });
});
