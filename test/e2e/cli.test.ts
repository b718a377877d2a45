import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeEntrypoint } from '../../src/runtime/entrypoints.js';
import {
  MODEL,
  type PipelineStack,
  startInProcessWorkers,
  startPipelineStack,
} from '../support/pipeline-stack.js';

// The `qwenops` command as CI and operators use it, against the real stack: exit codes
// (0 promoted, 2 rolled back, 1 error, 64 bad input), reasons printed, --json output.

let stack: PipelineStack;
let workers: { stop(): Promise<void> };

beforeAll(async () => {
  stack = await startPipelineStack();
  workers = await startInProcessWorkers(stack);
});

afterAll(async () => {
  await workers?.stop();
  await stack?.stop();
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function qwenops(args: string[]): Promise<Run> {
  const [cmd, ...pre] = nodeEntrypoint('src/cli/main');
  return new Promise((resolve) => {
    const child = spawn(cmd as string, [...pre, ...args], {
      env: { ...process.env, ...stack.env, USER: 'e2e' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// Wide SLOs: these tests are about exit codes, and two cores shared with everything else
// make a 300 ms p99 on 20 samples a coin toss. The faulted canary is 3 s slower.
// The canary plan both commands use: two short steps, a small probe, wide SLOs.
const fastCanary = [
  ...['--set', 'canary.steps=[50,100]'],
  ...['--set', 'canary.analysisWindowSeconds=2'],
  ...['--set', 'canary.minSamples=8'],
  ...['--set', 'canary.probe={"requestsPerSecond":10,"maxTokens":8,"concurrency":8}'],
  // The ratio limit is wide because p99 of ~20 probes is their maximum, and two busy cores
  // have moved it 5x; the 3 s fault breaks the 1.5 s SLO whatever the ratio says.
  ...['--set', 'canary.slo={"p99LatencyMs":1500,"maxLatencyRatioVsStable":20}'],
];

const fastPromotion = [
  '--no-approvals',
  ...['--set', 'hub.provider=modelscope'],
  ...['--set', 'loadTest.enabled=false'],
  ...fastCanary,
];

describe('qwenops CLI', () => {
  let candidateUri = '';

  it('promote --wait exits 0 when promoted and prints the stage timeline', async () => {
    const run = await qwenops(['promote', MODEL, '--id', 'cli-promote', ...fastPromotion, '--wait']);
    expect(run.stderr).toContain('canary');
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain('cli-promote: promoted');
    expect(run.stdout).toMatch(/\[\+\] quantize/);

    const status = await qwenops(['--json', 'status', 'cli-promote']);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout) as { outcome: string; artifacts: Record<string, string> };
    expect(parsed.outcome).toBe('promoted');
    candidateUri = parsed.artifacts.candidate as string;
    expect(candidateUri).toMatch(/^s3:\/\//);
  });

  it('refuses a duplicate start of the same promotion id', async () => {
    const run = await qwenops(['promote', MODEL, '--id', 'cli-promote', ...fastPromotion]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('cli-promote was already started');
  });

  it('canary --wait exits 2 with the reason when the canary rolls back', async () => {
    const run = await qwenops([
      'canary',
      '--service',
      'llm-prod/qwen-7b-chat',
      '--storage-uri',
      candidateUri,
      '--id',
      'cli-canary-slow',
      ...fastCanary,
      '--set',
      'serving.env={"QWENOPS_SIM_EXTRA_LATENCY_MS":"3000"}',
      '--wait',
    ]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(2);
    expect(run.stdout).toMatch(/cli-canary-slow: rolled_back — canary analysis failed at 50% traffic/);
  });

  it('canary --wait exits 0 when the new revision is promoted', async () => {
    const run = await qwenops([
      'canary',
      '--service',
      'llm-prod/qwen-7b-chat',
      '--storage-uri',
      candidateUri.replace(/\/?$/, '-copy'),
      '--id',
      'cli-canary-ok',
      ...fastCanary,
      '--wait',
    ]);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain('cli-canary-ok: promoted');
  });

  it('lists pipelines with their outcome', async () => {
    const run = await qwenops(['--json', 'list']);
    expect(run.code).toBe(0);
    const rows = JSON.parse(run.stdout) as Array<{ workflowId: string; outcome?: string }>;
    const byId = Object.fromEntries(rows.map((r) => [r.workflowId, r.outcome]));
    expect(byId['cli-promote']).toBe('promoted');
    expect(byId['cli-canary-slow']).toBe('rolled_back');
  });

  it('refuses an approval for a pipeline that has finished', async () => {
    const run = await qwenops(['approve', 'cli-promote']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/approve refused: cli-promote has already finished/);
  });

  let pipelinesBefore = 0;
  it('counts the pipelines before the bad-input cases', async () => {
    pipelinesBefore = JSON.parse((await qwenops(['--json', 'list'])).stdout).length;
    expect(pipelinesBefore).toBeGreaterThanOrEqual(3);
  });

  it.each([
    [['promote', '../etc/passwd'], /invalid promotion spec: model: /],
    [
      ['promote', MODEL, '--set', 'canary.steps=[50,20,100]'],
      /canary\.steps\.1: must be greater than the previous step/,
    ],
    [['promote', MODEL, '--set', 'serving.name=Not_DNS'], /serving\.name: must be a DNS-1123 label/],
    [
      ['promote', MODEL, '--set', 'canary.analysisWindowSeconds=-5'],
      /canary\.analysisWindowSeconds: analysisWindowSeconds must be > 0/,
    ],
    [
      ['canary', '--service', 'no-namespace', '--storage-uri', 's3://b/k'],
      /--service: must be <namespace>\/<name>/,
    ],
    [
      ['canary', '--service', 'llm-prod/qwen-7b-chat', '--storage-uri', 's3://b/../k'],
      /storageUri: must not contain "\.\." segments/,
    ],
  ])('refuses bad input %j with exit 64', async (args, message) => {
    const run = await qwenops(args);
    expect(run.code).toBe(64);
    expect(run.stderr).toMatch(message);
  });

  it('refuses a malformed spec file, naming the file', async () => {
    const file = path.join(stack.stateDir, 'bad.json');
    await writeFile(file, '{"model": "qwen/Qwen-7B-Chat",');
    const run = await qwenops(['promote', MODEL, '--spec', file]);
    expect(run.code).toBe(64);
    expect(run.stderr).toContain(`${file}: malformed JSON`);
  });

  it('started nothing for any of the refused inputs', async () => {
    expect(JSON.parse((await qwenops(['--json', 'list'])).stdout)).toHaveLength(pipelinesBefore);
  });
});
