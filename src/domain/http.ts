// HTTP header values shared by every client that talks to a server which may ask it to
// wait: the model hub, the OpenAI client and embedder, the load generator, the
// Kubernetes API client.

/**
 * Retry-After (RFC 9110: delta-seconds or an HTTP date) as milliseconds from `now`;
 * undefined when absent or unparsable. A date in the past is 0. Of a repeated header the
 * first value counts.
 */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim()) * 1000;
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Retry-After in whole seconds, rounded up so a caller never retries early. */
export function retryAfterSeconds(
  value: string | string[] | undefined,
  now = Date.now(),
): number | undefined {
  const ms = retryAfterMs(value, now);
  return ms === undefined ? undefined : Math.ceil(ms / 1000);
}
