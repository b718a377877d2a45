import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  PROCESS_CLOCK_PREFIX,
  type ProcessClock,
} from '../../../src/cluster/sandbox/simulated-jobs/common.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';

// The simulated Jobs end every run with their own process clock (what the orchestration
// benchmark reads to tell the Jobs' run time from the dispatch gaps between them).

describe('simulated Job process clock', () => {
  it('prints start, body start and exit as its last line, also when it fails', () => {
    const before = Date.now();
    const [cmd, ...args] = nodeEntrypoint('src/cluster/sandbox/simulated-jobs/quantize');
    const child = spawnSync(cmd as string, [...args, '--no-such-flag', 'x'], {
      encoding: 'utf8',
      env: { ...process.env, QWENOPS_SIM_JOB_SECONDS: '0' },
    });
    const after = Date.now();
    expect(child.status).toBe(2); // bad arguments
    const last = child.stdout.trimEnd().split('\n').at(-1) as string;
    expect(last.startsWith(`${PROCESS_CLOCK_PREFIX} `)).toBe(true);
    const clock = JSON.parse(last.slice(PROCESS_CLOCK_PREFIX.length + 1)) as ProcessClock;
    expect(clock).toMatchObject({ template: 'quantize', exitCode: 2 });
    // The process started after spawnSync was called and exited before it returned.
    expect(clock.startedAtMs).toBeGreaterThanOrEqual(before - 5);
    expect(clock.bodyStartedAtMs).toBeGreaterThanOrEqual(clock.startedAtMs);
    expect(clock.exitedAtMs).toBeGreaterThanOrEqual(clock.bodyStartedAtMs);
    expect(clock.exitedAtMs).toBeLessThanOrEqual(after + 5);
    expect(clock.runMs).toBeCloseTo(clock.exitedAtMs - clock.startedAtMs, 0);
  });
});
