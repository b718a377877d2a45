import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAuditRecords } from '../../../src/audit/audit-log.js';
import { reindexRequestSchema } from '../../../src/domain/knowledge.js';
import {
  ConcurrentReindexError,
  createKnowledgePool,
  LeaseLostError,
  PgVectorStore,
} from '../../../src/knowledge/store/pgvector-store.js';
import { nodeEntrypoint } from '../../../src/runtime/entrypoints.js';
import { FsArtifactStore } from '../../../src/storage/fs.js';
import { type RunningPglite, startPglite } from '../../support/pglite.js';
import { startProcess, stopAll } from '../../support/processes.js';

// The re-index lock on a real database (PGlite over the wire): it is heartbeat-renewed with
// a short TTL, so a run that is terminated (its activities stop renewing) frees the base
// within one TTL instead of 30 minutes; and `qwenops kb unlock` frees a stale one by hand.

let db: RunningPglite;
let pool: pg.Pool;
let storeDir: string;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const store = (table: string) => new PgVectorStore(pool, { table });

async function kb(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = startProcess('qwenops', [...nodeEntrypoint('src/cli/main'), 'kb', ...args], {
    env: {
      QWENOPS_DATABASE_URL: db.url,
      QWENOPS_LOG_LEVEL: 'warn',
      QWENOPS_STATE_DIR: storeDir,
      QWENOPS_STORE: 'fs',
      QWENOPS_STORE_DIR: storeDir,
      USER: 'oncall',
    },
  });
  let stdout = '';
  let stderr = '';
  child.child.stdout?.on('data', (c) => {
    stdout += c;
  });
  child.child.stderr?.on('data', (c) => {
    stderr += c;
  });
  const code = await child.exited;
  return { code, stdout, stderr };
}

beforeAll(async () => {
  db = await startPglite();
  pool = createKnowledgePool(db.url, 4);
  storeDir = mkdtempSync(path.join(os.tmpdir(), 'qwenops-kb-lease-'));
});

afterAll(async () => {
  await pool?.end();
  await stopAll();
  if (storeDir) rmSync(storeDir, { recursive: true, force: true });
});

describe('knowledge re-index lock', () => {
  it('defaults to a short TTL (minutes, not half an hour)', () => {
    const request = reindexRequestSchema.parse({ source: { kind: 'directory', path: '/tmp/x' } });
    expect(request.leaseTtlSeconds).toBeLessThanOrEqual(120);
  });

  it('holds while renewed past its TTL, then expires within one TTL of a terminated run and is taken over', async () => {
    const running = store('kb_lease_a');
    const other = store('kb_lease_a');
    const ttlSeconds = 2;
    await running.acquireLease('run-a', 'schedule', 'full', ttlSeconds);
    const lost: Error[] = [];
    const stop = running.keepLeaseRenewed(
      { runId: 'run-a', ttlSeconds },
      { onLost: (err) => lost.push(err) },
    );
    // Three TTLs of renewals: a second run is refused throughout.
    const until = Date.now() + 3 * ttlSeconds * 1000;
    let refusals = 0;
    while (Date.now() < until) {
      await expect(other.acquireLease('run-b', 'alice', 'incremental', ttlSeconds)).rejects.toBeInstanceOf(
        ConcurrentReindexError,
      );
      refusals++;
      await sleep(300);
    }
    expect(refusals).toBeGreaterThan(5);
    expect((await other.currentLease())?.runId).toBe('run-a');

    // The run is terminated: its activities (and their renewals) stop.
    stop();
    const stoppedAt = Date.now();
    let takenAt = 0;
    while (!takenAt) {
      try {
        await other.acquireLease('run-b', 'alice', 'incremental', ttlSeconds);
        takenAt = Date.now();
      } catch (err) {
        expect(err).toBeInstanceOf(ConcurrentReindexError);
        expect(Date.now() - stoppedAt).toBeLessThan(ttlSeconds * 1000 + 3_000);
        await sleep(100);
      }
    }
    expect(takenAt - stoppedAt).toBeLessThanOrEqual(ttlSeconds * 1000 + 1_500);
    expect((await other.currentLease())?.runId).toBe('run-b');
    // The terminated run, were it to wake up, is fenced out.
    await expect(running.renewLease({ runId: 'run-a', ttlSeconds })).rejects.toBeInstanceOf(LeaseLostError);
    expect(lost).toEqual([]);
    await other.releaseLease('run-b');
  });

  it('reports a lost lease to the renewer and stops renewing', async () => {
    const running = store('kb_lease_b');
    await running.acquireLease('run-a', 'schedule', 'full', 1);
    await sleep(1_200);
    await store('kb_lease_b').acquireLease('run-b', 'alice', 'full', 60);
    const lost: Error[] = [];
    const stop = running.keepLeaseRenewed(
      { runId: 'run-a', ttlSeconds: 1 },
      { intervalMs: 200, onLost: (err) => lost.push(err) },
    );
    await expect.poll(() => lost.length, { timeout: 5_000 }).toBe(1);
    stop();
    expect(lost[0]).toBeInstanceOf(LeaseLostError);
    expect((await running.currentLease())?.runId).toBe('run-b');
    await running.releaseLease('run-b');
  });

  it('`qwenops kb unlock` refuses a renewed lock, unlocks with --force, and unlocks an expired one', async () => {
    const base = store('kb_lease_c');
    await base.acquireLease('run-live', 'schedule', 'full', 60);
    const refused = await kb(['unlock', '--table', 'kb_lease_c']);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stdout).toContain('refused: run run-live (schedule) still renews its lease');
    expect((await base.currentLease())?.runId).toBe('run-live');

    const forced = await kb(['unlock', '--table', 'kb_lease_c', '--force', '--reason', 'stuck']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('unlocked (lease of run run-live');
    expect(await base.currentLease()).toBeUndefined();

    await base.acquireLease('run-gone', 'schedule', 'incremental', 1);
    await sleep(1_200);
    const expired = await kb(['unlock', '--table', 'kb_lease_c']);
    expect(expired.code, expired.stderr).toBe(0);
    expect(expired.stdout).toContain('unlocked (lease of run run-gone');
    const none = await kb(['unlock', '--table', 'kb_lease_c']);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain('not locked');

    const audit = (await readAuditRecords(new FsArtifactStore(storeDir))).filter(
      (r) => r.action === 'knowledge.lease-break',
    );
    expect(
      audit.map((r) => [r.actor, r.target, r.details.runId, r.details.forced, r.details.reason]),
    ).toEqual([
      ['oncall', 'knowledge kb_lease_c', 'run-live', true, 'stuck'],
      ['oncall', 'knowledge kb_lease_c', 'run-gone', false, undefined],
    ]);
  });
});
