import { ApiException } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { isTransient, missingPermission, toClusterError } from '../../../src/cluster/kubernetes/errors.js';

const api = (code: number, message: string, reason = '') =>
  new ApiException(
    code,
    'Unknown API Status Code!',
    JSON.stringify({ kind: 'Status', code, message, reason }),
    {},
  );

describe('toClusterError', () => {
  it('names the missing RBAC verb on 403 and is not retryable', () => {
    const error = toClusterError(
      api(
        403,
        'jobs.batch "x" is forbidden: User "system:serviceaccount:qwenops:qwenops-worker" cannot delete resource "jobs" in API group "batch" in the namespace "qwenops"',
      ),
      'delete Job qwenops/x',
    );
    expect(error).toMatchObject({ code: 'Forbidden', retryable: false });
    expect(error.message).toContain('lacks RBAC verb "delete" on jobs.batch in namespace "qwenops"');
    expect(error.message).toContain('k8s/base/rbac.yaml');
  });

  it('classifies the other answers', () => {
    expect(toClusterError(api(404, 'not found'), 'get')).toMatchObject({
      code: 'NotFound',
      retryable: false,
    });
    expect(toClusterError(api(409, 'the object has been modified'), 'update')).toMatchObject({
      code: 'Conflict',
      retryable: true,
    });
    expect(toClusterError(api(422, 'spec.x: Invalid value'), 'create')).toMatchObject({
      code: 'Invalid',
      retryable: false,
    });
    expect(toClusterError(api(429, 'too many requests'), 'list')).toMatchObject({
      code: 'Unavailable',
      retryable: true,
    });
    expect(toClusterError(api(503, 'etcd timeout'), 'list')).toMatchObject({
      code: 'Unavailable',
      retryable: true,
    });
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
    expect(toClusterError(refused, 'get')).toMatchObject({ code: 'Unavailable', retryable: true });
  });

  it('retries only throttling, server errors and connection failures', () => {
    expect(isTransient(api(429, ''))).toBe(true);
    expect(isTransient(api(500, ''))).toBe(true);
    expect(isTransient(api(403, ''))).toBe(false);
    expect(isTransient(api(409, ''))).toBe(false);
    expect(isTransient(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBe(true);
  });

  it('parses cluster-scoped and core-group denials', () => {
    expect(
      missingPermission('User "u" cannot delete resource "namespaces" in API group "" at the cluster scope'),
    ).toBe('verb "delete" on namespaces (cluster scope)');
    expect(
      missingPermission('User "u" cannot get resource "secrets" in API group "" in the namespace "qwenops"'),
    ).toBe('verb "get" on secrets in namespace "qwenops"');
  });
});
