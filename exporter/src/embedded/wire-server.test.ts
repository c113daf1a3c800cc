// The embedded database's wire server with several clients at once, as tokenwatch uses it: a
// reader's connections and the demo traffic's, with parameters (extended protocol) and
// transactions. With @electric-sql/pglite-socket's server the first case failed with
// "unnamed prepared statement does not exist" within a few hundred queries.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { freePortOnLoopback } from './ports.ts';
import { PGliteWireServer } from './wire-server.ts';

describe('PGlite wire server', () => {
  let db: PGlite;
  let server: PGliteWireServer;
  let url: string;
  const dataDir = mkdtempSync(join(tmpdir(), 'tw-pglite-'));

  beforeAll(async () => {
    // On disk, as the embedded database is: writes then sync to the file system, and PGlite
    // yields to other connections' messages while they do.
    db = await PGlite.create({ dataDir });
    await db.exec('CREATE TABLE t (id int PRIMARY KEY, v text)');
    server = new PGliteWireServer(db);
    const port = await freePortOnLoopback();
    await server.listen(port);
    url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  });
  afterAll(async () => {
    await server.close();
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps concurrent parameterised queries of different connections apart', async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }));
    try {
      // Each connection asks for its own value with a different statement shape; an interleaved
      // Parse would bind one connection's parameters to another's statement.
      await Promise.all(clients.map(async (client, c) => {
        for (let i = 0; i < 100; i++) {
          // Two connections write in transactions, as the reader's snapshots and the traffic do.
          if (c < 2) await client.query('BEGIN');
          await client.query('INSERT INTO t VALUES ($1, $2)', [1000 + c * 1000 + i, `client ${c}`]);
          if (c < 2) await client.query('COMMIT');
          const sql = c % 2 === 0 ? 'SELECT $1::int + $2::int AS n' : 'SELECT ($1::text || $2::text)::int AS n';
          const { rows } = await client.query<{ n: number }>(sql, c % 2 === 0 ? [c * 1000, i] : [String(c), String(i).padStart(3, '0')]);
          expect(Number(rows[0]!.n)).toBe(c % 2 === 0 ? c * 1000 + i : Number(`${c}${String(i).padStart(3, '0')}`));
        }
      }));
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
    expect((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows[0]!.n).toBe(400);
  });

  it("runs only the open transaction's connection until it ends; an error in one connection leaves the others working", async () => {
    const a = new pg.Client({ connectionString: url });
    const b = new pg.Client({ connectionString: url });
    await a.connect();
    await b.connect();
    try {
      await a.query('BEGIN');
      await a.query('INSERT INTO t VALUES ($1, $2)', [1, 'in a transaction']);
      // b's read waits for a's transaction instead of running inside it.
      let bSaw: number | undefined;
      const bRead = b.query<{ n: string }>('SELECT count(*) AS n FROM t WHERE v = $1', ['in a transaction']).then((r) => (bSaw = Number(r.rows[0]!.n)));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(bSaw).toBeUndefined();
      await a.query('ROLLBACK');
      await bRead;
      expect(bSaw).toBe(0);
      await expect(b.query('SELECT * FROM no_such_table')).rejects.toThrow(/no_such_table/);
      expect((await a.query<{ n: number }>('SELECT $1::int AS n', [7])).rows[0]!.n).toBe(7);
      expect((await b.query<{ n: number }>('SELECT $1::int AS n', [8])).rows[0]!.n).toBe(8);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('rolls back what a closed connection left open, so the others are not blocked', async () => {
    const a = new pg.Client({ connectionString: url });
    await a.connect();
    await a.query('BEGIN');
    await a.query('INSERT INTO t VALUES ($1, $2)', [2, 'left open']);
    await a.end();
    const b = new pg.Client({ connectionString: url });
    await b.connect();
    try {
      expect((await b.query<{ n: string }>('SELECT count(*) AS n FROM t WHERE id = $1', [2])).rows[0]!.n).toBe('0');
    } finally {
      await b.end();
    }
  });
});
