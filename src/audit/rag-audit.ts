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
// (the CLI writes a batch of one per request; a long-running server may batch more), and
// each batch in the chain has a claim
//   rag-audit/claims/<first seq, 12 digits>   {first, last, hash, key}
// created with the store's compare-and-set (ArtifactStore.create: S3 If-None-Match, a hard
// link on the filesystem). An append reads the head (the newest claim), writes its batch
// under a key of its own, then claims the batch's first seq: exactly one of several writers
// racing for a seq gets the claim; the others delete their batch and retry on the new
// head. A batch is only ever chained onto a claimed one, so concurrent writers cannot fork
// or break the chain. A writer that dies between its write and its withdrawal leaves an
// unclaimed batch: verify sets it aside (reported as `unclaimed`), as the claim names the
// batch that is in the chain. One instance serialises its own appends.

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
const CLAIMS_PREFIX = `${RAG_AUDIT_PREFIX}claims/`;
/** How far below the newest batch seen the claims listing starts (longer batches: a full list). */
const CLAIM_LOOKBACK = 1_000;

const claimSchema = z.object({
  first: z.number().int().positive(),
  last: z.number().int().positive(),
  hash: z.string(),
  key: z.string(),
});
type Claim = z.infer<typeof claimSchema>;

const seqPart = (seq: number) => String(seq).padStart(SEQ_DIGITS, '0');
const claimKey = (first: number) => `${CLAIMS_PREFIX}${seqPart(first)}`;

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
  /** The first seq of the newest claim this instance saw: where the next head lookup starts. */
  private knownClaim: number | undefined;

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
    const attempts = this.options.maxAttempts ?? 50;
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
      const first = head.seq + 1;
      const folder = `${RAG_AUDIT_PREFIX}${timestamp.slice(0, 10).replace(/-/g, '/')}/`;
      const key = `${folder}${seqPart(first)}-${this.writerId}.jsonl`;
      await this.store.put(key, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`, {
        contentType: 'application/x-ndjson',
      });
      const claim: Claim = { first, last: prev.seq, hash: prev.hash, key };
      const claimed = await this.store
        .create(claimKey(first), `${JSON.stringify(claim)}\n`, { contentType: 'application/json' })
        .catch(async (err: unknown) => {
          await this.store.delete(key).catch(() => undefined);
          throw err;
        });
      if (claimed) {
        this.knownClaim = first;
        for (const record of records) this.options.logger?.info({ rag_audit: record }, 'rag audit record');
        return records;
      }
      // Another writer claimed this seq first: withdraw and chain onto its batch.
      await this.store.delete(key);
      if (attempt >= attempts) {
        throw new Error(`rag audit: another writer claimed seq ${first} first, ${attempts} times in a row`);
      }
      await new Promise((r) => setTimeout(r, Math.random() * 5 * Math.min(attempt, 10)));
    }
  }

  /** The newest claimed record's seq and hash. */
  private async head(): Promise<Head> {
    // Where to start listing claims: this instance's last claim, else the newest batch in
    // today's folder, else in the whole log (the first append of a day, cold).
    let from = this.knownClaim;
    let newestBatch: string | undefined;
    if (from === undefined) {
      const today = `${RAG_AUDIT_PREFIX}${this.clock().toISOString().slice(0, 10).replace(/-/g, '/')}/`;
      newestBatch =
        (await newestBatchKey(this.store, today)) ?? (await newestBatchKey(this.store, RAG_AUDIT_PREFIX));
      if (newestBatch) from = Number(KEY.exec(newestBatch)?.[1]);
    }
    let claim =
      from === undefined
        ? undefined
        : await newestClaimKey(this.store, from > CLAIM_LOOKBACK ? from - CLAIM_LOOKBACK : 0);
    // Nothing near the hint (an unclaimed batch far ahead, a batch longer than the lookback):
    // every claim.
    claim ??= await newestClaimKey(this.store, 0);
    if (claim) {
      const parsed = claimSchema.parse(JSON.parse((await this.store.getBuffer(claim)).toString('utf8')));
      return { seq: parsed.last, hash: parsed.hash };
    }
    // A log from before claims (or none yet): its newest batch is the head.
    if (!newestBatch) return { seq: 0, hash: GENESIS_HASH };
    const lines = (await this.store.getBuffer(newestBatch)).toString('utf8').trim().split('\n');
    const last = ragAuditRecordSchema.parse(JSON.parse(lines[lines.length - 1] as string));
    return { seq: last.seq, hash: last.hash };
  }
}

/** The claim with the highest first seq at or above `fromSeq`, if any. */
async function newestClaimKey(store: ArtifactStore, fromSeq: number): Promise<string | undefined> {
  let newest: string | undefined;
  const startAfter = fromSeq > 0 ? claimKey(fromSeq - 1) : undefined;
  for await (const object of store.list(CLAIMS_PREFIX, startAfter ? { startAfter } : {})) {
    if (/^\d{12}$/.test(object.key.slice(CLAIMS_PREFIX.length))) newest = object.key;
  }
  return newest;
}

async function newestBatchKey(store: ArtifactStore, prefix: string): Promise<string | undefined> {
  let best: { seq: string; key: string } | undefined;
  for await (const object of store.list(prefix)) {
    const seq = KEY.exec(object.key)?.[1];
    if (seq && (!best || seq > best.seq)) best = { seq, key: object.key };
  }
  return best?.key;
}

export interface RangeOptions {
  /** YYYY-MM-DD (UTC), inclusive. */
  from?: string;
  to?: string;
}

export interface RagVerifyReport {
  records: number;
  objects: number;
  /** Batches outside the chain: another batch holds the claim to their seq. */
  unclaimed?: string[];
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

/**
 * The range's batch objects, in key order, less those another batch's claim excludes: of
 * several batches starting at one seq, the claim names the one in the chain; the others
 * (a writer that lost the race and died before withdrawing) go to `unclaimed`. Where no
 * claim exists (a log from before claims, a claim deleted) every batch is kept, so a fork
 * is still reported.
 */
async function* chainedBatches(
  store: ArtifactStore,
  range: RangeOptions,
  unclaimed: string[],
): AsyncGenerator<string> {
  const bySeq = new Map<string, string[]>();
  for await (const key of listRange(store, RAG_AUDIT_PREFIX, range)) {
    const seq = KEY.exec(key)?.[1];
    if (!seq) continue;
    const keys = bySeq.get(seq);
    if (keys) keys.push(key);
    else bySeq.set(seq, [key]);
  }
  for (const [seq, keys] of bySeq) {
    if (keys.length > 1) {
      const claim = await store
        .getBuffer(claimKey(Number(seq)))
        .then((b) => claimSchema.parse(JSON.parse(b.toString('utf8'))))
        .catch(() => undefined);
      if (claim && keys.includes(claim.key)) {
        unclaimed.push(...keys.filter((k) => k !== claim.key));
        yield claim.key;
        continue;
      }
    }
    yield* keys;
  }
}

export async function verifyRagAudit(
  store: ArtifactStore,
  range: RangeOptions = {},
): Promise<RagVerifyReport> {
  const entries: ChainEntry[] = [];
  let objects = 0;
  const unclaimed: string[] = [];
  for await (const key of chainedBatches(store, range, unclaimed)) {
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
    ...(unclaimed.length > 0 ? { unclaimed } : {}),
    firstSeq: entries[0]?.link.seq,
    lastSeq: entries[entries.length - 1]?.link.seq,
    ...(firstBreak ? { firstBreak } : {}),
  };
}
