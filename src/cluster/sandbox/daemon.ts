import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import type { z } from 'zod';
import { InputValidationError, issuesFromZod } from '../../domain/validation.js';
import type { Logger } from '../../observability/logger.js';
import { ClusterError, type JobTemplateName } from '../port.js';
import {
  type ApiErrorBody,
  canaryBodySchema,
  deployBodySchema,
  faultRulesSchema,
  gpuJobSpecSchema,
  HTTP_STATUS_OF,
  JOBS_PATH,
  leaseBodySchema,
  SCRAPE_TARGETS_PATH,
  SERVING_PATH,
  trafficBodySchema,
} from './api.js';
import { bearerMatches, writeNewToken } from './auth.js';
import { createSandboxEngine } from './engine.js';
import { assertSpecEnv, EnvNotAllowedError } from './env-policy.js';
import { JobManager } from './job-manager.js';
import { readJsonFile, removeFile, writeJsonAtomic } from './json-files.js';
import { isOurProcess } from './process-group.js';
import type { SandboxEngineName } from './revision-runtime.js';
import type { SandboxSecrets } from './secrets.js';
import { ServingManager } from './serving-manager.js';

// The sandbox cluster daemon: a long-lived local process that plays a Kubernetes cluster
// with KServe for the embedded stack. Jobs and serving revisions are its child process
// groups, so they outlive the workers that asked for them (a SIGKILLed worker changes
// nothing here); its control API is HTTP JSON on loopback (./api.ts).

export interface SandboxDaemonOptions {
  port: number;
  host?: string;
  stateDir: string;
  secrets: SandboxSecrets;
  /** Environment passed to Jobs and revisions (see passThroughEnv). */
  childEnv: NodeJS.ProcessEnv;
  jobCommands?: Partial<Record<JobTemplateName, string[]>>;
  /** simulator (default) or vllm: real jobs/ entrypoints and vLLM servers on the CPU. */
  engine?: SandboxEngineName;
  /** Exits before first readiness after which a revision has failed (default 3). */
  crashLimit?: number;
  /** Longest a revision may take to become ready, seconds (Knative's default: 600). */
  progressDeadlineSeconds?: number;
  retryBackoffMs?: number;
  killGraceMs?: number;
  drainMs?: number;
  logger: Logger;
}

export interface SandboxDaemon {
  url: string;
  port: number;
  /** Where the control API's bearer token is (0600; a new token at every start). */
  tokenFile: string;
  close(): Promise<void>;
}

// What a Job or revision inherits from the daemon: the store settings and simulator knobs
// (QWENOPS_STORE*, QWENOPS_S3_*, QWENOPS_SIM_*, QWENOPS_VLLM_*, log level) and the basics a
// process needs.
const PASS_THROUGH =
  /^(QWENOPS_(SIM_|VLLM_|STORE|S3_|LOG_LEVEL|CONFIG$)|PATH$|HOME$|LANG$|LC_|TZ$|TMPDIR$|NODE_OPTIONS$)/;

export function passThroughEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && PASS_THROUGH.test(name)) out[name] = value;
  }
  // Children run from the repository root: relative store paths must mean what they meant here.
  if (out.QWENOPS_STORE_DIR) out.QWENOPS_STORE_DIR = path.resolve(out.QWENOPS_STORE_DIR);
  if (out.QWENOPS_CONFIG) out.QWENOPS_CONFIG = path.resolve(out.QWENOPS_CONFIG);
  return out;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(body.error.message);
  }
}

function parseBody<T extends z.ZodType>(subject: string, schema: T, body: unknown): z.output<T> {
  const result = schema.safeParse(body);
  if (!result.success) throw new InputValidationError(subject, issuesFromZod(result.error));
  return result.data;
}

async function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 4 * 1024 * 1024)
      throw new InputValidationError('request body', [{ path: '', message: 'over 4 MiB' }]);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new InputValidationError('request body', [
      { path: '', message: `malformed JSON (${(err as Error).message})` },
    ]);
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function assertRevisionEnv(subject: string, env: Record<string, string>): void {
  assertSpecEnv(
    subject,
    Object.keys(env).map((name) => ({ field: `revision.env.${name}`, name })),
  );
}

const notFound = (what: string) =>
  new HttpError(404, { error: { code: 'NotFound', message: `${what} not found` } });

export async function startSandboxDaemon(options: SandboxDaemonOptions): Promise<SandboxDaemon> {
  const { logger, stateDir } = options;
  const lockFile = path.join(stateDir, 'daemon.json');
  const previous = await readJsonFile<{ pid: number; url: string }>(lockFile);
  if (previous && previous.pid !== process.pid && isOurProcess(previous.pid, 'sandbox/main')) {
    throw new Error(
      `another sandbox daemon (pid ${previous.pid}, ${previous.url}) uses state dir ${stateDir}; stop it or pick another --state-dir`,
    );
  }

  // A fresh token per start: clients read it from the file (only this user can).
  const { token, file: tokenFile } = await writeNewToken(stateDir);

  const registry = new Registry();
  const launches = new Counter({
    name: 'qwenops_sandbox_job_launches_total',
    help: 'Job processes started, by template (a retried attempt counts, an adopted create does not).',
    labelNames: ['template'],
    registers: [registry],
  });
  const proxyResponses = new Counter({
    name: 'qwenops_sandbox_proxy_responses_total',
    help: 'Requests the traffic proxies forwarded, by service, revision and status class.',
    labelNames: ['service', 'revision', 'code'],
    registers: [registry],
  });

  const engine = createSandboxEngine({
    name: options.engine ?? 'simulator',
    stateDir,
    childEnv: options.childEnv,
    secrets: options.secrets,
    jobCommands: options.jobCommands ?? {},
  });
  logger.info({ engine: engine.name, jobCommands: engine.jobCommands }, 'sandbox engine');
  const jobs = new JobManager({
    stateDir,
    jobCommands: engine.jobCommands,
    baseEnv: { ...options.childEnv, ...engine.jobEnv },
    workDir: engine.workDir,
    secrets: options.secrets,
    retryBackoffMs: options.retryBackoffMs ?? 1000,
    killGraceMs: options.killGraceMs ?? 5000,
    logger,
    onLaunch: (spec) => launches.inc({ template: spec.template }),
  });
  const serving = new ServingManager({
    stateDir,
    baseEnv: options.childEnv,
    killGraceMs: options.killGraceMs ?? 5000,
    drainMs: options.drainMs ?? 30_000,
    runtime: engine.runtime,
    limits: {
      crashLimit: options.crashLimit ?? 3,
      progressDeadlineMs: (options.progressDeadlineSeconds ?? 600) * 1000,
    },
    logger,
    onProxyResponse: (service, revision, code) => proxyResponses.inc({ service, revision, code }),
  });
  new Gauge({
    name: 'qwenops_sandbox_jobs',
    help: 'Jobs the sandbox knows, by phase.',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      for (const [phase, n] of Object.entries(jobs.counts())) this.set({ phase }, n);
    },
  });
  await jobs.init();
  await serving.init();

  const jobRoute = new RegExp(`^${JOBS_PATH}/namespaces/([^/]+)/jobs(?:/([^/]+)(/log)?)?$`);
  const serviceRoute = new RegExp(
    `^${SERVING_PATH}/namespaces/([^/]+)/inferenceservices/([^/]+)(/canary|/canary/traffic|/promote|/rollback|/lease|/faults)?$`,
  );

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const method = req.method ?? 'GET';
    const p = url.pathname;

    if (p === '/healthz' && method === 'GET')
      return send(res, 200, { status: 'ok', pid: process.pid, stateDir });
    if (p === '/metrics' && method === 'GET') {
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(await registry.metrics());
      return;
    }
    // Prometheus HTTP service discovery: every revision server, labelled with its revision.
    if (p === SCRAPE_TARGETS_PATH && method === 'GET') return send(res, 200, serving.scrapeTargets());

    // Everything else needs the bearer token. Left open above, read-only and secret-free:
    // liveness, the daemon's own metrics, and the scrape-target list (Prometheus' http_sd
    // could send the token, but it changes at every daemon start; the list holds only
    // loopback addresses and revision labels).
    if (!bearerMatches(req.headers.authorization, token)) {
      res.setHeader('www-authenticate', 'Bearer realm="qwenops-sandbox"');
      throw new HttpError(401, {
        error: {
          code: 'Forbidden',
          message: `unauthenticated: send "Authorization: Bearer <token>" with the token in ${tokenFile}`,
        },
      });
    }

    if (p === `${JOBS_PATH}/jobs` && method === 'GET') return send(res, 200, { items: await jobs.list() });
    if (p === `${SERVING_PATH}/inferenceservices` && method === 'GET')
      return send(res, 200, { items: serving.list() });

    const jobMatch = jobRoute.exec(p);
    if (jobMatch) {
      const namespace = decodeURIComponent(jobMatch[1] as string);
      const name = jobMatch[2] === undefined ? undefined : decodeURIComponent(jobMatch[2]);
      const isLog = jobMatch[3] !== undefined;
      if (name === undefined && method === 'POST') {
        const spec = parseBody('job spec', gpuJobSpecSchema, await readJsonBody(req));
        assertSpecEnv('job spec', [
          ...Object.keys(spec.env).map((name) => ({ field: `env.${name}`, name })),
          ...spec.secretEnv.map((ref, i) => ({ field: `secretEnv.${i}.name (${ref.name})`, name: ref.name })),
        ]);
        if (spec.namespace !== namespace) {
          throw new InputValidationError('job spec', [
            { path: 'namespace', message: `must match the path namespace ${namespace}` },
          ]);
        }
        const { view, adopted } = await jobs.create(spec);
        return send(res, adopted ? 409 : 201, view);
      }
      if (name !== undefined && isLog && method === 'GET') {
        const tail = Math.min(100_000, Math.max(0, Number(url.searchParams.get('tailLines') ?? 100) || 0));
        const text = await jobs.logs(namespace, name, tail);
        if (text === undefined) throw notFound(`job ${namespace}/${name}`);
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(text);
        return;
      }
      if (name !== undefined && !isLog && method === 'GET') {
        const view = await jobs.get(namespace, name);
        if (!view) throw notFound(`job ${namespace}/${name}`);
        return send(res, 200, view);
      }
      if (name !== undefined && !isLog && method === 'DELETE') {
        if (!(await jobs.delete(namespace, name))) throw notFound(`job ${namespace}/${name}`);
        return send(res, 200, { deleted: true });
      }
    }

    const serviceMatch = serviceRoute.exec(p);
    if (serviceMatch) {
      const namespace = decodeURIComponent(serviceMatch[1] as string);
      const name = decodeURIComponent(serviceMatch[2] as string);
      const action = serviceMatch[3];
      const subject = `inferenceservice ${namespace}/${name}`;
      if (action === undefined && method === 'GET') {
        const view = serving.view(namespace, name);
        if (!view) throw notFound(subject);
        return send(res, 200, view);
      }
      if (action === undefined && method === 'PUT') {
        const body = parseBody('deploy request', deployBodySchema, await readJsonBody(req));
        assertRevisionEnv('deploy request', body.revision.env);
        return send(res, 200, await serving.deploy(namespace, name, body.deploymentMode, body.revision));
      }
      if (action === undefined && method === 'DELETE') {
        if (!(await serving.deleteService(namespace, name))) throw notFound(subject);
        return send(res, 200, { deleted: true });
      }
      if (action === '/canary' && method === 'POST') {
        const body = parseBody('canary request', canaryBodySchema, await readJsonBody(req));
        assertRevisionEnv('canary request', body.revision.env);
        return send(
          res,
          200,
          await serving.startCanary(namespace, name, body.deploymentMode, body.revision, body.percent, {
            baseline: body.baseline,
          }),
        );
      }
      if (action === '/canary/traffic' && method === 'PUT') {
        const body = parseBody('traffic request', trafficBodySchema, await readJsonBody(req));
        return send(res, 200, await serving.setCanaryTraffic(namespace, name, body.percent));
      }
      if (action === '/promote' && method === 'POST')
        return send(res, 200, await serving.promote(namespace, name));
      if (action === '/rollback' && method === 'POST')
        return send(res, 200, await serving.rollback(namespace, name));
      if (action === '/faults' && method === 'PUT') {
        const body = parseBody('fault rules', faultRulesSchema, await readJsonBody(req));
        return send(res, 200, await serving.setFaults(namespace, name, body));
      }
      if (action === '/faults' && method === 'DELETE') {
        return send(res, 200, await serving.setFaults(namespace, name, undefined));
      }
      if (action === '/lease' && method === 'POST') {
        const body = parseBody('lease request', leaseBodySchema, await readJsonBody(req));
        return send(res, 200, await serving.leases.claim(namespace, name, body.owner, body.leaseSeconds));
      }
      if (action === '/lease' && method === 'PUT') {
        const body = parseBody('lease renewal', leaseBodySchema, await readJsonBody(req));
        return send(res, 200, await serving.leases.renew(namespace, name, body.owner, body.leaseSeconds));
      }
      if (action === '/lease' && method === 'GET') {
        return send(res, 200, { lease: serving.leases.get(namespace, name) ?? null });
      }
      if (action === '/lease' && method === 'DELETE') {
        const owner = url.searchParams.get('owner');
        const version = url.searchParams.get('version');
        if (!owner === !version)
          throw new InputValidationError('lease release', [
            {
              path: 'owner',
              message: 'give exactly one query parameter: owner (release) or version (break)',
            },
          ]);
        if (version) return send(res, 200, { broken: await serving.leases.break(namespace, name, version) });
        await serving.leases.release(namespace, name, owner as string);
        return send(res, 200, { released: true });
      }
    }
    throw new HttpError(404, { error: { code: 'NotFound', message: `no route ${method} ${p}` } });
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      let status = 500;
      let body: ApiErrorBody = { error: { code: 'Unavailable', message: (err as Error).message } };
      if (err instanceof HttpError) ({ status, body } = err);
      else if (err instanceof EnvNotAllowedError) {
        status = 422;
        body = { error: { code: 'Invalid', message: err.message } };
      } else if (err instanceof InputValidationError) {
        status = 400;
        body = { error: { code: 'Invalid', message: err.message } };
      } else if (err instanceof ClusterError) {
        status = HTTP_STATUS_OF[err.code];
        body = { error: { code: err.code, message: err.message } };
      } else {
        logger.error({ err, url: req.url }, 'sandbox request failed');
      }
      if (res.headersSent) res.destroy();
      else send(res, status, body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;
  await writeJsonAtomic(lockFile, { pid: process.pid, url, startedAt: new Date().toISOString() });

  return {
    url,
    port,
    tokenFile,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await Promise.all([jobs.shutdown(), serving.shutdown()]);
      await removeFile(lockFile);
    },
  };
}
