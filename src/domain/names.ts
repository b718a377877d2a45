// Deterministic, DNS-1123 safe names for every external object a pipeline creates.
// Pure (no node:crypto) so workflows can call it: a retried or replayed step always
// computes the same name, which is what makes check-then-create idempotent.

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const DNS_LABEL_MAX = 63;
export const DNS_SUBDOMAIN_MAX = 253;

/** FNV-1a 32-bit, hex. Enough to keep capped names unique; not a security hash. */
export function fnv1a32(input: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < input.length; i++) {
    hash ^= input.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, '0');
}

/** A short stable digest of arbitrary text (two FNV rounds, 16 hex chars). */
export function shortDigest(input: string): string {
  return fnv1a32(input) + fnv1a32(`${input.length}:${input}`);
}

export function isDnsLabel(name: string): boolean {
  return name.length > 0 && name.length <= DNS_LABEL_MAX && DNS_LABEL.test(name);
}

export function isDnsSubdomain(name: string): boolean {
  return name.length > 0 && name.length <= DNS_SUBDOMAIN_MAX && DNS_SUBDOMAIN.test(name);
}

/** Lower-cases and replaces anything outside [a-z0-9-] with '-', collapsing runs. */
export function slugify(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^-+|-+$/g, '');
}

/**
 * Builds a DNS-1123 label from parts: a readable slug, capped, plus a digest of the
 * *original* parts, so distinct inputs never collide even when slugging merges them
 * ("a-b"/"c" vs "a"/"b-c") or the cap cuts them.
 */
export function dnsName(parts: readonly string[], maxLength = DNS_LABEL_MAX): string {
  if (maxLength < 12) throw new Error('dnsName: maxLength must be at least 12');
  const original = parts.join('\u0000');
  const readable = slugify(parts.map(slugify).filter(Boolean).join('-')) || 'x';
  const digest = fnv1a32(original);
  const room = maxLength - digest.length - 1;
  const head = readable.slice(0, room).replace(/-+$/g, '') || 'x';
  return `${head}-${digest}`;
}

/** The name of the object a workflow stage owns, e.g. a GPU Job or an InferenceService revision. */
export function stageObjectName(workflowId: string, stage: string, maxLength = DNS_LABEL_MAX): string {
  return dnsName([workflowId, stage], maxLength);
}

/** Replaces every character outside [A-Za-z0-9_.-] with '_': one safe segment of an object-store key. */
export function objectKeySegment(value: string): string {
  return value.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** Kubernetes label values: <= 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends. */
export function labelValue(value: string): string {
  return objectKeySegment(value)
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}
