import type { ArtifactStore } from '../storage/port.js';
import type { AuditRecord } from './audit-log.js';
import { type ChainBreak, type ChainEntry, chainHash, verifyChainEntries } from './chain.js';
import { listRange, type RangeOptions } from './rag-audit.js';

// Verifies the pipeline audit records (audit/YYYY/MM/DD/*.json): every writer's chain in
// the range, each sorted by seq. A writer's first record in the range is its anchor unless
// it is seq 0 (then its prev_hash must be the genesis hash).

export const PIPELINE_AUDIT_PREFIX = 'audit/';

/** The hash a pipeline record's chain.hash must hold. */
export function pipelineRecordHash(record: AuditRecord): string {
  const { chain, ...rest } = record;
  if (!chain) return '';
  const { hash: _hash, ...link } = chain;
  return chainHash({ ...rest, chain: link });
}

export interface PipelineVerifyReport {
  records: number;
  writers: number;
  /** Records without a chain (written before chaining). */
  unchained: number;
  firstBreak?: ChainBreak & { writer: string };
}

export async function verifyPipelineAudit(
  store: ArtifactStore,
  range: RangeOptions = {},
): Promise<PipelineVerifyReport> {
  const byWriter = new Map<string, ChainEntry[]>();
  let records = 0;
  let unchained = 0;
  for await (const key of listRange(store, PIPELINE_AUDIT_PREFIX, range)) {
    if (!key.endsWith('.json')) continue;
    records++;
    const record = await store.getJson<AuditRecord>(key);
    const chain = record.chain;
    if (!chain || typeof chain !== 'object') {
      unchained++;
      continue;
    }
    const list = byWriter.get(chain.writer) ?? [];
    list.push({
      key,
      link: { seq: chain.seq, prev_hash: chain.prev_hash, hash: chain.hash },
      computedHash: pipelineRecordHash(record),
    });
    byWriter.set(chain.writer, list);
  }
  let firstBreak: PipelineVerifyReport['firstBreak'];
  for (const [writer, entries] of [...byWriter].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    entries.sort((a, b) => a.link.seq - b.link.seq || (a.key < b.key ? -1 : 1));
    const found = verifyChainEntries(entries, 0);
    if (found) {
      firstBreak = { ...found, writer };
      break;
    }
  }
  return { records, writers: byWriter.size, unchained, ...(firstBreak ? { firstBreak } : {}) };
}
