import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../observability/logger.js';
import { SmoothWeightedRoundRobin } from './weighted-round-robin.js';

// The per-service traffic split (what Knative's activator/ingress does for KServe): a
// reverse proxy on its own loopback port choosing a revision per request by smooth
// weighted round-robin, streaming bodies both ways without buffering (SSE passes through
// chunk by chunk), and naming the revision that answered in `x-qwenops-revision`. With one
// target it is also a revision's sidecar, where a service mesh's fault injection applies:
// a fixed delay before forwarding and/or an HTTP error instead of forwarding, each for a
// share of requests chosen by a deterministic rotation (exact shares, repeatable tests).

export const REVISION_HEADER = 'x-qwenops-revision';

export interface ProxyTarget {
  revision: string;
  host: string;
  port: number;
}

export interface RevisionCounters {
  requests: number;
  inflight: number;
  /** Answers by status class ("2xx", "5xx", ...), "error" for no answer. */
  responses: Record<string, number>;
}

/** Istio's HTTPFaultInjection, per revision: delay and abort, each for a share of requests. */
export interface ProxyFault {
  delayMs: number;
  /** Share of requests delayed, 0..100. */
  delayPercent: number;
  /** Share of requests answered with `abortStatus` instead of being forwarded, 0..100. */
  abortPercent: number;
  abortStatus: number;
}

/** Picks exactly `percent` % of calls, spread evenly: call n is picked when floor(n*p) steps. */
class ShareRotation {
  private calls = 0;
  constructor(private readonly percent: number) {}
  next(): boolean {
    const before = Math.floor((this.calls * this.percent) / 100);
    this.calls++;
    return Math.floor((this.calls * this.percent) / 100) > before;
  }
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

function forwardHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

export class TrafficProxy {
  private readonly balancer = new SmoothWeightedRoundRobin<ProxyTarget>();
  private readonly counters = new Map<string, RevisionCounters>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  private readonly server: http.Server;
  private portNumber = 0;
  private fault?: { spec: ProxyFault; delays: ShareRotation; aborts: ShareRotation };

  constructor(
    private readonly service: string,
    private readonly logger: Logger,
    private readonly onResponse?: (revision: string, statusClass: string) => void,
  ) {
    this.server = http.createServer((req, res) => this.forward(req, res));
    this.server.keepAliveTimeout = 75_000;
  }

  get port(): number {
    return this.portNumber;
  }

  /** Listens on `port` (0 = any); falls back to any port when the wanted one is taken. */
  async listen(port: number): Promise<number> {
    const tryListen = (p: number) =>
      new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(p, '127.0.0.1', () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    try {
      await tryListen(port);
    } catch (err) {
      if (port === 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      this.logger.warn({ service: this.service, port }, 'proxy port taken; using another');
      await tryListen(0);
    }
    this.portNumber = (this.server.address() as AddressInfo).port;
    return this.portNumber;
  }

  /** New weights (percent per target); restarts the round-robin cycle. */
  setTargets(entries: Array<{ target: ProxyTarget; weight: number }>): void {
    this.balancer.setWeights(entries.map((e) => ({ item: e.target, weight: e.weight })));
    for (const e of entries) this.countersOf(e.target.revision);
  }

  /** Sets (or clears, with undefined) the fault applied to every request from now on. */
  setFault(fault: ProxyFault | undefined): void {
    const same = JSON.stringify(fault) === JSON.stringify(this.fault?.spec);
    if (same) return;
    this.fault = fault
      ? {
          spec: fault,
          delays: new ShareRotation(fault.delayPercent),
          aborts: new ShareRotation(fault.abortPercent),
        }
      : undefined;
    if (fault) this.logger.info({ service: this.service, fault }, 'fault injection set');
  }

  get currentFault(): ProxyFault | undefined {
    return this.fault?.spec;
  }

  countersOf(revision: string): RevisionCounters {
    let c = this.counters.get(revision);
    if (!c) {
      c = { requests: 0, inflight: 0, responses: {} };
      this.counters.set(revision, c);
    }
    return c;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const fault = this.fault;
    if (!fault) {
      this.forwardNow(req, res);
      return;
    }
    if (fault.aborts.next()) {
      const target = this.balancer.next();
      const status = fault.spec.abortStatus;
      if (target) {
        const counters = this.countersOf(target.revision);
        counters.requests++;
        const statusClass = `${Math.floor(status / 100)}xx`;
        counters.responses[statusClass] = (counters.responses[statusClass] ?? 0) + 1;
        this.onResponse?.(target.revision, statusClass);
      }
      req.resume();
      res.writeHead(status, {
        'content-type': 'application/json',
        ...(target ? { [REVISION_HEADER]: target.revision } : {}),
      });
      res.end(JSON.stringify({ error: { message: 'fault filter abort', code: status } }));
      return;
    }
    if (fault.delays.next() && fault.spec.delayMs > 0) {
      // The request waits here, as in a mesh sidecar; a client that gives up frees it.
      req.pause();
      const timer = setTimeout(() => {
        req.resume();
        this.forwardNow(req, res);
      }, fault.spec.delayMs);
      res.once('close', () => clearTimeout(timer));
      return;
    }
    this.forwardNow(req, res);
  }

  private forwardNow(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (res.destroyed) return;
    const target = this.balancer.next();
    if (!target) {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ error: { message: `service ${this.service} has no ready revision`, code: 503 } }),
      );
      return;
    }
    const counters = this.countersOf(target.revision);
    counters.requests++;
    counters.inflight++;
    let settled = false;
    const settle = (statusClass: string) => {
      if (settled) return;
      settled = true;
      counters.inflight--;
      counters.responses[statusClass] = (counters.responses[statusClass] ?? 0) + 1;
      this.onResponse?.(target.revision, statusClass);
    };
    const upstream = http.request(
      {
        host: target.host,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...forwardHeaders(req.headers), host: `${target.host}:${target.port}` },
        agent: this.agent,
      },
      (answer) => {
        const statusClass = `${Math.floor((answer.statusCode ?? 500) / 100)}xx`;
        res.writeHead(answer.statusCode ?? 502, {
          ...forwardHeaders(answer.headers),
          [REVISION_HEADER]: target.revision,
        });
        res.flushHeaders();
        answer.pipe(res);
        answer.on('end', () => settle(statusClass));
        answer.on('error', () => {
          settle('error');
          res.destroy();
        });
        // The revision cut the connection mid-answer: pass the cut on to the client.
        answer.on('aborted', () => {
          settle('error');
          res.destroy();
        });
      },
    );
    upstream.on('error', (err) => {
      settle('error');
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json', [REVISION_HEADER]: target.revision });
        res.end(
          JSON.stringify({
            error: { message: `revision ${target.revision} unreachable: ${err.message}`, code: 502 },
          }),
        );
      } else {
        res.destroy();
      }
    });
    // The client went away: stop the upstream request too (frees the revision's slot).
    res.on('close', () => {
      if (!res.writableFinished) {
        upstream.destroy();
        settle('error');
      }
    });
    req.pipe(upstream);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    this.agent.destroy();
  }
}
