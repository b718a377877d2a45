import type pg from 'pg';
import { ConcurrentReindexError, LeaseLostError } from '../errors.js';
import type { Lease, LeaseTerm } from '../port.js';
import { type PgBase, withTransaction } from './pool.js';

// One re-index per base at a time: a lease row per base in qwenops_kb_leases, taken under a
// transaction-scoped advisory lock, renewed while the run works, and checked (fenced) by
// every write transaction so a run whose lease was taken over cannot write.

const LEASES = 'qwenops_kb_leases';

type LeaseRow = { run_id: string; holder: string; mode: string; acquired_at: Date; expires_at: Date };

const toLease = (row: LeaseRow): Lease => ({
  runId: row.run_id,
  holder: row.holder,
  mode: row.mode,
  acquiredAt: row.acquired_at.toISOString(),
  expiresAt: row.expires_at.toISOString(),
});

/** Deterministic advisory-lock key of a base (two int4, from a stable string hash). */
function lockKey(base: string): [number, number] {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < base.length; i++) {
    h1 = Math.imul(h1 ^ base.charCodeAt(i), 0x01000193);
    h2 = Math.imul(h2 ^ base.charCodeAt(i), 0x5bd1e995);
  }
  return [0x71776f70 /* "qwop" */ | 0, (h1 ^ h2) | 0];
}

export async function ensureLeaseTable(pool: pg.Pool): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS ${LEASES} (
      base text PRIMARY KEY,
      run_id text NOT NULL,
      holder text NOT NULL,
      mode text NOT NULL,
      acquired_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL
    )`);
}

/**
 * Takes the base for `runId`, or refuses with ConcurrentReindexError naming the holder.
 * The transaction-scoped advisory lock serialises concurrent takers on a real server
 * (one of two simultaneous starts sees `false` and refuses); the lease row then keeps
 * the base taken between this run's activities, which may run on different workers, and
 * expires if the run dies without releasing it. Re-taking by the same run id (a retried
 * activity) succeeds.
 */
export async function acquireLease(
  base: PgBase,
  runId: string,
  holder: string,
  mode: string,
  ttlSeconds: number,
): Promise<Lease> {
  await ensureLeaseTable(base.pool);
  const [k1, k2] = lockKey(base.table);
  return withTransaction(base.pool, async (client) => {
    const { rows: lock } = await client.query<{ ok: boolean }>(
      'SELECT pg_try_advisory_xact_lock($1, $2) AS ok',
      [k1, k2],
    );
    if (!lock[0]?.ok)
      throw new ConcurrentReindexError(`another re-index of ${base.table} is starting right now`);
    const { rows } = await client.query<{
      run_id: string;
      holder: string;
      acquired_at: Date;
      expires_at: Date;
      live: boolean;
    }>(
      `SELECT run_id, holder, acquired_at, expires_at, expires_at > now() AS live FROM ${LEASES} WHERE base = $1 FOR UPDATE`,
      [base.table],
    );
    const current = rows[0];
    if (current && current.run_id !== runId && current.live) {
      throw new ConcurrentReindexError(
        `knowledge base ${base.table} is being re-indexed by run ${current.run_id} (${current.holder}, since ${current.acquired_at.toISOString()}, lease until ${current.expires_at.toISOString()})`,
      );
    }
    const { rows: taken } = await client.query<{ acquired_at: Date; expires_at: Date }>(
      `INSERT INTO ${LEASES} (base, run_id, holder, mode, acquired_at, expires_at)
         VALUES ($1, $2, $3, $4, now(), now() + make_interval(secs => $5))
         ON CONFLICT (base) DO UPDATE SET run_id = EXCLUDED.run_id, holder = EXCLUDED.holder, mode = EXCLUDED.mode,
           acquired_at = CASE WHEN ${LEASES}.run_id = EXCLUDED.run_id THEN ${LEASES}.acquired_at ELSE EXCLUDED.acquired_at END,
           expires_at = EXCLUDED.expires_at
         RETURNING acquired_at, expires_at`,
      [base.table, runId, holder, mode, ttlSeconds],
    );
    const row = taken[0] as { acquired_at: Date; expires_at: Date };
    return toLease({ run_id: runId, holder, mode, ...row });
  });
}

/**
 * Extends this run's lease inside the caller's transaction, or throws LeaseLostError when
 * another run has the base now: the fence every write transaction starts with.
 */
export async function fence(client: pg.PoolClient, table: string, lease: LeaseTerm): Promise<void> {
  const r = await client.query(
    `UPDATE ${LEASES} SET expires_at = now() + make_interval(secs => $3) WHERE base = $1 AND run_id = $2`,
    [table, lease.runId, lease.ttlSeconds],
  );
  if ((r.rowCount ?? 0) === 0) {
    throw new LeaseLostError(
      `run ${lease.runId} no longer holds knowledge base ${table} (its lease expired and was taken)`,
    );
  }
}

/** Extends this run's lease; LeaseLostError when another run has it now. */
export async function renewLease(base: PgBase, lease: LeaseTerm): Promise<void> {
  const client = await base.pool.connect();
  try {
    await fence(client, base.table, lease);
  } finally {
    client.release();
  }
}

export async function currentLease(base: PgBase): Promise<Lease | undefined> {
  await ensureLeaseTable(base.pool);
  const { rows } = await base.pool.query<LeaseRow>(
    `SELECT run_id, holder, mode, acquired_at, expires_at FROM ${LEASES} WHERE base = $1 AND expires_at > now()`,
    [base.table],
  );
  return rows[0] ? toLease(rows[0]) : undefined;
}

export async function releaseLease(base: PgBase, runId: string): Promise<void> {
  await ensureLeaseTable(base.pool);
  await base.pool.query(`DELETE FROM ${LEASES} WHERE base = $1 AND run_id = $2`, [base.table, runId]);
}

/**
 * Keeps this run's lease renewed every `intervalMs` (a third of its TTL by default) while
 * an activity works, so a short TTL holds through a long phase (a CREATE INDEX, a slow
 * listing) and a run that is terminated stops renewing and frees the base one TTL later.
 * A refused renewal (LeaseLostError) stops it and is reported to `onLost`; the run's next
 * write is fenced and fails. Transient errors are logged and retried at the next tick.
 * Returns the function that stops it.
 */
export function keepLeaseRenewed(
  base: PgBase,
  lease: LeaseTerm,
  options: { intervalMs?: number; onLost?: (err: LeaseLostError) => void } = {},
): () => void {
  const intervalMs = options.intervalMs ?? Math.max(1000, Math.floor((lease.ttlSeconds * 1000) / 3));
  let stopped = false;
  let running = false;
  const timer = setInterval(() => {
    if (stopped || running) return;
    running = true;
    renewLease(base, lease)
      .catch((err: unknown) => {
        if (err instanceof LeaseLostError) {
          stop();
          options.onLost?.(err);
        } else {
          base.logger?.warn({ err, runId: lease.runId, table: base.table }, 'lease renewal failed; retrying');
        }
      })
      .finally(() => {
        running = false;
      });
  }, intervalMs);
  timer.unref?.();
  const stop = () => {
    stopped = true;
    clearInterval(timer);
  };
  return stop;
}

/**
 * An operator frees the base of a run that is gone (`qwenops kb unlock`). An expired lease
 * is deleted; a live one (its run still renews it) only with `force`. Returns the lease
 * deleted, or `live` with the lease kept when refused, or nothing when there was none.
 */
export async function breakLease(
  base: PgBase,
  options: { force: boolean },
): Promise<{ broken?: Lease; live?: Lease }> {
  await ensureLeaseTable(base.pool);
  const { rows } = await base.pool.query<LeaseRow>(
    `DELETE FROM ${LEASES} WHERE base = $1 AND ($2::boolean OR expires_at <= now())
       RETURNING run_id, holder, mode, acquired_at, expires_at`,
    [base.table, options.force],
  );
  if (rows[0]) return { broken: toLease(rows[0]) };
  const { rows: kept } = await base.pool.query<LeaseRow>(
    `SELECT run_id, holder, mode, acquired_at, expires_at FROM ${LEASES} WHERE base = $1`,
    [base.table],
  );
  return kept[0] ? { live: toLease(kept[0]) } : {};
}
