import { setTimeout as sleep } from 'node:timers/promises';
import { StoreError } from '../errors.js';
import { type PgBase, withTransaction } from './pool.js';
import { exists, tableNames } from './schema.js';

// Blue/green: a full re-index builds the shadow generation, then swaps it in by renames in
// one transaction; the generation it replaced stays as `previous` until the next swap, so
// an operator can roll back.

export async function dropGeneration(base: PgBase, generation: 'shadow' | 'previous'): Promise<void> {
  const { chunks, sources } = tableNames(base.table, generation);
  await base.pool.query(`DROP TABLE IF EXISTS ${chunks}; DROP TABLE IF EXISTS ${sources}`);
}

/**
 * Makes the shadow live by renames in one transaction. The generation it replaces becomes
 * `previous` (kept for rollback). The generation before that is dropped first, in its own
 * statement, never inside the swap. A short lock_timeout keeps the swap from queueing
 * readers behind it; it is retried with backoff.
 */
export async function swap(
  base: PgBase,
  options: { lockTimeoutMs?: number; attempts?: number } = {},
): Promise<{ attempts: number; replaced: boolean }> {
  if (!(await exists(base, 'shadow')))
    throw new StoreError(`no shadow generation of ${base.table} to swap in`);
  await dropGeneration(base, 'previous');
  const live = tableNames(base.table, 'live');
  const shadow = tableNames(base.table, 'shadow');
  const previous = tableNames(base.table, 'previous');
  const replaced = await exists(base, 'live');
  const attempts = options.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    try {
      await withTransaction(base.pool, async (client) => {
        await client.query(`SET LOCAL lock_timeout = '${options.lockTimeoutMs ?? 2000}ms'`);
        if (replaced) {
          await client.query(`ALTER TABLE ${live.chunks} RENAME TO ${previous.chunks}`);
          await client.query(`ALTER TABLE ${live.sources} RENAME TO ${previous.sources}`);
        }
        await client.query(`ALTER TABLE ${shadow.chunks} RENAME TO ${live.chunks}`);
        await client.query(`ALTER TABLE ${shadow.sources} RENAME TO ${live.sources}`);
      });
      return { attempts: attempt, replaced };
    } catch (err) {
      // 55P03 lock_not_available: readers hold the table; try again shortly.
      if ((err as { code?: string }).code !== '55P03' || attempt >= attempts) throw err;
      base.logger?.warn({ attempt, table: base.table }, 'swap could not take its locks in time; retrying');
      await sleep(200 * 2 ** attempt);
    }
  }
}

/** Puts the previous generation back (and the current one becomes previous). */
export async function rollback(base: PgBase, options: { lockTimeoutMs?: number } = {}): Promise<void> {
  if (!(await exists(base, 'previous')))
    throw new StoreError(`${base.table} has no previous generation to roll back to`);
  const live = tableNames(base.table, 'live');
  const previous = tableNames(base.table, 'previous');
  await withTransaction(base.pool, async (client) => {
    await client.query(`SET LOCAL lock_timeout = '${options.lockTimeoutMs ?? 2000}ms'`);
    for (const kind of ['chunks', 'sources'] as const) {
      const parking = `${live[kind]}__rollback`;
      await client.query(`ALTER TABLE ${live[kind]} RENAME TO ${parking}`);
      await client.query(`ALTER TABLE ${previous[kind]} RENAME TO ${live[kind]}`);
      await client.query(`ALTER TABLE ${parking} RENAME TO ${previous[kind]}`);
    }
  });
}
