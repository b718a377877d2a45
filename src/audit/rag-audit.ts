import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Logger } from '../observability/logger.js';
import type { ArtifactStore } from '../storage/port.js';
import {
  type ChainBreak,
  type ChainEntry,
  chainHash,
  dayFolders,
  GENESIS_HASH,
  sha256Hex,
  verifyChainEntries,
} from './chain.js';

// The RAG request log of the production plan: one record per answered `kb ask`, in the
// plan's schema {timestamp, model, prompt_hash, user_id, is_filtered, tokens}, plus the
// chain fields {seq, prev_hash, hash}. One global chain over all writers.
//
// Store layout: a batch of records is one JSON-lines object
//   rag-audit/YYYY/MM/DD/<first seq, 12 digits>-<writer>.jsonl
// (the CLI writes a batch of one per request; a long-running server may batch more).
// The artifact store has no compare-and-set, so appends are optimistic: read the head (the
// newest object), write the batch under a key unique to this writer, then list the day's
// folder; a writer that sees another batch starting at the same seq deletes its own and
// retries on the new head after a random backoff. Listing is read-after-write consistent
// in MinIO/S3 and in the filesystem store, so two batches with one seq never both stay
// (the later lister always sees the earlier write). One instance serialises its own
// appends. Residual race: a third writer that reads the head in the instant between two
// rivals' writes may chain onto the batch that then withdraws; verify reports that as a
// prev_hash break (a false alarm, never a silent loss). Run one audit writer per store, or
// keep `kb ask` traffic per store modest, where that matters.

export const RAG_AUDIT_PREFIX = 'rag-audit/';

export const ragAuditRecordSchema = z.object({
  timestamp: z.string(),
  model: z.string(),
  /** sha256 hex of the question as asked (the question itself is not stored). */
  prompt_hash: z.string().regex(/^[0-9a-f]{64}$/),
  user_id: z.string(),
  is_filtered: z.boolean(),
  /** Total tokens of the completion (0 when the question was refused before the model). */
  tokens: z.number().int().nonnegative(),
  seq: z.number().int().positive(),
  prev_hash: z.string(),
  hash: z.string(),
});

export type RagAuditRecord = z.infer<typeof ragAuditRecordSchema>;
export type RagAuditEntry = Omit<
  RagAuditRecord,
  'timestamp' | 'seq' | 'prev_hash' | 'hash' | 'prompt_hash'
> & {
  /** The question; only its sha256 is kept. */
  prompt: string;
};

const SEQ_DIGITS = 12;
const KEY = /^rag-audit\/\d{4}\/\d{2}\/\d{2}\/(\d{12})-([A-Za-z0-9_-]+)\.jsonl$/;

interface Head {
  seq: number;
  hash: string;
}

export interface RagAuditLogOptions {
  logger?: Logger;
  clock?: () => Date;
  writerId?: string;
  /** Attempts when another writer took the same seq. */
  maxAttempts?: number;
}

export class RagAuditLog {
  private readonly writerId: string;
  private readonly clock: () => Date;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: ArtifactStore,
    private readonly options: RagAuditLogOptions = {},
  ) {
    this.clock = options.clock ?? (() => new Date());
    this.writerId =
      options.writerId ??
      `${hostname()
        .replace(/[^A-Za-z0-9_-]/g, '')
        .slice(0, 24)}_${process.pid}_${randomUUID().slice(0, 8)}`;
  }

  /** Appends a batch (one object) and returns the chained records. */
  append(entries: readonly RagAuditEntry[]): Promise<RagAuditRecord[]> {
    const next = this.tail.then(
      () => this.write(entries),
      () => this.write(entries),
    );
    this.tail = next.catch(() => undefined);
    return next;
  }

  private async write(entries: readonly RagAuditEntry[]): Promise<RagAuditRecord[]> {
    if (entries.length === 0) return [];
    const attempts = this.options.maxAttempts ?? 20;
    for (let attempt = 1; ; attempt++) {
      const head = await this.head();
      const timestamp = this.clock().toISOString();
      const records: RagAuditRecord[] = [];
      let prev = head;
      for (const entry of entries) {
        const unhashed = {
          timestamp,
          model: entry.model,
          prompt_hash: sha256Hex(entry.prompt),
          user_id: entry.user_id,
          is_filtered: entry.is_filtered,
          tokens: entry.tokens,
          seq: prev.seq + 1,
          prev_hash: prev.hash,
        };
        const record = { ...unhashed, hash: chainHash(unhashed) };
        records.push(record);
        prev = { seq: record.seq, hash: record.hash };
      }
      const folder = `${RAG_AUDIT_PREFIX}${timestamp.slice(0, 10).replace(/-/g, '/')}/`;
      const seqPart = String(head.seq + 1).padStart(SEQ_DIGITS, '0');
      const key = `${folder}${seqPart}-${this.writerId}.jsonl`;
      await this.store.put(key, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`, {
        contentType: 'application/x-ndjson',
      });
      const rivals: string[] = [];
      for await (const object of this.store.list(folder)) {
        if (object.key !== key && KEY.exec(object.key)?.[1] === seqPart) rivals.push(object.key);
      }
      if (rivals.length === 0) {
        for (const record of records) this.options.logger?.info({ rag_audit: record }, 'rag audit record');
        return records;
      }
      await this.store.delete(key);
      if (attempt >= attempts) {
        throw new Error(
          `rag audit: lost the race for seq ${seqPart} ${attempts} times (${rivals.join(', ')})`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.random() * 10 * Math.min(attempt, 10)));
    }
  }

  /** The newest record's seq and hash (today's folder first, then the whole log). */
  private async head(): Promise<Head> {
    const today = `${RAG_AUDIT_PREFIX}${this.clock().toISOString().slice(0, 10).replace(/-/g, '/')}/`;
    let newest: string | undefined;
    for (let wait = 0; wait < 50; wait++) {
      const found = (await newestKey(this.store, today)) ?? (await newestKey(this.store, RAG_AUDIT_PREFIX));
      newest = found?.key;
      // Two batches with the newest seq: their writers are settling it; wait for the one that stays.
      if (!found || found.rivals === 0) break;
      await new Promise((r) => setTimeout(r, 2 + Math.random() * 10));
    }
    if (!newest) return { seq: 0, hash: GENESIS_HASH };
    const lines = (await this.store.getBuffer(newest)).toString('utf8').trim().split('\n');
    const last = ragAuditRecordSchema.parse(JSON.parse(lines[lines.length - 1] as string));
    return { seq: last.seq, hash: last.hash };
  }
}

async function newestKey(
  store: ArtifactStore,
  prefix: string,
): Promise<{ key: string; rivals: number } | undefined> {
  let best: { seq: string; key: string; rivals: number } | undefined;
  for await (const object of store.list(prefix)) {
    const seq = KEY.exec(object.key)?.[1];
    if (!seq) continue;
    if (!best || seq > best.seq) best = { seq, key: object.key, rivals: 0 };
    else if (seq === best.seq) best.rivals++;
  }
  return best && { key: best.key, rivals: best.rivals };
}

export interface RangeOptions {
  /** YYYY-MM-DD (UTC), inclusive. */
  from?: string;
  to?: string;
}

export interface RagVerifyReport {
  records: number;
  objects: number;
  firstSeq?: number;
  lastSeq?: number;
  firstBreak?: ChainBreak;
}

/** Lists the objects of a range: day folders, or the whole prefix. */
export async function* listRange(
  store: ArtifactStore,
  prefix: string,
  range: RangeOptions,
): AsyncGenerator<string> {
  if (!range.from && !range.to) {
    for await (const object of store.list(prefix)) yield object.key;
    return;
  }
  const today = new Date().toISOString().slice(0, 10);
  for (const day of dayFolders(range.from ?? range.to ?? today, range.to ?? today)) {
    for await (const object of store.list(`${prefix}${day}/`)) yield object.key;
  }
}

export async function verifyRagAudit(
  store: ArtifactStore,
  range: RangeOptions = {},
): Promise<RagVerifyReport> {
  const entries: ChainEntry[] = [];
  let objects = 0;
  for await (const key of listRange(store, RAG_AUDIT_PREFIX, range)) {
    if (!KEY.test(key)) continue;
    objects++;
    const lines = (await store.getBuffer(key))
      .toString('utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    for (const [line, text] of lines.entries()) {
      const where = `${key}#${line + 1}`;
      let parsed: RagAuditRecord;
      let raw: Record<string, unknown>;
      try {
        raw = JSON.parse(text) as Record<string, unknown>;
        parsed = ragAuditRecordSchema.parse(raw);
      } catch (err) {
        return {
          records: entries.length,
          objects,
          firstBreak: {
            index: entries.length,
            key: where,
            field: 'record',
            expected: 'a record of the RAG audit schema',
            found: text.slice(0, 120),
            message: `unreadable record: ${(err as Error).message.replace(/\s+/g, ' ').slice(0, 300)}`,
          },
        };
      }
      entries.push({
        key: where,
        link: { seq: parsed.seq, prev_hash: parsed.prev_hash, hash: parsed.hash },
        computedHash: chainHash(raw),
      });
    }
  }
  entries.sort((a, b) => a.link.seq - b.link.seq || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const firstBreak = verifyChainEntries(entries, 1);
  return {
    records: entries.length,
    objects,
    firstSeq: entries[0]?.link.seq,
    lastSeq: entries[entries.length - 1]?.link.seq,
    ...(firstBreak ? { firstBreak } : {}),
  };
}
