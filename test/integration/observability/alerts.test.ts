import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { repoRoot } from '../../../src/runtime/entrypoints.js';
import { toolPath } from '../../support/tools.js';

// k8s/observability/alerts.yaml is a PrometheusRule; its spec.groups are the rule groups
// plain Prometheus and promtool read. They are extracted into a temporary alerts.rules.yaml,
// beside a copy of alerts.test.yaml, and checked with the real promtool (built by
// scripts/setup/50-prometheus.sh): `promtool check rules` and `promtool test rules`.
// A missing promtool fails the test (toolPath throws); it never skips.

const run = promisify(execFile);
const DIR = path.join(repoRoot, 'k8s', 'observability');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface PrometheusRule {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: { groups: { name: string; rules: Rule[] }[] };
}

const resource = YAML.parse(readFileSync(path.join(DIR, 'alerts.yaml'), 'utf8')) as PrometheusRule;
let work: string;
let promtool: string;

beforeAll(() => {
  promtool = toolPath('promtool');
  work = mkdtempSync(path.join(tmpdir(), 'qwenops-alerts-'));
  writeFileSync(path.join(work, 'alerts.rules.yaml'), YAML.stringify({ groups: resource.spec.groups }));
  copyFileSync(path.join(DIR, 'alerts.test.yaml'), path.join(work, 'alerts.test.yaml'));
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

async function promtoolRun(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(promtool, args, { cwd: work, timeout: 120_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('k8s/observability/alerts.yaml', () => {
  it('is a PrometheusRule with the alerts the plan asks for', () => {
    expect(resource.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(resource.kind).toBe('PrometheusRule');
    const alerts = resource.spec.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts).toEqual([
      'QwenServingP99LatencyHigh',
      'QwenServingErrorRateHigh',
      'QwenGpuUtilizationHigh',
      'QwenGpuUtilizationLow',
      'QwenopsCanaryPastDeadline',
      'QwenopsReindexFailed',
      'QwenopsReindexLate',
    ]);
    const p99 = resource.spec.groups
      .flatMap((g) => g.rules)
      .find((r) => r.alert === 'QwenServingP99LatencyHigh');
    expect(p99?.expr).toMatch(
      /histogram_quantile\(0\.99,[\s\S]*by \(namespace, model_name, le\)[\s\S]*vllm:e2e_request_latency_seconds_bucket\[5m\][\s\S]*> 0\.3/,
    );
    expect(p99?.for).toBe('5m');
  });

  it('passes promtool check rules', async () => {
    const { code, output } = await promtoolRun('check', 'rules', 'alerts.rules.yaml');
    expect(output).toMatch(/SUCCESS: 7 rules found/);
    expect(code).toBe(0);
  });

  it('passes its promtool unit tests (alerts.test.yaml)', async () => {
    const { code, output } = await promtoolRun('test', 'rules', 'alerts.test.yaml');
    expect(output, output).toContain('SUCCESS');
    expect(code, output).toBe(0);
  });

  it('promtool notices a broken expectation (the test harness is not vacuous)', async () => {
    const broken = readFileSync(path.join(work, 'alerts.test.yaml'), 'utf8').replace(
      'model_name: qwen-7b-chat\n',
      'model_name: qwen-7b-chat-awq\n',
    );
    writeFileSync(path.join(work, 'broken.test.yaml'), broken);
    const { code, output } = await promtoolRun('test', 'rules', 'broken.test.yaml');
    expect(code, output).not.toBe(0);
    expect(output).toContain('QwenServingP99LatencyHigh');
  });
});
