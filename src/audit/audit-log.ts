import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { objectKeySegment } from '../domain/names.js';
import type { Logger } from '../observability/logger.js';
import type { ArtifactStore } from '../storage/port.js';
import { type ChainLink, chainHash, GENESIS_HASH } from './chain.js';

// Every action that changes a cluster, an artifact or an index leaves an audit record:
// who, what, when, on which workflow, and a hash of the payload (secrets are scrubbed
// from it first, and never stored). Records are immutable objects in the artifact store,
// one per action, so concurrent writers never contend and a retried activity's duplicate
// record is harmless and visible.
//
// Tamper evidence: each writer (one StoreAuditLog instance: a worker process, a CLI run)
// keeps its own hash chain, `chain: {writer, seq, prev_hash, hash}`, seq from 0. The store
// has no compare-and-set, and several workers write at once, so one global chain would
// need a lock; per-writer chains need none. An instance serialises its own writes, so its
// chain has no gap unless a record is deleted. `qwenops audit verify` checks every writer's
// chain in a range (src/audit/pipeline-verify.ts). Records written before the chain
// existed have no `chain` and are counted as unchained.

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
  /** Per-writer hash chain; `hash` covers the whole record except itself. */
  chain?: ChainLink & { writer: string };
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
  /** This writer's chain id. */
  readonly writer: string;
  private seq = 0;
  private prevHash = GENESIS_HASH;
  /** The previous write: records of one writer are written one after the other. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: ArtifactStore,
    private readonly logger?: Logger,
    private readonly clock: () => Date = () => new Date(),
    writer?: string,
  ) {
    this.writer =
      writer ??
      `${hostname()
        .replace(/[^A-Za-z0-9_-]/g, '')
        .slice(0, 24)}_${process.pid}_${randomUUID().slice(0, 8)}`;
  }

  record(entry: Omit<AuditRecord, 'timestamp' | 'payloadSha256' | 'chain'>): Promise<AuditRecord> {
    const next = this.tail.then(
      () => this.write(entry),
      () => this.write(entry),
    );
    this.tail = next.catch(() => undefined);
    return next;
  }

  private async write(
    entry: Omit<AuditRecord, 'timestamp' | 'payloadSha256' | 'chain'>,
  ): Promise<AuditRecord> {
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
    const unhashed = { ...record, chain: { writer: this.writer, seq: this.seq, prev_hash: this.prevHash } };
    const hash = chainHash(JSON.parse(JSON.stringify(unhashed)) as Record<string, unknown>);
    record.chain = { ...unhashed.chain, hash };
    const day = record.timestamp.slice(0, 10).replace(/-/g, '/');
    const key = `audit/${day}/${record.timestamp.replace(/[:.]/g, '-')}-${objectKeySegment(record.action)}-${randomUUID().slice(0, 8)}.json`;
    await this.store.putJson(key, record);
    // Only a record that was written advances the chain.
    this.seq++;
    this.prevHash = hash;
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
