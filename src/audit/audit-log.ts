import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import type { ArtifactStore } from '../storage/port.js';

// Every action that changes a cluster, an artifact or an index leaves an audit record:
// who, what, when, on which workflow, and a hash of the payload (never the payload's
// secrets; the seed's audit record keeps prompt hashes the same way). Records are
// immutable objects in the artifact store, one per action, so concurrent writers never
// contend and a retried activity's duplicate record is harmless and visible.

export interface AuditRecord {
  timestamp: string;
  actor: string;
  action: string;
  workflowId?: string;
  /** What was acted on: "job qwenops/promote-x-quantize", "service llm-prod/qwen-7b-chat". */
  target: string;
  /** sha256 of the canonical JSON of `details`. */
  payloadSha256: string;
  details: Record<string, unknown>;
}

export interface AuditLog {
  record(entry: Omit<AuditRecord, 'timestamp' | 'payloadSha256'>): Promise<AuditRecord>;
}

const SECRET_KEY = /(secret|password|token|apikey|api_key|accesskey|access_key|authorization|credential)/i;

/** Drops values under secret-looking keys, recursively. */
export function scrubSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrubSecrets);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [
        k,
        SECRET_KEY.test(k) ? '***' : scrubSecrets(v),
      ]),
    );
  }
  return value;
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export class StoreAuditLog implements AuditLog {
  constructor(
    private readonly store: ArtifactStore,
    private readonly logger?: Logger,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async record(entry: Omit<AuditRecord, 'timestamp' | 'payloadSha256'>): Promise<AuditRecord> {
    const details = scrubSecrets(entry.details) as Record<string, unknown>;
    const now = this.clock();
    const record: AuditRecord = {
      timestamp: now.toISOString(),
      actor: entry.actor,
      action: entry.action,
      workflowId: entry.workflowId,
      target: entry.target,
      payloadSha256: createHash('sha256').update(canonicalJson(details)).digest('hex'),
      details,
    };
    const day = record.timestamp.slice(0, 10).replace(/-/g, '/');
    const key = `audit/${day}/${record.timestamp.replace(/[:.]/g, '-')}-${record.action.replace(/[^a-z0-9.-]/gi, '_')}-${randomUUID().slice(0, 8)}.json`;
    await this.store.putJson(key, record);
    this.logger?.info(
      { audit: { ...record, details: undefined } },
      `audit: ${record.action} ${record.target}`,
    );
    return record;
  }
}

/** Reads the audit trail back (CLI, tests), oldest first. */
export async function readAuditRecords(store: ArtifactStore, prefix = 'audit/'): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  for await (const object of store.list(prefix)) records.push(await store.getJson<AuditRecord>(object.key));
  return records.sort((a, b) => (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0));
}
