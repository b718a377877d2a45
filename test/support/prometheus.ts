import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { freePort } from './ports.js';
import { type ManagedProcess, startProcess } from './processes.js';
import { toolPath } from './tools.js';

// A real Prometheus server (built by scripts/setup/50-prometheus.sh) scraping the given
// targets every `scrapeIntervalSeconds`, each with its own labels (e.g. the revision a
// serving simulator plays). One per test file; stop() removes its data directory.

export interface ScrapeTarget {
  /** host:port serving /metrics. */
  address: string;
  labels: Record<string, string>;
}

export interface TestPrometheus {
  url: string;
  process: ManagedProcess;
  /** Resolves once every target has been scraped successfully (health "up"). */
  waitForTargetsUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `targets`: static targets with their labels; or `{ httpSdUrl }`: Prometheus HTTP service
 * discovery (the sandbox daemon lists every revision server there, labelled by revision); or
 * `{ scrapeConfigs }`: scrape_configs entries as they are (e.g. translated from a PodMonitor).
 */
export async function startPrometheus(
  targets: ScrapeTarget[] | { httpSdUrl: string } | { scrapeConfigs: Record<string, unknown>[] },
  options: { scrapeIntervalSeconds?: number } = {},
): Promise<TestPrometheus> {
  const binary = toolPath('prometheus');
  const dir = await mkdtemp(path.join(tmpdir(), 'qwenops-prometheus-'));
  const interval = `${options.scrapeIntervalSeconds ?? 1}s`;
  const config =
    'scrapeConfigs' in targets
      ? YAML.stringify({
          global: { scrape_interval: interval, evaluation_interval: interval },
          scrape_configs: targets.scrapeConfigs,
        })
      : vllmJobConfig(targets, interval);
  await writeFile(path.join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const process = startProcess('prometheus', [
    binary,
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);

  const deadline = Date.now() + 60_000;
  for (;;) {
    if (process.child.exitCode !== null) {
      throw new Error(`prometheus exited with ${process.child.exitCode}:\n${process.output()}`);
    }
    try {
      const response = await fetch(`${url}/-/ready`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`prometheus not ready after 60 s:\n${process.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }

  return {
    url,
    process,
    async waitForTargetsUp(timeoutMs = 30_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const response = await fetch(`${url}/api/v1/targets?state=active`);
        const body = (await response.json()) as {
          data: { activeTargets: { health: string; scrapeUrl: string }[] };
        };
        const active = body.data.activeTargets;
        const expected = Array.isArray(targets) ? targets.length : active.length;
        if (active.length === expected && active.length > 0 && active.every((t) => t.health === 'up')) return;
        if (Date.now() > until) {
          throw new Error(`prometheus targets not up after ${timeoutMs} ms: ${JSON.stringify(active)}`);
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async stop() {
      await process.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One `vllm` job: static targets with their labels, or HTTP service discovery. */
function vllmJobConfig(targets: ScrapeTarget[] | { httpSdUrl: string }, interval: string): string {
  return [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    'scrape_configs:',
    '  - job_name: vllm',
    `    scrape_interval: ${interval}`,
    `    scrape_timeout: ${interval}`,
    ...(Array.isArray(targets)
      ? [
          '    static_configs:',
          ...targets.flatMap((t) => [
            `      - targets: [${JSON.stringify(t.address)}]`,
            `        labels: ${JSON.stringify(t.labels)}`,
          ]),
        ]
      : [
          '    http_sd_configs:',
          `      - url: ${JSON.stringify(targets.httpSdUrl)}`,
          `        refresh_interval: ${interval}`,
        ]),
    '',
  ].join('\n');
}
