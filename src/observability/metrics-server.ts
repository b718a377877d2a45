import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { metricsRegistry } from './metrics.js';

// The worker's one Prometheus endpoint (GET /metrics on config.metrics.address): the
// Temporal SDK's metrics, which its Rust core exports on a loopback address of its own
// (`upstream`), followed by this process's registry (metrics.ts, pipeline-metrics.ts).
// One scrape target per pod, as before: the PodMonitor / ServiceMonitor need no change.

export interface MetricsServer {
  /** host:port the server listens on (the port filled in when 0 was asked for). */
  address: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  /** host:port to listen on. */
  address: string;
  /** host:port of another Prometheus text endpoint whose /metrics comes first (the SDK's). */
  upstream?: string;
  registry?: Registry;
  /** How long to wait for the upstream, ms; past it (or on its error) the answer is a 503. */
  upstreamTimeoutMs?: number;
}

function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  if (at <= 0) throw new Error(`metrics address "${address}" is not host:port`);
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(at + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`metrics address "${address}" has no valid port`);
  }
  return { host, port };
}

const formatAddress = (host: string, port: number) =>
  host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;

/** A loopback address with a port free right now (for the SDK's exporter, which only this process reads). */
export async function freeLoopbackAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return formatAddress('127.0.0.1', port);
}

/** The upstream's exposition text, or undefined when it does not answer 200 in time. */
async function upstreamText(upstream: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const response = await fetch(`http://${upstream}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) return undefined;
    const text = await response.text();
    return text === '' || text.endsWith('\n') ? text : `${text}\n`;
  } catch {
    return undefined;
  }
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const registry = options.registry ?? metricsRegistry;
  const timeoutMs = options.upstreamTimeoutMs ?? 5_000;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    void (async () => {
      try {
        const sdk = options.upstream ? await upstreamText(options.upstream, timeoutMs) : '';
        if (sdk === undefined) {
          // The worker's probes read /metrics: an SDK exporter that does not answer is a
          // sick worker, as it was when the SDK served this address itself.
          res
            .writeHead(503, { 'content-type': 'text/plain' })
            .end('the Temporal SDK metrics do not answer\n');
          return;
        }
        const own = await registry.metrics();
        res.writeHead(200, { 'content-type': registry.contentType }).end(sdk + own);
      } catch (error) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`);
      }
    })();
  });
  const { host, port } = splitAddress(options.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: formatAddress(host, bound.port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
