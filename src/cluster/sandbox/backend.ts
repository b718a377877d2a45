import { Agent, type Dispatcher, request } from 'undici';
import { DEFAULT_ROLLOUT_LEASE_SECONDS } from '../../domain/lease.js';
import type { ServingRef, ServingRevisionSpec, ServingStatus } from '../../domain/serving-revision.js';
import type { Logger } from '../../observability/logger.js';
import {
  type CanaryOptions,
  type ClaimOutcome,
  type ClusterBackend,
  ClusterError,
  type ClusterErrorCode,
  type GpuJobSpec,
  type JobStatus,
  type RenewOutcome,
  type ServiceLease,
  type WaitOptions,
} from '../port.js';
import { type ApiErrorBody, type JobView, jobPath, servicePath } from './api.js';
import { readTokenFile } from './auth.js';
import type { FaultRules } from './serving-state.js';

// The cluster port over the sandbox daemon's HTTP API. Transport failures (refused,
// reset, timeouts) and 5xx are retryable ClusterErrors; 4xx carry the daemon's code and
// message and are not. Waits poll (every ~200 ms by default) until the deadline or abort.

export interface SandboxBackendOptions {
  /** Control API of the daemon, e.g. http://127.0.0.1:7480 */
  url: string;
  pollIntervalMs?: number;
  /** Per-call timeout (ms). */
  requestTimeoutMs?: number;
  /** Debug log of failed calls (the caller decides what to do with the errors). */
  logger?: Logger;
  /**
   * The daemon's bearer-token file (<daemon state dir>/api-token, config
   * cluster.sandboxTokenFile); read when first needed and again after a 401 (a restarted
   * daemon has a new token).
   */
  tokenFile?: string;
  /** The token itself, instead of a file. */
  token?: string;
}

const CODES = new Set<ClusterErrorCode>([
  'NotFound',
  'Conflict',
  'Forbidden',
  'Invalid',
  'Unsupported',
  'Timeout',
  'Unavailable',
  'Aborted',
]);

function abortError(signal: AbortSignal, what: string): ClusterError {
  return new ClusterError('Aborted', `${what}: aborted (${String(signal.reason ?? 'signal')})`, false, {
    cause: signal.reason,
  });
}

/** Sleeps `ms`, rejecting early with an Aborted ClusterError when the signal fires. */
function sleep(ms: number, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal, what));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal as AbortSignal, what));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class SandboxClusterBackend implements ClusterBackend {
  readonly kind = 'sandbox' as const;
  private readonly base: string;
  private readonly dispatcher: Dispatcher;
  private readonly pollIntervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly logger: Logger | undefined;
  private readonly tokenFile: string | undefined;
  private token: string | undefined;

  constructor(options: SandboxBackendOptions) {
    this.logger = options.logger;
    this.tokenFile = options.tokenFile;
    this.token = options.token;
    this.base = options.url.replace(/\/+$/, '');
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.dispatcher = new Agent({ keepAliveTimeout: 10_000, connections: 16 });
  }

  /** One API call; `accept` lists statuses that are answers rather than errors (404 for get, 409 for create). */
  private async call(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    accept: number[] = [],
    signal?: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    const url = `${this.base}${path}`;
    const first = this.authorization();
    let result = await this.send(method, path, url, body, first, signal);
    if (result.status === 401 && this.tokenFile) {
      // A restarted daemon wrote a new token: read it again once.
      this.token = undefined;
      const again = this.authorization();
      if (again.authorization !== first.authorization)
        result = await this.send(method, path, url, body, again, signal);
    }
    const { status, text } = result;
    if ((status >= 200 && status < 300) || accept.includes(status)) return { status, text };
    let code: ClusterErrorCode = status >= 500 ? 'Unavailable' : 'Invalid';
    if (status === 401) code = 'Forbidden';
    let message = text.slice(0, 500);
    try {
      const parsed = JSON.parse(text) as ApiErrorBody;
      if (CODES.has(parsed.error.code)) code = parsed.error.code;
      message = parsed.error.message;
    } catch {
      // Not our JSON (a proxy in between?): keep the excerpt.
    }
    const retryable = status >= 500 || status === 429 || (code === 'Unavailable' && status === 503);
    throw new ClusterError(code, `${method} ${path}: ${status} ${message}`, retryable);
  }

  /** The Authorization header, from the token or the token file (none when neither is set). */
  private authorization(): Record<string, string> {
    if (this.token === undefined && this.tokenFile) {
      try {
        this.token = readTokenFile(this.tokenFile);
      } catch (err) {
        throw new ClusterError(
          'Forbidden',
          `cannot read the sandbox API token ${this.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          false,
        );
      }
    }
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private async send(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    url: string,
    body: unknown,
    auth: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        method,
        dispatcher: this.dispatcher,
        headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        headersTimeout: this.requestTimeoutMs,
        bodyTimeout: this.requestTimeoutMs,
        signal,
      });
    } catch (err) {
      if (signal?.aborted) throw abortError(signal, `${method} ${path}`);
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
      this.logger?.debug({ err, method, path }, 'sandbox cluster call failed');
      throw new ClusterError(
        'Unavailable',
        `sandbox cluster at ${this.base} unreachable (${code}: ${(err as Error).message}); is the daemon running?`,
        true,
        { cause: err },
      );
    }
    const text = await response.body.text().catch(() => '');
    return { status: response.statusCode, text };
  }

  private async json<T>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    accept: number[] = [],
  ): Promise<{ status: number; value: T | undefined }> {
    const { status, text } = await this.call(method, path, body, accept);
    if (status === 404) return { status, value: undefined };
    try {
      return { status, value: JSON.parse(text) as T };
    } catch {
      throw new ClusterError(
        'Unavailable',
        `${method} ${path}: answer is not JSON: ${text.slice(0, 200)}`,
        true,
      );
    }
  }

  // ---- Jobs ----

  async createJob(spec: GpuJobSpec): Promise<{ status: JobStatus; adopted: boolean }> {
    const { status, value } = await this.json<JobView>('POST', jobPath(spec.namespace), spec, [409]);
    return { status: (value as JobView).status, adopted: status === 409 };
  }

  async getJob(namespace: string, name: string): Promise<JobStatus | undefined> {
    const { value } = await this.json<JobView>('GET', jobPath(namespace, name), undefined, [404]);
    return value?.status;
  }

  /** The daemon's full view of a Job (launches, pid, exit code), for tests and diagnostics. */
  async jobView(namespace: string, name: string): Promise<JobView | undefined> {
    return (await this.json<JobView>('GET', jobPath(namespace, name), undefined, [404])).value;
  }

  async waitForJob(namespace: string, name: string, options: WaitOptions): Promise<JobStatus> {
    const what = `waiting for job ${namespace}/${name}`;
    let last = '';
    for (;;) {
      if (options.signal?.aborted) throw abortError(options.signal, what);
      const status = await this.getJob(namespace, name);
      if (!status) throw new ClusterError('NotFound', `job ${namespace}/${name} not found (deleted?)`, false);
      const summary = [
        `job ${name}: ${status.phase}`,
        `attempt ${status.attempts}`,
        status.progress?.percent !== undefined ? `${Math.round(status.progress.percent)}%` : '',
        status.progress?.message ?? '',
      ]
        .filter(Boolean)
        .join(', ');
      if (summary !== last) {
        last = summary;
        options.onProgress?.(summary);
      }
      if (status.phase === 'Succeeded' || status.phase === 'Failed') return status;
      await this.pause(options, what, `${summary}; ${status.message ?? ''}`);
    }
  }

  private async pause(options: WaitOptions, what: string, lastSeen: string): Promise<void> {
    const left = options.deadline - Date.now();
    if (left <= 0)
      throw new ClusterError('Timeout', `${what}: deadline passed (last seen: ${lastSeen})`, true);
    await sleep(Math.min(this.pollIntervalMs, left), options.signal, what);
  }

  async jobLogs(namespace: string, name: string, tailLines: number): Promise<string> {
    const { status, text } = await this.call(
      'GET',
      `${jobPath(namespace, name)}/log?tailLines=${Math.max(0, Math.floor(tailLines))}`,
      undefined,
      [404],
    );
    if (status === 404) throw new ClusterError('NotFound', `job ${namespace}/${name} not found`, false);
    return text;
  }

  async deleteJob(namespace: string, name: string): Promise<boolean> {
    const { status } = await this.call('DELETE', jobPath(namespace, name), undefined, [404]);
    return status !== 404;
  }

  // ---- Serving ----

  async getService(ref: ServingRef): Promise<ServingStatus | undefined> {
    const { value } = await this.json<{ status: ServingStatus }>(
      'GET',
      servicePath(ref.namespace, ref.name),
      undefined,
      [404],
    );
    return value?.status;
  }

  async deleteService(ref: ServingRef): Promise<boolean> {
    const { status } = await this.call('DELETE', servicePath(ref.namespace, ref.name), undefined, [404]);
    return status !== 404;
  }

  async claimService(
    ref: ServingRef,
    owner: string,
    leaseSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
  ): Promise<ClaimOutcome> {
    const { value } = await this.json<ClaimOutcome>('POST', `${servicePath(ref.namespace, ref.name)}/lease`, {
      owner,
      leaseSeconds,
    });
    return value as ClaimOutcome;
  }

  async renewService(
    ref: ServingRef,
    owner: string,
    leaseSeconds = DEFAULT_ROLLOUT_LEASE_SECONDS,
  ): Promise<RenewOutcome> {
    const { value } = await this.json<RenewOutcome>('PUT', `${servicePath(ref.namespace, ref.name)}/lease`, {
      owner,
      leaseSeconds,
    });
    return value as RenewOutcome;
  }

  async releaseService(ref: ServingRef, owner: string): Promise<void> {
    await this.call(
      'DELETE',
      `${servicePath(ref.namespace, ref.name)}/lease?owner=${encodeURIComponent(owner)}`,
    );
  }

  async getServiceLease(ref: ServingRef): Promise<ServiceLease | undefined> {
    const { value } = await this.json<{ lease: ServiceLease | null }>(
      'GET',
      `${servicePath(ref.namespace, ref.name)}/lease`,
    );
    return value?.lease ?? undefined;
  }

  async breakServiceLease(ref: ServingRef, expected: ServiceLease): Promise<boolean> {
    if (!expected.version) return false;
    const { value } = await this.json<{ broken: boolean }>(
      'DELETE',
      `${servicePath(ref.namespace, ref.name)}/lease?version=${encodeURIComponent(expected.version)}`,
    );
    return value?.broken === true;
  }

  private async serving(method: 'POST' | 'PUT', path: string, body: unknown): Promise<ServingStatus> {
    return (await this.json<ServingStatus>(method, path, body)).value as ServingStatus;
  }

  deployService(ref: ServingRef, revision: ServingRevisionSpec): Promise<ServingStatus> {
    return this.serving('PUT', servicePath(ref.namespace, ref.name), {
      deploymentMode: ref.deploymentMode,
      revision,
    });
  }

  startCanary(
    ref: ServingRef,
    revision: ServingRevisionSpec,
    percent: number,
    options: CanaryOptions = {},
  ): Promise<ServingStatus> {
    return this.serving('POST', `${servicePath(ref.namespace, ref.name)}/canary`, {
      deploymentMode: ref.deploymentMode,
      revision,
      percent,
      ...(options.baseline ? { baseline: true } : {}),
    });
  }

  setCanaryTraffic(ref: ServingRef, percent: number): Promise<ServingStatus> {
    return this.serving('PUT', `${servicePath(ref.namespace, ref.name)}/canary/traffic`, { percent });
  }

  promoteCanary(ref: ServingRef): Promise<ServingStatus> {
    return this.serving('POST', `${servicePath(ref.namespace, ref.name)}/promote`, {});
  }

  rollbackCanary(ref: ServingRef): Promise<ServingStatus> {
    return this.serving('POST', `${servicePath(ref.namespace, ref.name)}/rollback`, {});
  }

  async waitForTraffic(
    ref: ServingRef,
    canaryPercent: number | undefined,
    options: WaitOptions,
  ): Promise<ServingStatus> {
    const what = `waiting for ${ref.namespace}/${ref.name} to be Ready with canary at ${canaryPercent ?? 'none'}`;
    let last = '';
    for (;;) {
      if (options.signal?.aborted) throw abortError(options.signal, what);
      const status = await this.getService(ref);
      if (!status)
        throw new ClusterError('NotFound', `inferenceservice ${ref.namespace}/${ref.name} not found`, false);
      const notReady = status.conditions
        .filter((c) => c.status !== 'True')
        .map((c) => `${c.type}: ${c.message ?? c.reason}`);
      const summary = `${ref.name}: ready=${status.ready}, canary=${status.canaryPercent ?? 'none'}${notReady.length ? ` (${notReady.join('; ')})` : ''}`;
      if (summary !== last) {
        last = summary;
        options.onProgress?.(summary);
      }
      if (status.ready && status.canaryPercent === canaryPercent) return status;
      // A revision that can never become ready (crash loop, progress deadline, storage
      // initializer) ends the wait now with its cause; waiting longer changes nothing.
      const failed = status.conditions.find((c) => c.reason === 'RevisionFailed');
      if (failed) {
        throw new ClusterError(
          'Invalid',
          `inferenceservice ${ref.namespace}/${ref.name}: ${failed.message ?? 'a revision failed'}`,
          false,
        );
      }
      await this.pause(options, what, summary);
    }
  }

  /** Sandbox only: sets the service's fault-injection rules (a mesh's VirtualService fault). */
  async setFaults(ref: ServingRef, rules: FaultRules): Promise<FaultRules> {
    const { text } = await this.call('PUT', `${servicePath(ref.namespace, ref.name)}/faults`, rules);
    return JSON.parse(text) as FaultRules;
  }

  async clearFaults(ref: ServingRef): Promise<void> {
    await this.call('DELETE', `${servicePath(ref.namespace, ref.name)}/faults`);
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
