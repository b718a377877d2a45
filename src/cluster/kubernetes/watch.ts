import { type KubeConfig, type KubernetesObject, Watch } from '@kubernetes/client-node';
import type { Logger } from '../../observability/logger.js';
import { ClusterError, type WaitOptions } from '../port.js';
import { abortError, type RetryPolicy, sleep } from './client.js';
import { isNetworkError, isTransient, statusCode, toClusterError } from './errors.js';

// Waits for one object to reach a state, the way client-go's informers do it: list (to get
// the state and a resourceVersion), then watch from that resourceVersion; when the watch
// ends (server timeout, apiserver restart) resume from the last resourceVersion seen; when
// the apiserver says 410 Gone (that version was compacted away) list again. Connection
// failures back off and retry until the deadline. Nothing here deletes anything.

/** Counters a backend keeps across waits (logs, metrics, tests). */
export interface WatchStats {
  lists: number;
  watches: number;
  /** Watches the apiserver ended with 410 Gone (resourceVersion compacted): each costs a list. */
  gone: number;
  /** Connection failures (apiserver down or restarting) that were retried. */
  retries: number;
}

export function newWatchStats(): WatchStats {
  return { lists: 0, watches: 0, gone: 0, retries: 0 };
}

export type Evaluation<R> = { done: true; value: R } | { done: false; progress: string };

export interface WatchUntilOptions<T extends KubernetesObject, R> {
  kubeConfig: KubeConfig;
  /** For messages, e.g. "Job qwenops/quantize-abc". */
  what: string;
  /** Collection path, e.g. /apis/batch/v1/namespaces/qwenops/jobs. */
  path: string;
  name: string;
  /** Reads the object (undefined when absent) and the collection's resourceVersion. */
  list: () => Promise<{ item: T | undefined; resourceVersion: string }>;
  /** Decides from one observed state; may throw a ClusterError to stop waiting. */
  evaluate: (item: T | undefined) => Evaluation<R>;
  deadline: number;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
  /** onProgress is repeated at least this often while nothing changes (activity heartbeats). */
  keepAliveMs: number;
  /** Server-side watch timeout; the watch is then resumed from the last resourceVersion. */
  watchTimeoutSeconds: number;
  retry: RetryPolicy;
  logger?: Logger;
  stats?: WatchStats;
}

/** What a backend's waits share: its kubeConfig, retry policy, watch timers, logger and counters. */
export interface WatchSettings {
  clients: { kubeConfig: KubeConfig };
  retry: RetryPolicy;
  watchTimeoutSeconds: number;
  keepAliveMs: number;
  logger?: Logger;
  watchStats: WatchStats;
}

type SharedWatchOptions = Pick<
  WatchUntilOptions<KubernetesObject, unknown>,
  | 'kubeConfig'
  | 'deadline'
  | 'signal'
  | 'onProgress'
  | 'keepAliveMs'
  | 'watchTimeoutSeconds'
  | 'retry'
  | 'logger'
  | 'stats'
>;

/** The watchUntil options that come from the backend's settings and the caller's wait. */
export function watchOptions(settings: WatchSettings, wait: WaitOptions): SharedWatchOptions {
  return {
    kubeConfig: settings.clients.kubeConfig,
    deadline: wait.deadline,
    signal: wait.signal,
    onProgress: wait.onProgress,
    keepAliveMs: settings.keepAliveMs,
    watchTimeoutSeconds: settings.watchTimeoutSeconds,
    retry: settings.retry,
    logger: settings.logger,
    stats: settings.watchStats,
  };
}

type WatchOutcome<R> =
  | { kind: 'done'; value: R }
  | { kind: 'closed' }
  | { kind: 'gone' }
  | { kind: 'failed'; error: unknown };

export async function watchUntil<T extends KubernetesObject, R>(
  options: WatchUntilOptions<T, R>,
): Promise<R> {
  const { signal, deadline } = options;
  const stop = new AbortController();
  let lastProgress = '';
  const report = (message: string) => {
    lastProgress = message;
    options.onProgress?.(message);
  };
  const keepAlive = setInterval(() => {
    if (lastProgress) options.onProgress?.(lastProgress);
  }, options.keepAliveMs);
  const timeoutMs = Math.max(0, deadline - Date.now());
  const deadlineTimer = setTimeout(() => stop.abort(new Error('deadline')), timeoutMs);
  const onAbort = () => stop.abort(signal?.reason ?? new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  const failure = (): ClusterError => {
    if (signal?.aborted) return abortError(signal);
    return new ClusterError(
      'Timeout',
      `${options.what}: deadline passed while waiting${lastProgress ? ` (last state: ${lastProgress})` : ''}`,
      true,
    );
  };
  const watcher = new Watch(options.kubeConfig);
  let failures = 0;
  const stats = options.stats ?? newWatchStats();
  // Right after the apiserver comes back its authorizer may not have synced the RBAC
  // objects yet and answers 401/403 for a moment: while recovering, that is transient.
  let recoveringUntil = 0;
  const warmingUp = (err: unknown) =>
    Date.now() < recoveringUntil &&
    [401, 403].includes(statusCode(err instanceof ClusterError ? err.cause : err) ?? 0);
  const backoff = async (err: unknown) => {
    failures++;
    stats.retries++;
    if (!warmingUp(err)) recoveringUntil = Date.now() + 30_000;
    const delay = Math.min(options.retry.maxDelayMs, options.retry.baseDelayMs * 2 ** Math.min(failures, 8));
    report(
      `apiserver unreachable, retrying in ${delay} ms (${err instanceof Error ? err.message : String(err)})`,
    );
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), stop.signal);
  };
  try {
    if (signal?.aborted) throw abortError(signal);
    for (;;) {
      // List: the current state and where to watch from.
      let listed: { item: T | undefined; resourceVersion: string };
      try {
        stats.lists++;
        listed = await options.list();
      } catch (err) {
        if (stop.signal.aborted) throw failure();
        const cause = err instanceof ClusterError ? err.cause : err;
        if (
          !warmingUp(err) &&
          !(err instanceof ClusterError ? err.retryable : isTransient(err)) &&
          !isNetworkError(cause)
        ) {
          throw toClusterError(err, `list ${options.what}`);
        }
        await backoff(err).catch(() => {
          throw failure();
        });
        continue;
      }
      failures = 0;
      const first = options.evaluate(listed.item);
      if (first.done) return first.value;
      report(first.progress);
      let resourceVersion = listed.resourceVersion;

      // Watch from there until done, or until the apiserver says the version is gone.
      for (;;) {
        if (stop.signal.aborted) throw failure();
        stats.watches++;
        const outcome = await new Promise<WatchOutcome<R>>((resolve) => {
          let settled = false;
          let controller: AbortController | undefined;
          const settle = (value: WatchOutcome<R>) => {
            if (settled) return;
            settled = true;
            stop.signal.removeEventListener('abort', onStop);
            controller?.abort();
            resolve(value);
          };
          const onStop = () => settle({ kind: 'closed' });
          stop.signal.addEventListener('abort', onStop, { once: true });
          watcher
            .watch(
              options.path,
              {
                fieldSelector: `metadata.name=${options.name}`,
                resourceVersion,
                allowWatchBookmarks: true,
                timeoutSeconds: options.watchTimeoutSeconds,
              },
              (type, object: KubernetesObject & { code?: number; message?: string }) => {
                if (settled) return;
                try {
                  if (type === 'ERROR') {
                    if (object?.code === 410) return settle({ kind: 'gone' });
                    return settle({
                      kind: 'failed',
                      error: new ClusterError(
                        'Unavailable',
                        `watch ${options.what}: ${object?.message ?? 'error event'}`,
                        true,
                      ),
                    });
                  }
                  const rv = object?.metadata?.resourceVersion;
                  if (rv) resourceVersion = rv;
                  if (type === 'BOOKMARK') return;
                  const evaluation = options.evaluate(type === 'DELETED' ? undefined : (object as T));
                  if (evaluation.done) return settle({ kind: 'done', value: evaluation.value });
                  if (evaluation.progress !== lastProgress) report(evaluation.progress);
                } catch (err) {
                  settle({ kind: 'failed', error: err });
                }
              },
              (err) => {
                if (!err) return settle({ kind: 'closed' });
                if (statusCode(err) === 410) return settle({ kind: 'gone' });
                settle({ kind: 'failed', error: err });
              },
            )
            .then(
              (c) => {
                controller = c;
                if (settled) c.abort();
              },
              (err) => settle({ kind: 'failed', error: err }),
            );
        });
        if (outcome.kind === 'done') return outcome.value;
        if (stop.signal.aborted) throw failure();
        if (outcome.kind === 'gone') {
          stats.gone++;
          options.logger?.debug({ what: options.what, resourceVersion }, 'watch: 410 Gone, listing again');
          break;
        }
        if (outcome.kind === 'closed') {
          // Normal end of a watch (timeoutSeconds) or a dropped connection: resume from the
          // last resourceVersion, after a pause so a server that keeps closing is not hammered.
          await sleep(100, stop.signal).catch(() => {
            throw failure();
          });
          continue;
        }
        const error = outcome.error;
        if (error instanceof ClusterError && !error.retryable) throw error;
        if (
          error instanceof ClusterError ||
          isTransient(error) ||
          isNetworkError(error) ||
          warmingUp(error)
        ) {
          await backoff(error).catch(() => {
            throw failure();
          });
          // The apiserver may have come back with our resourceVersion compacted: a fresh
          // list is always safe, and cheap for one object.
          break;
        }
        throw toClusterError(error, `watch ${options.what}`);
      }
    }
  } finally {
    clearInterval(keepAlive);
    clearTimeout(deadlineTimer);
    signal?.removeEventListener('abort', onAbort);
    stop.abort();
  }
}
