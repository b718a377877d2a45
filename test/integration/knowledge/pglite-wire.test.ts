import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../../src/knowledge/pglite/embedded.js';

// The PGlite wire server as `pg` sees it: COPY FROM STDIN works, a connection inside a
// transaction keeps the single backend until it ends (others wait, then see the result),
// a client that disconnects mid-transaction is rolled back, a client idle in a transaction
// is cut off, and parameterised queries from several connections never mix.

let db: EmbeddedPostgres;

beforeAll(async () => {
  db = await startEmbeddedPostgres({ idleInTransactionTimeoutMs: 500 });
  const setup = new pg.Client({ connectionString: db.url });
  await setup.connect();
  await setup.query('CREATE TABLE items (id int PRIMARY KEY, note text, v vector(3))');
  await setup.end();
});

afterAll(async () => {
  await db?.stop();
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.url });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

describe('PGlite wire server', () => {
  it('runs COPY FROM STDIN, and a failed COPY leaves the connection usable', async () => {
    const c = await client();
    await pipeline(
      Readable.from(['1\tone\t[1,0,0]\n', '2\ttwo\t[0,1,0]\n']),
      c.query(copyFrom('COPY items FROM STDIN')),
    );
    const failed = await pipeline(
      Readable.from(['x\tbad\t[1]\n']),
      c.query(copyFrom('COPY items FROM STDIN')),
    ).catch((e: Error) => e);
    expect((failed as Error).message).toMatch(/invalid input syntax/);
    expect((await c.query('SELECT count(*)::int AS n FROM items')).rows[0].n).toBe(2);
    await c.end();
  });

  it('keeps other connections out of an open transaction until it commits', async () => {
    const writer = await client();
    const reader = await client();
    await writer.query('BEGIN');
    await writer.query("INSERT INTO items VALUES (10, 'in tx', '[1,1,1]')");
    const before = db.stats();
    let answered = false;
    const read = reader.query('SELECT count(*)::int AS n FROM items WHERE id = 10').then((r) => {
      answered = true;
      return r.rows[0].n as number;
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    await writer.query('COMMIT');
    expect(await read).toBe(1);
    // The reader's wait is what serialising on one session costs, and the counters show it.
    const after = db.stats();
    expect(after.units - before.units).toBeGreaterThanOrEqual(2);
    expect(after.waitMs - before.waitMs).toBeGreaterThanOrEqual(50);
    expect(after.busyMs).toBeGreaterThanOrEqual(before.busyMs);
    await Promise.all([writer.end(), reader.end()]);
  });

  it('rolls back the transaction of a client that disconnects', async () => {
    const doomed = await client();
    await doomed.query('BEGIN');
    await doomed.query("INSERT INTO items VALUES (20, 'lost', '[0,0,1]')");
    const other = await client();
    const waiting = other.query('SELECT count(*)::int AS n FROM items WHERE id = 20');
    (doomed as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    expect((await waiting).rows[0].n).toBe(0);
    await other.end();
  });

  it('cuts off a client idle in a transaction so the others can go on', async () => {
    const stuck = await client();
    await stuck.query('BEGIN');
    await stuck.query("INSERT INTO items VALUES (30, 'stuck', '[1,0,1]')");
    const other = await client();
    expect((await other.query('SELECT count(*)::int AS n FROM items WHERE id = 30')).rows[0].n).toBe(0);
    await expect(stuck.query('COMMIT')).rejects.toThrow();
    await other.end();
  });

  it('never mixes parameterised queries of concurrent connections', async () => {
    const clients = await Promise.all([client(), client(), client(), client()]);
    const wrong: string[] = [];
    await Promise.all(
      clients.map(async (c, k) => {
        for (let i = 0; i < 100; i++) {
          const { rows } = await c.query('SELECT $1::int + $2::int AS sum, $3::text AS who', [i, k, `c${k}`]);
          if (rows[0].sum !== i + k || rows[0].who !== `c${k}`) wrong.push(`${k}/${i}`);
        }
      }),
    );
    expect(wrong).toEqual([]);
    await Promise.all(clients.map((c) => c.end()));
  });
});
