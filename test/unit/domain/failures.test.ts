import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { toTemporalFailure } from '../../../activities/support.js';
import { ClusterError } from '../../../src/cluster/port.js';
import {
  ADAPTER_FAILURE_FAMILIES,
  FAILURE_CATALOG,
  type FailureType,
  NON_RETRYABLE_FAILURE_TYPES,
} from '../../../src/domain/failures.js';
import { InputValidationError } from '../../../src/domain/validation.js';
import { HubError } from '../../../src/hub/port.js';
import { EmbeddingDimensionError, EmbeddingError } from '../../../src/knowledge/embedders/port.js';
import {
  ConcurrentReindexError,
  LeaseLostError,
  StoreError,
  UnsupportedServerError,
} from '../../../src/knowledge/store/pgvector-store.js';
import { LoadTargetError } from '../../../src/loadtest/endpoint.js';
import { GpuJobFailedError } from '../../../src/services/gpu-jobs.js';
import { ServingLeaseLostError } from '../../../src/services/serving-rollout.js';
import { StorageError } from '../../../src/storage/port.js';
import { NON_RETRYABLE } from '../../../workflows/activity-options.js';
import { FAILURE_TYPES } from '../../../workflows/definitions.js';

// The failure taxonomy holds together: every error a service raises on purpose maps to a
// catalogued type with the catalogued retryability, every catalogued type is produced by
// some code, and the workflows' non-retryable list is the catalog's.

const ROOT = path.resolve(import.meta.dirname, '../../..');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return full.endsWith('.ts') ? [full] : [];
  });
}

const code = ['src', 'activities', 'workflows']
  .flatMap((d) => sources(path.join(ROOT, d)))
  .filter((f) => !f.endsWith(path.join('src', 'domain', 'failures.ts')))
  .map((f) => readFileSync(f, 'utf8'))
  .join('\n');

const ref = { namespace: 'llm-prod', name: 'svc', deploymentMode: 'Serverless' as const };
const classified: Array<[string, Error]> = [
  ['InputValidationError', new InputValidationError('spec', [{ path: 'model', message: 'bad' }])],
  ['GpuJobFailedError', new GpuJobFailedError('job', 'Job job failed: exit 2', 'log')],
  ['ServingLeaseLostError', new ServingLeaseLostError(ref, 'wf', 'other')],
  ['StoreError', new StoreError('deadlock detected')],
  ['ConcurrentReindexError', new ConcurrentReindexError('held by run-1')],
  ['LeaseLostError', new LeaseLostError('taken over')],
  ['UnsupportedServerError', new UnsupportedServerError('no pgvector')],
  ['EmbeddingError (retryable)', new EmbeddingError('503', true)],
  ['EmbeddingDimensionError', new EmbeddingDimensionError('1024 != 768')],
  ['LoadTargetError', new LoadTargetError('refused')],
];

describe('the failure taxonomy', () => {
  it.each(classified)('%s maps to its catalogued type and retryability', (_name, err) => {
    const failure = toTemporalFailure(err) as ApplicationFailure;
    expect(failure).toBeInstanceOf(ApplicationFailure);
    const kind = FAILURE_CATALOG[failure.type as FailureType];
    expect(kind, `type ${failure.type} is not in the catalog`).toBeDefined();
    expect(failure.nonRetryable).toBe(!kind.retryable);
    expect(failure.message).toBe(err.message);
  });

  it('adapter errors keep their per-error retryability and their cause', () => {
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:7480');
    const cases = [
      new ClusterError('Unavailable', 'cannot reach the sandbox', true, { cause: refused }),
      new ClusterError('Forbidden', 'RBAC denies it', false),
      new StorageError('ChecksumMismatch', 'sha256 differs', false),
      new HubError('Unavailable', 'hub 503', true),
    ];
    for (const err of cases) {
      const failure = toTemporalFailure(err) as ApplicationFailure;
      expect(ADAPTER_FAILURE_FAMILIES.some((f) => failure.type === `${f}.${err.code}`)).toBe(true);
      expect(failure.nonRetryable).toBe(!err.retryable);
    }
    expect((toTemporalFailure(cases[0]) as ApplicationFailure).cause?.message).toBe(refused.message);
  });

  it('every catalogued type is produced somewhere in the code', () => {
    const byKey = new Map(Object.entries(FAILURE_TYPES).map(([k, v]) => [v as string, k]));
    for (const type of Object.keys(FAILURE_CATALOG)) {
      const key = byKey.get(type);
      const produced =
        code.includes(`'${type}'`) || (key !== undefined && code.includes(`FAILURE_TYPES.${key}`));
      expect(produced, `${type} is listed but nothing produces it`).toBe(true);
    }
  });

  it('every failure type the code names is catalogued', () => {
    const named = [
      ...code.matchAll(/ApplicationFailure\.create\(\{[^}]*?\btype: '([A-Z][A-Za-z]+)'/gs),
      ...code.matchAll(/new CatalogedError\(\s*'([A-Z][A-Za-z]+)'/gs),
    ].map((m) => m[1] as string);
    expect(named).toContain('ServiceUnreachable');
    const declared = Object.values(FAILURE_TYPES) as string[];
    for (const type of [...named, ...declared]) {
      expect(Object.keys(FAILURE_CATALOG), `${type} is not catalogued`).toContain(type);
    }
  });

  it("the workflows' non-retryable list is the catalog's", () => {
    expect([...NON_RETRYABLE].sort()).toEqual([...NON_RETRYABLE_FAILURE_TYPES].sort());
    expect(NON_RETRYABLE).toContain('InvalidInput');
    expect(NON_RETRYABLE).not.toContain('StoreUnavailable');
  });
});
