import { type FieldIssue, InputValidationError } from '../domain/validation.js';
import type { QwenopsConfig } from './config.js';

// What a worker needs configured before it may start in Kubernetes (production) mode. The
// defaults are the embedded stack's stand-ins (the lexical embedder, the embedded database
// on loopback, the pod-local fs store): right on a laptop, silently wrong in a cluster, where
// the nightly re-index would index with the stand-in embedder or fail at 2 a.m. on a database
// address nobody configured. So on Kubernetes each missing setting stops the worker at start,
// named by its environment variable; the embedded (sandbox) mode keeps its defaults.

/** Task queues by their TASK_QUEUES key (workflows/definitions.ts), as workers/run.ts names them. */
export type WorkerQueueKey = 'default' | 'gpuJobs' | 'cluster' | 'knowledge';

/** Every missing production setting for a worker polling `queues`, each named by its env variable. */
export function productionSettingsProblems(
  config: Pick<QwenopsConfig, 'cluster' | 'store' | 'knowledge'>,
  queues: readonly WorkerQueueKey[],
): FieldIssue[] {
  if (config.cluster.kind !== 'kubernetes') return [];
  const issues: FieldIssue[] = [];
  if (config.store.kind !== 'minio') {
    issues.push({
      path: 'store.kind (QWENOPS_STORE)',
      message:
        'must be "minio" in Kubernetes mode: the fs store is pod-local, so GPU Jobs, InferenceServices and other workers cannot read what it writes',
    });
  }
  if (queues.includes('knowledge')) {
    if (!config.knowledge.databaseUrl) {
      issues.push({
        path: 'knowledge.databaseUrl (QWENOPS_DATABASE_URL)',
        message:
          'is required in Kubernetes mode for the knowledge task queue (the embedded database on 127.0.0.1 is the laptop stack default)',
      });
    }
    if (!config.knowledge.embeddingsUrl) {
      issues.push({
        path: 'knowledge.embeddingsUrl (QWENOPS_EMBEDDINGS_URL)',
        message:
          'is required in Kubernetes mode for the knowledge task queue (without it the lexical stand-in embedder would index the knowledge base)',
      });
    }
  }
  return issues;
}

/** Throws InputValidationError listing every missing production setting (Kubernetes mode only). */
export function assertProductionSettings(
  config: Pick<QwenopsConfig, 'cluster' | 'store' | 'knowledge'>,
  queues: readonly WorkerQueueKey[],
): void {
  const issues = productionSettingsProblems(config, queues);
  if (issues.length > 0) {
    throw new InputValidationError(`configuration for Kubernetes mode (QWENOPS_CLUSTER=kubernetes)`, issues);
  }
}
