import { createHash } from 'node:crypto';
import {
  addCounters,
  appendFailures,
  type BatchResult,
  emptyCounters,
  fullModeCounters,
  type ListingCursor,
  type ReindexCounters,
  type ReindexPlan,
  type ReindexReport,
  type ReindexRequest,
  type SourceFailure,
  type VerificationResult,
} from '../domain/knowledge.js';
import type { Logger } from '../observability/logger.js';
import { compareKeys } from '../storage/port.js';
import { chunkDocumentAsync } from './chunker.js';
import { formatOfKey } from './document.js';
import type { Embedder } from './embedders/port.js';
import { extractDocument } from './extract/index.js';
import type { KnowledgeSource, SourceEntry } from './sources/port.js';
import type { KnowledgeStore, SourceRecord, SourceState, StoredChunk, TableMeta } from './store/port.js';

// The re-index service: each phase is a method the workflow's activities call (and
// runReindex() chains them for callers without Temporal: the demo, the benchmark).
//
// Incremental in the spirit of LangChain's indexing API: a source whose bytes (and the
// chunking settings and embedding model, via the fingerprint) are unchanged costs one
// lookup, no embedding and no write; a changed source is re-chunked and only its chunks
// with new ids are embedded and inserted, the ones no longer produced are deleted; a
// source gone from the corpus loses its chunks in the sweep.

/** Bumped when chunking logic changes in a way that must re-chunk every source. */
export const CHUNKER_VERSION = 1;

const sha256 = (...parts: Array<string | Uint8Array>) => {
  const hash = createHash('sha256');
  parts.forEach((part, i) => {
    if (i > 0) hash.update('\u0000');
    hash.update(part);
  });
  return hash.digest('hex');
};

export function reindexFingerprint(
  request: Pick<ReindexRequest, 'chunking'>,
  embeddingModel: string,
  dimensions: number,
): string {
  return sha256(
    JSON.stringify({ v: CHUNKER_VERSION, chunking: request.chunking, model: embeddingModel, dimensions }),
  ).slice(0, 16);
}

export interface IndexerDeps {
  /** The base being re-indexed, through the store port (the pgvector adapter in production). */
  store: KnowledgeStore;
  source: KnowledgeSource;
  embedder: Embedder;
  logger: Logger;
}

export interface BatchOptions {
  position: number;
  /**
   * Where to resume the listing: after `startAfter`, the last key before listing position
   * `cursor.position` (<= position). Without one the listing starts from the beginning.
   */
  cursor?: ListingCursor;
  /** Counters and failures of sources already done in this batch (resuming from a heartbeat). */
  resumed?: { counters: ReindexCounters; failures: SourceFailure[]; chunksInBatch: number };
  /** Called after every committed group: the position to resume from, and the totals so far. */
  onCheckpoint?: (checkpoint: {
    position: number;
    /** The last key handled (the cursor at `position`). */
    lastKey?: string;
    counters: ReindexCounters;
    failures: SourceFailure[];
    chunksInBatch: number;
  }) => void;
  signal?: AbortSignal;
}

interface ChangedSource {
  entry: SourceEntry;
  record: SourceRecord;
  chunks: StoredChunk[];
  hadState: boolean;
}

export class KnowledgeIndexer {
  constructor(private readonly deps: IndexerDeps) {}

  private meta(plan: ReindexPlan, request: ReindexRequest): TableMeta {
    return {
      generation: plan.generation,
      embeddingModel: plan.embeddingModel,
      dimensions: this.deps.store.dimensions,
      indexKind: request.index.kind,
      runId: plan.runId,
    };
  }

  /** Checks the server, takes the base, decides the mode, prepares the target tables. */
  async begin(request: ReindexRequest, runId: string): Promise<ReindexPlan> {
    const { store, embedder, source, logger } = this.deps;
    if (embedder.dimensions !== store.dimensions) {
      throw new Error(
        `embedder ${embedder.label} makes ${embedder.dimensions}-d vectors; the store holds ${store.dimensions}-d`,
      );
    }
    // A source that is not there (a missing directory) is refused before the base is taken.
    const listing = source.list()[Symbol.asyncIterator]();
    try {
      await listing.next();
    } finally {
      await listing.return?.();
    }
    const server = await store.checkServer();
    const rowsBefore = await store.count('live');
    const liveMeta = await store.meta('live');
    let mode: 'incremental' | 'full' =
      request.mode === 'auto' ? (rowsBefore === 0 ? 'full' : 'incremental') : request.mode;
    // A base embedded by another model must be rebuilt whole: every vector changes.
    if (request.mode === 'auto' && liveMeta && liveMeta.embeddingModel !== embedder.model) mode = 'full';
    await store.acquireLease(runId, request.requestedBy, mode, request.leaseTtlSeconds);
    const generation = sha256(runId).slice(0, 8);
    const plan: ReindexPlan = {
      runId,
      table: store.table,
      mode,
      target: mode === 'full' ? 'shadow' : 'live',
      generation,
      fingerprint: reindexFingerprint(request, embedder.model, embedder.dimensions),
      embeddingModel: embedder.model,
      embedderLabel: embedder.label,
      sourceDescription: source.description,
      sourcesListed: 0,
      rowsBefore,
      pgvectorVersion: server.pgvector,
      embeddedDatabase: server.embedded,
    };
    try {
      if (mode === 'full') {
        // A shadow left by a run that died: nobody else can be using it, we hold the base.
        await store.dropGeneration('shadow');
        await store.createGeneration('shadow', this.meta(plan, request));
      } else if (!(await store.exists('live'))) {
        await store.createGeneration('live', this.meta(plan, request), {
          m: request.index.m,
          efConstruction: request.index.efConstruction,
        });
      }
      for await (const _ of source.list()) plan.sourcesListed++;
    } catch (err) {
      await store.releaseLease(runId).catch(() => undefined);
      throw err;
    }
    logger.info({ plan }, 'knowledge re-index planned');
    return plan;
  }

  /** Indexes up to `maxSources` sources from `position` of the listing. */
  async indexBatch(
    plan: ReindexPlan,
    request: ReindexRequest,
    maxSources: number,
    options: BatchOptions,
  ): Promise<BatchResult> {
    const { store, source } = this.deps;
    const lease = { runId: plan.runId, ttlSeconds: request.leaseTtlSeconds };
    await store.renewLease(lease);
    // Listed from the cursor (the last key before it) when there is one: a batch reads
    // only its own slice of the listing (plus the few entries between the cursor and its
    // start when batches run ahead in parallel), never the corpus from the start.
    const cursor = options.cursor;
    if (cursor && (cursor.position > options.position || cursor.position < 0))
      throw new Error(`listing cursor at ${cursor.position} is past the batch position ${options.position}`);
    let toSkip = options.position - (cursor?.position ?? 0);
    const entries: SourceEntry[] = [];
    for await (const entry of source.list({ startAfter: cursor?.startAfter })) {
      if (toSkip > 0) {
        toSkip--;
        continue;
      }
      entries.push(entry);
      if (entries.length > maxSources) break;
    }
    const done = entries.length <= maxSources;
    if (!done) entries.pop();
    let counters = options.resumed?.counters ?? emptyCounters();
    let failures = options.resumed?.failures ?? [];
    let chunksInBatch = options.resumed?.chunksInBatch ?? 0;
    let position = options.position;
    let lastKey = cursor?.position === options.position ? cursor.startAfter : undefined;
    let group: SourceEntry[] = [];
    let groupNewChunks = 0;

    const flush = async () => {
      if (group.length === 0) return;
      const result = await this.processGroup(plan, request, group, lease, options.signal);
      counters = addCounters(counters, result.counters);
      failures = appendFailures(failures, result.failures);
      chunksInBatch += result.chunksInTarget;
      position += group.length;
      lastKey = (group[group.length - 1] as SourceEntry).key;
      group = [];
      groupNewChunks = 0;
      options.onCheckpoint?.({ position, lastKey, counters, failures, chunksInBatch });
    };
    for (const entry of entries) {
      options.signal?.throwIfAborted();
      group.push(entry);
      // Chunk counts are known only after reading; sizes bound the group meanwhile.
      groupNewChunks += Math.ceil(entry.size / 600);
      if (group.length >= request.batch.sourcesPerCommit || groupNewChunks >= request.batch.chunksPerCommit)
        await flush();
    }
    await flush();
    return {
      nextPosition: position,
      done,
      counters,
      failures,
      chunksInBatch,
      ...(lastKey !== undefined ? { lastKey } : {}),
    };
  }

  private async processGroup(
    plan: ReindexPlan,
    request: ReindexRequest,
    entries: SourceEntry[],
    lease: { runId: string; ttlSeconds: number },
    signal: AbortSignal | undefined,
  ): Promise<{ counters: ReindexCounters; failures: SourceFailure[]; chunksInTarget: number }> {
    const { store, source, embedder, logger } = this.deps;
    const counters = emptyCounters();
    const failures: SourceFailure[] = [];
    let chunksInTarget = 0;
    const keys = entries.map((e) => e.key);
    const targetStates = await store.sourceStates(plan.target, keys);
    const liveStates: Map<string, SourceState> =
      plan.target === 'shadow' ? await store.sourceStates('live', keys) : targetStates;
    const copyFromLive: string[] = [];
    const changed: ChangedSource[] = [];
    const fail = (key: string, reason: string) => {
      counters.documentsFailed++;
      failures.push({ source: key, reason });
      logger.warn({ source: key, reason }, 'source not indexed');
      // Keep what the base had for it: a source that cannot be read now loses nothing.
      if (plan.target === 'shadow' && liveStates.has(key)) {
        const kept = (liveStates.get(key) as SourceState).chunkCount;
        copyFromLive.push(key);
        chunksInTarget += kept;
        counters.chunksKept += kept;
        counters.vectorsReused += kept;
      } else if (targetStates.has(key)) {
        chunksInTarget += (targetStates.get(key) as SourceState).chunkCount;
      }
    };

    for (const entry of entries) {
      counters.documents++;
      const format = formatOfKey(entry.key);
      if (!format) {
        counters.documentsSkipped++;
        continue;
      }
      if (entry.size > request.maxSourceBytes) {
        fail(
          entry.key,
          `${entry.size} bytes, over the ${request.maxSourceBytes}-byte limit (maxSourceBytes)`,
        );
        continue;
      }
      let started = performance.now();
      let bytes: Buffer;
      try {
        bytes = await source.read(entry.key);
      } catch (err) {
        // A source deleted between listing and reading: the next run's sweep handles it.
        fail(entry.key, `could not read: ${(err as Error).message}`);
        continue;
      }
      counters.readMs += performance.now() - started;
      counters.bytesRead += bytes.length;
      // The listing's size may be stale (the file grew since): the limit holds for what was read.
      if (bytes.length > request.maxSourceBytes) {
        fail(
          entry.key,
          `${bytes.length} bytes, over the ${request.maxSourceBytes}-byte limit (maxSourceBytes)`,
        );
        continue;
      }
      const sourceHash = sha256(plan.fingerprint, bytes).slice(0, 32);
      const targetState = targetStates.get(entry.key);
      if (targetState?.sourceHash === sourceHash) {
        counters.documentsUnchanged++;
        counters.chunksKept += targetState.chunkCount;
        chunksInTarget += targetState.chunkCount;
        continue;
      }
      const liveState = liveStates.get(entry.key);
      if (plan.target === 'shadow' && liveState?.sourceHash === sourceHash) {
        counters.documentsUnchanged++;
        counters.chunksKept += liveState.chunkCount;
        counters.vectorsReused += liveState.chunkCount;
        chunksInTarget += liveState.chunkCount;
        copyFromLive.push(entry.key);
        continue;
      }
      started = performance.now();
      try {
        const document = await extractDocument(entry.key, bytes, format);
        // Yields the event loop while it works (heartbeats, queries and other activities on
        // this worker keep running) and refuses a document over maxDocumentChars.
        const pieces = await chunkDocumentAsync(document, request.chunking, {
          maxChars: request.maxDocumentChars,
          name: entry.key,
          signal,
        });
        const occurrences = new Map<string, number>();
        const chunks = pieces.map((piece): StoredChunk => {
          const occurrence = occurrences.get(piece.content) ?? 0;
          occurrences.set(piece.content, occurrence + 1);
          return {
            chunkId: sha256(plan.fingerprint, entry.key, String(occurrence), piece.content).slice(0, 32),
            content: piece.content,
            source: entry.key,
            contentHash: sha256(piece.content).slice(0, 32),
            metadata: {
              title: document.title,
              headingPath: piece.headingPath,
              position: piece.index,
              tokens: piece.tokens,
              format: document.format,
              uri: source.uri(entry.key),
            },
            embedding: new Float32Array(0),
          };
        });
        changed.push({
          entry,
          hadState: targetState !== undefined,
          chunks,
          record: {
            source: entry.key,
            sourceHash,
            chunkCount: chunks.length,
            format: document.format,
            encoding: document.encoding ?? null,
            title: document.title,
            bytes: bytes.length,
          },
        });
        counters.documentsChanged++;
        chunksInTarget += chunks.length;
      } catch (err) {
        // A cancelled activity stops here; it is not this source's failure.
        if (signal?.aborted) throw err;
        fail(entry.key, (err as Error).message);
      } finally {
        counters.extractMs += performance.now() - started;
      }
    }

    // Diff changed sources against what the target holds for them.
    const existing = await store.chunkIdsOf(
      plan.target,
      changed.filter((c) => c.hadState).map((c) => c.entry.key),
    );
    const removeChunkIds: string[] = [];
    const insert: StoredChunk[] = [];
    for (const item of changed) {
      const before = existing.get(item.entry.key) ?? new Set<string>();
      const now = new Set(item.chunks.map((c) => c.chunkId));
      for (const id of before) if (!now.has(id)) removeChunkIds.push(id);
      for (const chunk of item.chunks) {
        if (before.has(chunk.chunkId)) counters.chunksKept++;
        else insert.push(chunk);
      }
    }
    counters.chunksRemoved += removeChunkIds.length;
    counters.chunksAdded += insert.length;

    // Vectors: reuse the live generation's for known chunk ids (full mode), embed the rest.
    if (insert.length > 0) {
      const reused =
        plan.target === 'shadow'
          ? await store.vectorsOf(
              'live',
              insert.map((c) => c.chunkId),
            )
          : new Map();
      const toEmbed = insert.filter((c) => {
        const vector = reused.get(c.chunkId);
        if (vector) c.embedding = vector;
        return !vector;
      });
      counters.vectorsReused += insert.length - toEmbed.length;
      if (toEmbed.length > 0) {
        const before = embedder.stats();
        const started = performance.now();
        const vectors = await embedder.embed(
          toEmbed.map((c) => c.content),
          { signal },
        );
        counters.embedMs += performance.now() - started;
        toEmbed.forEach((c, i) => {
          c.embedding = vectors[i] as Float32Array;
        });
        const after = embedder.stats();
        counters.embeddingCalls += after.calls - before.calls;
        counters.embeddedInputs += after.inputs - before.inputs;
        counters.embeddingRequests += after.requests - before.requests;
        counters.embeddingRetries += after.retries - before.retries;
      }
    }

    const started = performance.now();
    if (copyFromLive.length > 0) {
      await store.copyFromLive(copyFromLive, lease);
      counters.writeTransactions++;
    }
    if (changed.length > 0) {
      await store.applyChanges(
        plan.target as 'live' | 'shadow',
        {
          removeChunkIds,
          removeSources: [],
          insertChunks: insert,
          upsertSources: changed.map((c) => c.record),
        },
        lease,
        plan.embeddingModel,
      );
      counters.writeTransactions++;
    }
    counters.writeMs += performance.now() - started;
    for (const key of ['readMs', 'extractMs', 'embedMs', 'writeMs'] as const)
      counters[key] = Math.round(counters[key]);
    return { counters, failures, chunksInTarget };
  }

  /** Incremental mode: removes the chunks of sources no longer in the corpus. */
  async removeDeletedSources(
    plan: ReindexPlan,
    request: ReindexRequest,
    onProgress?: (checked: number) => void,
  ): Promise<{ documentsRemoved: number; chunksRemoved: number; writeTransactions: number }> {
    const { store, source, logger } = this.deps;
    const lease = { runId: plan.runId, ttlSeconds: request.leaseTtlSeconds };
    // A merge of two streams in the same (byte-wise) key order: the listing and the stored
    // sources. Memory stays flat in corpus size: one listing entry, one page of stored
    // sources, and up to 500 sources to delete at a time. A stored source the listing does
    // not have is checked once more (exists) before its chunks go: a listing that moved
    // costs a lookup, never a wrongly deleted source.
    const listing = source.list()[Symbol.asyncIterator]();
    let gone: string[] = [];
    let documentsRemoved = 0;
    let chunksRemoved = 0;
    let writeTransactions = 0;
    const removeGone = async () => {
      if (gone.length === 0) return;
      const { deleted } = await store.applyChanges(
        'live',
        { removeChunkIds: [], removeSources: gone, insertChunks: [], upsertSources: [] },
        lease,
        plan.embeddingModel,
      );
      documentsRemoved += gone.length;
      chunksRemoved += deleted;
      writeTransactions++;
      gone = [];
    };
    try {
      let listed = await listing.next();
      let checked = 0;
      for await (const stored of store.sources('live')) {
        while (!listed.done && compareKeys(listed.value.key, stored) < 0) listed = await listing.next();
        const inListing = !listed.done && listed.value.key === stored;
        if (!inListing && !(await source.exists(stored))) {
          gone.push(stored);
          if (gone.length >= 500) await removeGone();
        }
        if (++checked % 1000 === 0) onProgress?.(checked);
      }
      await removeGone();
    } finally {
      await listing.return?.();
    }
    if (documentsRemoved > 0)
      logger.info({ sources: documentsRemoved, chunksRemoved }, 'removed the chunks of deleted sources');
    return { documentsRemoved, chunksRemoved, writeTransactions };
  }
  async buildIndex(
    plan: ReindexPlan,
    request: ReindexRequest,
  ): Promise<{ ms: number; maintenanceWorkMemMb: number; rows: number }> {
    const started = performance.now();
    await this.deps.store.renewLease({ runId: plan.runId, ttlSeconds: request.leaseTtlSeconds });
    const result = await this.deps.store.buildIndexes(this.meta(plan, request), {
      m: request.index.m,
      efConstruction: request.index.efConstruction,
      maxMaintenanceWorkMemMb: request.index.maxMaintenanceWorkMemMb,
    });
    return { ...result, ms: Math.round(performance.now() - started) };
  }

  /** Full mode: the shadow has every expected row, no duplicate, and the index finds what exact search finds. */
  async verify(
    _plan: ReindexPlan,
    request: ReindexRequest,
    expectedRows: number,
  ): Promise<VerificationResult> {
    const { store } = this.deps;
    const rows = await store.count('shadow');
    const duplicates = await store.duplicateChunkIds('shadow');
    const probes = await store.probeVectors('shadow', request.verify.probes);
    const recallAt10 = rows === 0 ? 1 : await store.recallAtK('shadow', probes, 10, request.verify.efSearch);
    const problems: string[] = [];
    if (rows !== expectedRows) problems.push(`the shadow holds ${rows} rows, expected ${expectedRows}`);
    if (duplicates > 0) problems.push(`${duplicates} duplicate chunk ids`);
    if (recallAt10 < request.verify.minRecallAt10) {
      problems.push(`recall@10 ${recallAt10.toFixed(3)} is below ${request.verify.minRecallAt10}`);
    }
    return {
      rows,
      expectedRows,
      recallAt10,
      minRecallAt10: request.verify.minRecallAt10,
      probes: probes.length,
      duplicates,
      passed: problems.length === 0,
      reason: problems.length > 0 ? problems.join('; ') : undefined,
    };
  }

  async swap(
    plan: ReindexPlan,
    request: ReindexRequest,
  ): Promise<{ attempts: number; replacedPrevious: boolean }> {
    await this.deps.store.renewLease({ runId: plan.runId, ttlSeconds: request.leaseTtlSeconds });
    const { attempts, replaced } = await this.deps.store.swap({
      lockTimeoutMs: request.swap.lockTimeoutMs,
      attempts: request.swap.attempts,
    });
    return { attempts, replacedPrevious: replaced };
  }

  /** Releases the base; returns the live row count. */
  async finish(plan: ReindexPlan): Promise<number> {
    await this.deps.store.releaseLease(plan.runId);
    return this.deps.store.count('live');
  }

  /** After a failure: drops a half-built shadow and releases the base. Safe to repeat. */
  async abort(plan: Pick<ReindexPlan, 'runId' | 'mode'>): Promise<void> {
    const lease = await this.deps.store.currentLease();
    if (lease && lease.runId !== plan.runId) return;
    if (plan.mode === 'full') await this.deps.store.dropGeneration('shadow');
    await this.deps.store.releaseLease(plan.runId);
  }

  /** Every phase in one process (no Temporal): for the demo, the benchmark and `kb reindex --local`. */
  async runReindex(request: ReindexRequest, runId: string): Promise<ReindexReport> {
    const startedAt = new Date();
    const phaseMs: ReindexReport['phaseMs'] = {};
    const timed = async <T>(phase: keyof ReindexReport['phaseMs'], fn: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await fn();
      } finally {
        phaseMs[phase] = Math.round((phaseMs[phase] ?? 0) + performance.now() - t);
      }
    };
    const plan = await timed('prepare', () => this.begin(request, runId));
    // In one process the whole run is one "activity": keep the short lease renewed throughout.
    const stopRenewing = this.deps.store.keepLeaseRenewed({ runId, ttlSeconds: request.leaseTtlSeconds });
    let counters = emptyCounters();
    let failures: SourceFailure[] = [];
    let expectedRows = 0;
    const report: ReindexReport = {
      runId,
      table: plan.table,
      mode: plan.mode,
      source: plan.sourceDescription,
      embedder: plan.embedderLabel,
      embeddingModel: plan.embeddingModel,
      requestedBy: request.requestedBy,
      startedAt: startedAt.toISOString(),
      finishedAt: '',
      outcome: 'succeeded',
      counters,
      failures,
      rowsBefore: plan.rowsBefore,
      rowsAfter: plan.rowsBefore,
      phaseMs,
    };
    try {
      let position = 0;
      let cursor: ListingCursor | undefined;
      for (;;) {
        const batch = await timed('index', () =>
          this.indexBatch(plan, request, request.batch.sourcesPerActivity, { position, cursor }),
        );
        if (batch.lastKey !== undefined) cursor = { position: batch.nextPosition, startAfter: batch.lastKey };
        counters = addCounters(counters, batch.counters);
        failures = appendFailures(failures, batch.failures);
        expectedRows += batch.chunksInBatch;
        position = batch.nextPosition;
        if (batch.done) break;
      }
      if (plan.mode === 'incremental') {
        const swept = await timed('sweep', () => this.removeDeletedSources(plan, request));
        counters = addCounters(counters, swept);
      } else {
        report.indexBuild = await timed('build-index', () => this.buildIndex(plan, request));
        report.verification = await timed('verify', () => this.verify(plan, request, expectedRows));
        if (!report.verification.passed)
          throw new Error(`verification failed: ${report.verification.reason}`);
        report.swap = await timed('swap', () => this.swap(plan, request));
      }
      report.rowsAfter = await timed('finish', () => this.finish(plan));
      if (plan.mode === 'full') counters = fullModeCounters(counters, plan.rowsBefore, report.rowsAfter);
    } catch (err) {
      report.outcome = 'failed';
      report.reason = (err as Error).message;
      await this.abort(plan).catch(() => undefined);
    } finally {
      stopRenewing();
    }
    report.counters = counters;
    report.failures = failures;
    report.finishedAt = new Date().toISOString();
    return report;
  }
}
