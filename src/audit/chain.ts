import { createHash } from 'node:crypto';
import { canonicalJson } from './audit-log.js';

// Hash chains over audit records. A record's `hash` is the sha256 of the canonical JSON of
// the record without its `hash` (so `prev_hash` and `seq` are covered); its `prev_hash` is
// the previous record's `hash` (GENESIS_HASH for the first). Editing a record breaks its
// own hash; deleting one leaves a seq gap and a prev_hash that no longer matches. Deleting
// the newest records of a chain (truncating its tail) cannot be seen from the store alone:
// the stdout copy of each record, shipped elsewhere, is what shows that.

export const GENESIS_HASH = '0'.repeat(64);

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** sha256 of the canonical JSON of `record` without its `hash` field. */
export function chainHash(record: Record<string, unknown>): string {
  const { hash: _hash, ...rest } = record;
  return sha256Hex(canonicalJson(rest));
}

export interface ChainLink {
  seq: number;
  prev_hash: string;
  hash: string;
}

export interface ChainEntry {
  /** The object key the record was read from (and its line, for JSON lines). */
  key: string;
  link: ChainLink;
  /** The record as stored, hashed by chainHash (for pipeline records: its `chain` minus hash, see there). */
  computedHash: string;
}

export interface ChainBreak {
  /** Position in the verified range, oldest first. */
  index: number;
  key: string;
  field: 'hash' | 'prev_hash' | 'seq' | 'record';
  expected: string;
  found: string;
  message: string;
}

/**
 * Checks entries (sorted by seq) of one chain: each hash recomputes, seqs follow each other
 * without gap or repeat, each prev_hash is the previous hash. The first entry of a range
 * that does not start at seq 0/1 (`firstSeq`) is taken as the anchor. Returns the first break.
 */
export function verifyChainEntries(entries: readonly ChainEntry[], firstSeq: number): ChainBreak | undefined {
  let previous: ChainEntry | undefined;
  for (let index = 0; index < entries.length; index++) {
    const entry = entries[index] as ChainEntry;
    const { link } = entry;
    if (entry.computedHash !== link.hash) {
      return {
        index,
        key: entry.key,
        field: 'hash',
        expected: entry.computedHash,
        found: link.hash,
        message: `record seq ${link.seq} was edited: its content hashes to ${entry.computedHash.slice(0, 12)}…, not its stored hash ${String(link.hash).slice(0, 12)}…`,
      };
    }
    if (previous) {
      if (link.seq !== previous.link.seq + 1) {
        const expected = previous.link.seq + 1;
        return {
          index,
          key: entry.key,
          field: 'seq',
          expected: String(expected),
          found: String(link.seq),
          message:
            link.seq === previous.link.seq
              ? `two records with seq ${link.seq} (a fork: concurrent writers, or a copied record)`
              : `records ${expected}..${link.seq - 1} are missing (deleted?)`,
        };
      }
      if (link.prev_hash !== previous.link.hash) {
        return {
          index,
          key: entry.key,
          field: 'prev_hash',
          expected: previous.link.hash,
          found: link.prev_hash,
          message: `record seq ${link.seq} does not follow seq ${previous.link.seq}: its prev_hash is not that record's hash`,
        };
      }
    } else if (link.seq === firstSeq && link.prev_hash !== GENESIS_HASH) {
      return {
        index,
        key: entry.key,
        field: 'prev_hash',
        expected: GENESIS_HASH,
        found: link.prev_hash,
        message: `the first record (seq ${firstSeq}) must have the genesis prev_hash`,
      };
    }
    previous = entry;
  }
  return undefined;
}

/** Day folders YYYY/MM/DD from `from` to `to` (inclusive, UTC dates YYYY-MM-DD); at most ~10 years. */
export function dayFolders(from: string, to: string): string[] {
  const start = Date.parse(`${from}T00:00:00Z`);
  const end = Date.parse(`${to}T00:00:00Z`);
  if (Number.isNaN(start) || Number.isNaN(end))
    throw new Error(`not a date range: ${from} .. ${to} (YYYY-MM-DD)`);
  if (end < start) throw new Error(`--to ${to} is before --from ${from}`);
  const days: string[] = [];
  for (let t = start; t <= end && days.length < 3700; t += 86_400_000) {
    days.push(new Date(t).toISOString().slice(0, 10).replace(/-/g, '/'));
  }
  return days;
}
