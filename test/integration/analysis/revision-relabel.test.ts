import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { createCanaryAnalyzer, PrometheusClient } from '../../../src/analysis/index.js';
import { loadConfig, type QwenopsConfig } from '../../../src/config/config.js';
import { sloSchema } from '../../../src/domain/promotion-spec.js';
import {
  K8S_DIR,
  kustomizationObjects,
  type Manifest,
  podMonitorScrapeConfigs,
  sanitizeLabelName,
} from '../../support/k8s-manifests.js';
import { startPrometheus, type TestPrometheus } from '../../support/prometheus.js';
import { startSimulator, type TestSimulator } from '../../support/simulator.js';

// The `revision` label the Prometheus canary analysis selects on is made by k8s/'s
// PodMonitor, nowhere else: vLLM's series carry no revision. A real Prometheus runs the
// scrape configs the Prometheus Operator would generate from that PodMonitor (its selector
// and port filters, then the manifest's relabelings, as they are), over a service discovery
// that serves what Kubernetes pod discovery reports for KServe predictor pods
// (__meta_kubernetes_pod_label_* of a Knative revision pod and of a Standard-mode
// Deployment pod, plus a queue-proxy port and an unrelated pod that must not be scraped).
// The analysis then finds each revision's vLLM histograms under the label name the deployed
// config (k8s/ ConfigMap + src/config defaults) gives it.

const SERVERLESS_REVISION = 'qwen-7b-chat-predictor-00002';
const STANDARD_REVISION = 'qwen-7b-chat-r-0123456789-predictor';

let prometheus: TestPrometheus;
let knativePod: TestSimulator;
let standardPod: TestSimulator;
let discovery: http.Server;
let podMonitor: Manifest;
let deployed: QwenopsConfig;

/** What Kubernetes pod discovery reports for one container port of a pod. */
function podTarget(
  address: string,
  pod: { name: string; labels: Record<string, string>; container: string; portName: string },
): { targets: string[]; labels: Record<string, string> } {
  const labels: Record<string, string> = {
    __meta_kubernetes_namespace: 'llm-prod',
    __meta_kubernetes_pod_name: pod.name,
    __meta_kubernetes_pod_phase: 'Running',
    __meta_kubernetes_pod_ready: 'true',
    __meta_kubernetes_pod_container_name: pod.container,
    __meta_kubernetes_pod_container_port_name: pod.portName,
  };
  for (const [key, value] of Object.entries(pod.labels)) {
    labels[`__meta_kubernetes_pod_label_${sanitizeLabelName(key)}`] = value;
    labels[`__meta_kubernetes_pod_labelpresent_${sanitizeLabelName(key)}`] = 'true';
  }
  return { targets: [address], labels };
}

beforeAll(async () => {
  podMonitor = kustomizationObjects(path.join(K8S_DIR, 'base')).find(
    (o) => o.kind === 'PodMonitor' && o.metadata?.name === 'qwenops-vllm',
  ) as Manifest;
  expect(podMonitor, 'k8s/base lists a PodMonitor qwenops-vllm').toBeDefined();
  const configMap = YAML.parse(readFileSync(path.join(K8S_DIR, 'base', 'config.yaml'), 'utf8')) as {
    data: Record<string, string>;
  };

  knativePod = await startSimulator({ ttftMs: 20, tpotMs: 2, revision: SERVERLESS_REVISION, seed: 1 });
  standardPod = await startSimulator({ ttftMs: 20, tpotMs: 2, revision: STANDARD_REVISION, seed: 2 });
  const host = (s: TestSimulator) => new URL(s.url).host;
  const isvc = { 'serving.kserve.io/inferenceservice': 'qwen-7b-chat', component: 'predictor' };
  const groups = [
    // Serverless: Knative labels the pod with its revision and renames the port user-port.
    podTarget(host(knativePod), {
      name: `${SERVERLESS_REVISION}-deployment-7d9f-abcde`,
      labels: { ...isvc, 'serving.knative.dev/revision': SERVERLESS_REVISION, app: SERVERLESS_REVISION },
      container: 'kserve-container',
      portName: 'user-port',
    }),
    // The same pod's queue-proxy metrics port: not vLLM, not scraped.
    podTarget(host(knativePod), {
      name: `${SERVERLESS_REVISION}-deployment-7d9f-abcde`,
      labels: { ...isvc, 'serving.knative.dev/revision': SERVERLESS_REVISION, app: SERVERLESS_REVISION },
      container: 'queue-proxy',
      portName: 'http-usermetric',
    }),
    // Standard mode: a Deployment per predictor, pods labelled app=isvc.<deployment>.
    podTarget(host(standardPod), {
      name: `${STANDARD_REVISION}-5c8b-fghij`,
      labels: { ...isvc, app: `isvc.${STANDARD_REVISION}` },
      container: 'kserve-container',
      portName: 'http1',
    }),
    // Some other workload in the namespace with an http1 port: not an InferenceService.
    podTarget(host(standardPod), {
      name: 'unrelated-0',
      labels: { app: 'unrelated' },
      container: 'main',
      portName: 'http1',
    }),
  ];
  discovery = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(groups));
  });
  await new Promise<void>((resolve) => discovery.listen(0, '127.0.0.1', resolve));
  const sdUrl = `http://127.0.0.1:${(discovery.address() as AddressInfo).port}/targets`;

  prometheus = await startPrometheus({
    scrapeConfigs: podMonitorScrapeConfigs(
      podMonitor,
      { http_sd_configs: [{ url: sdUrl, refresh_interval: '1s' }] },
      { scrapeInterval: '1s' },
    ),
  });
  await prometheus.waitForTargetsUp(60_000);
  deployed = loadConfig({
    env: {
      ...configMap.data,
      QWENOPS_PROMETHEUS_URL: prometheus.url,
      QWENOPS_PROMETHEUS_SCRAPE_INTERVAL_SECONDS: '1',
    },
  });
});

afterAll(async () => {
  await prometheus?.stop();
  if (discovery) await new Promise((r) => discovery.close(r));
  await Promise.all([knativePod?.close(), standardPod?.close()]);
});

describe('k8s/ PodMonitor: the revision label the canary analysis queries', () => {
  it('relabels every scraped predictor endpoint to the label name the deployed analysis selects on', () => {
    const label = deployed.analysis.prometheusRevisionLabel;
    expect(deployed.analysis.provider).toBe('prometheus');
    const endpoints = podMonitor.spec.podMetricsEndpoints as Array<{
      relabelings?: Array<{ targetLabel?: string }>;
    }>;
    expect(endpoints.length).toBeGreaterThan(0);
    for (const endpoint of endpoints) {
      expect(endpoint.relabelings?.map((r) => r.targetLabel)).toContain(label);
    }
  });

  it('gives each predictor pod its revision (Knative label, Standard-mode Deployment) and scrapes nothing else', async () => {
    const label = deployed.analysis.prometheusRevisionLabel;
    // vLLM's (the simulator's) own series carry no revision: the label can only come from relabeling.
    expect(await (await fetch(`${knativePod.url}/metrics`)).text()).not.toMatch(/revision="/);

    const targets = (await (await fetch(`${prometheus.url}/api/v1/targets?state=active`)).json()) as {
      data: { activeTargets: Array<{ labels: Record<string, string>; health: string }> };
    };
    expect(
      targets.data.activeTargets
        .map((t) => ({ revision: t.labels[label], endpoint: t.labels.endpoint, pod: t.labels.pod }))
        .sort((a, b) => String(a.revision).localeCompare(String(b.revision))),
    ).toEqual([
      {
        revision: SERVERLESS_REVISION,
        endpoint: 'user-port',
        pod: `${SERVERLESS_REVISION}-deployment-7d9f-abcde`,
      },
      { revision: STANDARD_REVISION, endpoint: 'http1', pod: `${STANDARD_REVISION}-5c8b-fghij` },
    ]);

    const client = new PrometheusClient(prometheus.url, { timeoutMs: 10_000 });
    const deadline = Date.now() + 30_000;
    let revisions: string[] = [];
    while (Date.now() < deadline) {
      const series = await client.query(`count by (${label}) ({__name__=~"vllm:.+"})`, new Date());
      revisions = series.map((s) => s.metric[label] ?? '(none)').sort();
      if (revisions.length >= 2) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(revisions).toEqual([SERVERLESS_REVISION, STANDARD_REVISION].sort());
  });

  it('lets the Prometheus canary analysis find both revisions’ vLLM histograms', async () => {
    const analyzer = createCanaryAnalyzer(deployed.analysis);
    const result = await analyzer.analyse({
      step: 0,
      canaryPercent: 10,
      model: 'qwen-7b-chat',
      canary: { revision: SERVERLESS_REVISION, baseUrl: knativePod.baseUrl },
      stable: { revision: STANDARD_REVISION, baseUrl: standardPod.baseUrl },
      windowSeconds: 2,
      minSamples: 5,
      probe: { requestsPerSecond: 20, maxTokens: 4, concurrency: 8 },
      slo: sloSchema.parse({ p99LatencyMs: 10_000, maxErrorRatePct: 50, maxLatencyRatioVsStable: 100 }),
    });
    const reasons = result.reasons.join('\n');
    expect(reasons).not.toMatch(/no data/);
    expect(reasons).toContain(
      `selector {${deployed.analysis.prometheusRevisionLabel}="${SERVERLESS_REVISION}"}`,
    );
    expect(result.canary?.latency?.count, reasons).toBeGreaterThan(0);
    expect(result.stable?.latency?.count, reasons).toBeGreaterThan(0);
    expect(result.verdict, reasons).toBe('pass');
  });
});
