import {
  BatchV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  createConfiguration,
  type KubeConfig,
  Observable,
  type ObservableMiddleware,
  type Middleware as PromiseMiddleware,
  ServerConfiguration,
} from '@kubernetes/client-node';
import { retryAfterMs } from '../../domain/http.js';
import { ClusterError } from '../port.js';
import { apiStatus, isTransient, statusCode, toClusterError } from './errors.js';

// The typed API clients the backend uses, built on one KubeConfig, plus the retry policy
// for transient failures (429, 5xx, connection errors) with exponential backoff and
// Retry-After. Conflicts are not retried here: only the caller can re-read and re-apply.

export interface KubeClients {
  kubeConfig: KubeConfig;
  batch: BatchV1Api;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
}

export function createKubeClients(kubeConfig: KubeConfig, middleware: PromiseMiddleware[] = []): KubeClients {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new ClusterError('Invalid', 'kubeconfig has no current cluster', false);
  // Same wiring as KubeConfig.makeApiClient; middleware is added per call (see below).
  const configuration = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kubeConfig },
  });
  return {
    kubeConfig,
    batch: withMiddleware(new BatchV1Api(configuration), middleware),
    core: withMiddleware(new CoreV1Api(configuration), middleware),
    custom: withMiddleware(new CustomObjectsApi(configuration), middleware),
    coordination: withMiddleware(new CoordinationV1Api(configuration), middleware),
  };
}

/**
 * client-node 1.3's generated APIs run only call-time middleware (configured middleware is
 * skipped when a call passes no options), so every call gets the middleware as its options.
 */
function withMiddleware<T extends object>(api: T, middleware: PromiseMiddleware[]): T {
  if (middleware.length === 0) return api;
  const wrapped: ObservableMiddleware[] = middleware.map((m) => ({
    pre: (context) => new Observable(m.pre(context)),
    post: (context) => new Observable(m.post(context)),
  }));
  const options = { middleware: wrapped, middlewareMergeStrategy: 'append' };
  return new Proxy(api, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return (param: unknown, callOptions?: unknown) => value.call(target, param, callOptions ?? options);
    },
  });
}

export interface RetryPolicy {
  /** Total attempts for one call, first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 200, maxDelayMs: 5_000 };

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal as AbortSignal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortError(signal: AbortSignal): ClusterError {
  const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? 'aborted');
  return new ClusterError('Aborted', `wait aborted: ${reason}`, false);
}

function retryAfterOf(err: unknown): number | undefined {
  const headers = (err as { headers?: Record<string, string> }).headers;
  return retryAfterMs(headers?.['retry-after']);
}

/**
 * Runs one API call, retrying transient failures with jittered exponential backoff. Every
 * failure leaves as a ClusterError (`action` names what was attempted).
 */
export async function callApi<T>(
  action: string,
  call: () => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY,
  signal?: AbortSignal,
): Promise<T> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    try {
      return await call();
    } catch (err) {
      lastError = err;
      if (!isTransient(err) || attempt === policy.attempts) break;
      const backoff = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      const delay = Math.max(retryAfterOf(err) ?? 0, backoff / 2 + Math.random() * (backoff / 2));
      await sleep(Math.min(delay, policy.maxDelayMs), signal);
    }
  }
  throw toClusterError(lastError, action);
}

/** Human-readable reason of an API failure, for logs. */
export function describeApiError(err: unknown): string {
  const status = apiStatus(err);
  return `${statusCode(err) ?? 'network'}: ${status?.message ?? (err instanceof Error ? err.message : String(err))}`;
}
