import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  freeLoopbackAddress,
  type MetricsServer,
  startMetricsServer,
} from '../../../src/observability/metrics-server.js';

// The worker's /metrics: the Temporal SDK exporter's text (a stand-in upstream here)
// followed by the process registry, on the one configured address.

const SDK_TEXT =
  '# HELP qwenops_workflow_failed x\n# TYPE qwenops_workflow_failed counter\nqwenops_workflow_failed 3';

let servers: MetricsServer[] = [];
let upstreams: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await Promise.all(upstreams.map((u) => new Promise((resolve) => u.close(resolve))));
  servers = [];
  upstreams = [];
});

async function upstream(status = 200): Promise<string> {
  const server = createServer((_req, res) =>
    res.writeHead(status, { 'content-type': 'text/plain' }).end(SDK_TEXT),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstreams.push(server);
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function registryWithGauge(): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'qwenops_knowledge_reindex_rows',
    help: 'rows',
    labelNames: ['knowledge_base'],
    registers: [registry],
  }).set({ knowledge_base: 'docs' }, 7);
  return registry;
}

async function start(upstreamAddress?: string): Promise<MetricsServer> {
  const server = await startMetricsServer({
    address: '127.0.0.1:0',
    registry: registryWithGauge(),
    upstreamTimeoutMs: 1_000,
    ...(upstreamAddress ? { upstream: upstreamAddress } : {}),
  });
  servers.push(server);
  return server;
}

describe('startMetricsServer', () => {
  it('serves the SDK metrics followed by the registry on GET /metrics', async () => {
    const server = await start(await upstream());
    const response = await fetch(`http://${server.address}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text.startsWith(`${SDK_TEXT}\n`)).toBe(true);
    expect(text).toContain('qwenops_knowledge_reindex_rows{knowledge_base="docs"} 7');
  });

  it('answers 503 when the SDK exporter does not, as the probes expect of a sick worker', async () => {
    const server = await start(await freeLoopbackAddress());
    expect((await fetch(`http://${server.address}/metrics`)).status).toBe(503);
    const failing = await start(await upstream(500));
    expect((await fetch(`http://${failing.address}/metrics`)).status).toBe(503);
  });

  it('serves the registry alone without an upstream, and 404 elsewhere', async () => {
    const server = await start();
    const text = await (await fetch(`http://${server.address}/metrics`)).text();
    expect(text).toContain('qwenops_knowledge_reindex_rows{knowledge_base="docs"} 7');
    expect(text).not.toContain('qwenops_workflow_failed');
    expect((await fetch(`http://${server.address}/other`)).status).toBe(404);
  });

  it('refuses an address without a port', async () => {
    await expect(startMetricsServer({ address: 'localhost' })).rejects.toThrow(/host:port/);
  });
});
