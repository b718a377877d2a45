import { ApiException } from '@kubernetes/client-node';
import { ClusterError } from '../port.js';

// Maps what the Kubernetes API (or the network under it) says into ClusterError, so
// activities decide retry vs. fail on one flag. 403 names the missing RBAC verb, because
// the fix is a line in k8s/base/rbac.yaml, not a retry.

/** The apiserver's Status object, as far as we read it. */
export interface ApiStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: Array<{ field?: string; message?: string }>;
  };
}

export function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const candidate = err as { statusCode?: unknown; code?: unknown } | undefined;
  if (typeof candidate?.statusCode === 'number') return candidate.statusCode;
  return undefined;
}

export function apiStatus(err: unknown): ApiStatus | undefined {
  if (!(err instanceof ApiException)) return undefined;
  const body: unknown = err.body;
  if (body && typeof body === 'object') return body as ApiStatus;
  if (typeof body === 'string' && body.startsWith('{')) {
    try {
      return JSON.parse(body) as ApiStatus;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export const isNotFound = (err: unknown) => statusCode(err) === 404;
export const isConflict = (err: unknown) => statusCode(err) === 409;
export const isAlreadyExists = (err: unknown) =>
  statusCode(err) === 409 && apiStatus(err)?.reason === 'AlreadyExists';
export const isGone = (err: unknown) => statusCode(err) === 410;

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);

/** Connection-level failures: the apiserver restarting, a dropped connection, a timeout. */
export function isNetworkError(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; current && depth < 5; depth++) {
    const e = current as { code?: unknown; errno?: unknown; type?: unknown; name?: unknown; cause?: unknown };
    if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
    if (typeof e.errno === 'string' && NETWORK_CODES.has(e.errno)) return true;
    if (e.type === 'system' || e.type === 'request-timeout' || e.name === 'FetchError') return true;
    current = e.cause;
  }
  return false;
}

/** Worth retrying with backoff: throttling, server errors, connection failures. */
export function isTransient(err: unknown): boolean {
  const code = statusCode(err);
  if (code !== undefined) return code === 429 || code >= 500;
  return isNetworkError(err);
}

/** "cannot get resource "secrets" in API group "" in the namespace "x"" -> the RBAC rule that is missing. */
export function missingPermission(message: string): string | undefined {
  const m =
    /cannot (\w+) resource "([^"]+)"(?: in API group "([^"]*)")?(?: in the namespace "([^"]+)")?/.exec(
      message,
    );
  if (!m) return undefined;
  const [, verb, resource, group, namespace] = m;
  const qualified = group ? `${resource}.${group}` : (resource as string);
  return `verb "${verb}" on ${qualified}${namespace ? ` in namespace "${namespace}"` : ' (cluster scope)'}`;
}

/** Converts anything thrown by a Kubernetes call into a ClusterError; `action` says what we tried. */
export function toClusterError(err: unknown, action: string): ClusterError {
  if (err instanceof ClusterError) return err;
  const code = statusCode(err);
  const status = apiStatus(err);
  const detail = status?.message ?? (err instanceof Error ? err.message : String(err));
  const options = { cause: err };
  switch (code) {
    case 401:
      return new ClusterError(
        'Forbidden',
        `${action}: the apiserver did not accept the credentials (401)`,
        false,
        options,
      );
    case 403: {
      const missing = missingPermission(detail);
      const hint = missing
        ? `the worker's identity lacks RBAC ${missing}; grant it in k8s/base/rbac.yaml`
        : 'forbidden by RBAC or an admission policy';
      return new ClusterError('Forbidden', `${action}: ${hint} (${detail})`, false, options);
    }
    case 404:
      return new ClusterError('NotFound', `${action}: not found (${detail})`, false, options);
    case 409:
      return new ClusterError('Conflict', `${action}: conflict (${detail})`, true, options);
    case 400:
    case 422:
      return new ClusterError(
        'Invalid',
        `${action}: the apiserver refused the object (${detail})`,
        false,
        options,
      );
    case 429:
      return new ClusterError('Unavailable', `${action}: throttled by the apiserver (429)`, true, options);
    default:
      break;
  }
  if (code !== undefined && code >= 500) {
    return new ClusterError('Unavailable', `${action}: apiserver error ${code} (${detail})`, true, options);
  }
  if (isNetworkError(err)) {
    return new ClusterError('Unavailable', `${action}: apiserver unreachable (${detail})`, true, options);
  }
  if (code !== undefined) {
    return new ClusterError('Invalid', `${action}: unexpected HTTP ${code} (${detail})`, false, options);
  }
  return new ClusterError('Unavailable', `${action}: ${detail}`, true, options);
}
