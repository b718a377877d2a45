import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Supervisor, type SupervisorLogger } from '../../../src/cli/supervisor.js';
import { processGone as gone } from '../../support/processes.js';

// The embedded stack's process supervision, on small node processes: a crashed process is
// logged (structured) and restarted, one that keeps crashing stops everything, stop() leaves
// no process behind (grandchildren included).

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'qwenops-supervisor-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const supervisors: Supervisor[] = [];
afterEach(async () => {
  await Promise.all(supervisors.splice(0).map((s) => s.stop()));
});

interface Line {
  level: 'info' | 'warn' | 'error';
  fields: Record<string, unknown>;
  message: string;
}

function recorder(): { logger: SupervisorLogger; lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: Line['level']) => (fields: Record<string, unknown>, message: string) =>
    void lines.push({ level, fields, message });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

/** A node process that prints "ready" (and a stderr line), then runs `then`. */
function script(name: string, then = 'setInterval(() => {}, 1000);') {
  return {
    name,
    argv: [
      process.execPath,
      '-e',
      `process.stderr.write('hello from ${name} stderr\\n'); console.log('ready ' + process.pid); ${then}`,
    ],
    env: process.env,
    logFile: path.join(dir, `${name}.log`),
    ready: (child: ChildProcess) =>
      new Promise<void>((resolve, reject) => {
        createInterface({ input: child.stdout! }).on('line', (l) => l.startsWith('ready') && resolve());
        child.once('exit', (code) => reject(new Error(`${name} exited ${code}`)));
      }),
  };
}

async function until(what: string, probe: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('Supervisor', () => {
  it('logs a killed process (name, signal, stderr tail) and restarts it after a backoff', async () => {
    const { logger, lines } = recorder();
    const supervisor = new Supervisor({ logger, backoffMs: () => 100 });
    supervisors.push(supervisor);
    await supervisor.start(script('daemon'));
    const first = supervisor.pids().daemon as number;
    process.kill(first, 'SIGKILL');

    await until('the restart', () => lines.some((l) => l.fields.event === 'child_restarted'));
    const exited = lines.find((l) => l.fields.event === 'child_exited');
    expect(exited?.level).toBe('error');
    expect(exited?.fields).toMatchObject({
      child: 'daemon',
      pid: first,
      code: null,
      signal: 'SIGKILL',
      restartInMs: 100,
      restartsInWindow: 0,
    });
    expect(exited?.fields.stderrTail).toContain('hello from daemon stderr');
    const second = supervisor.pids().daemon as number;
    expect(second).toBeGreaterThan(0);
    expect(second).not.toBe(first);
    expect(lines.find((l) => l.fields.event === 'child_restarted')?.fields.pid).toBe(second);
    // The log file is written through a pipe: on a busy host the restarted process's "ready"
    // reaches it a little after the supervisor saw it on stdout.
    const readyLines = () =>
      readFileSync(path.join(dir, 'daemon.log'), 'utf8').match(/^ready/gm)?.length ?? 0;
    await until('both starts in the log', () => readyLines() === 2);
    expect(readyLines()).toBe(2);
  });

  it('gives up on a process that keeps crashing: stops everything and reports the failure', async () => {
    const { logger, lines } = recorder();
    const supervisor = new Supervisor({ logger, maxRestarts: 3, windowMs: 60_000, backoffMs: () => 20 });
    supervisors.push(supervisor);
    await supervisor.start(script('steady'));
    const steady = supervisor.pids().steady as number;
    await supervisor.start(script('flaky', 'setTimeout(() => process.exit(3), 100);'));

    const failure = await supervisor.failure;
    expect(failure.child).toBe('flaky');
    expect(failure.message).toMatch(/flaky exited \(code 3\) after 3 restarts within 60 s: giving up/);
    expect(lines.filter((l) => l.fields.event === 'child_exited')).toHaveLength(3);
    expect(lines.find((l) => l.fields.event === 'child_gave_up')?.fields).toMatchObject({
      child: 'flaky',
      code: 3,
    });
    expect(supervisor.isStopping).toBe(true);
    await until('the steady process to be stopped too', () => gone(steady));
    expect(supervisor.pids()).toEqual({});
  });

  it('stop() ends every process group, grandchildren included, and restarts nothing', async () => {
    const { logger, lines } = recorder();
    const supervisor = new Supervisor({ logger, backoffMs: () => 10 });
    supervisors.push(supervisor);
    await supervisor.start(script('a'));
    await supervisor.start(
      script(
        'b',
        `const g = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }); console.log('grandchild ' + g.pid); setInterval(() => {}, 1000);`,
      ),
    );
    const pids = Object.values(supervisor.pids());
    await until('the grandchild', () => /grandchild \d+/.test(readFileSync(path.join(dir, 'b.log'), 'utf8')));
    const grandchild = Number(/grandchild (\d+)/.exec(readFileSync(path.join(dir, 'b.log'), 'utf8'))?.[1]);
    const stopped: string[] = [];
    await supervisor.stop((l) => stopped.push(l));
    expect(stopped).toEqual(['stopping b', 'stopping a']);
    await until('every process to be gone', () => [...pids, grandchild].every(gone), 5_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(lines.filter((l) => l.fields.event === 'child_exited')).toEqual([]);
    await expect(supervisor.start(script('late'))).rejects.toThrow(/stopping/);
  });
});
