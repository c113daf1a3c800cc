// The replication foundation against a real PostgreSQL with wal_level=logical: a slot created
// with an exported snapshot sees exactly the rows committed after the snapshot (the initial
// load under the snapshot sees the rest: no gap, no overlap); committed transactions arrive
// once each, in commit order, reduced to their ids (inserts, updates, deletes, truncates;
// savepoints rolled back leave nothing); what is not confirmed is streamed again after a
// restart, what is confirmed is not; the slot's lag shows on the source until confirmed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPgCluster, type PgCluster } from '../../testing/pg-cluster.ts';
import { ChangeStream, lsnValue, type CommittedTransaction } from './change-stream.ts';
import { createSlot, dropSlot, ensurePublication, replicationName, slotStatus, withoutReplicaIdentity } from './slot.ts';

describe('logical replication change stream', () => {
  let cluster: PgCluster;
  let db: pg.Pool;
  const slot = replicationName('Claude Nexus-Proxy');
  const keys = new Map([['public.requests', 'id']]);

  beforeAll(async () => {
    cluster = await startPgCluster({ settings: { wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' } });
    db = new pg.Pool({ connectionString: cluster.url() });
    await db.query('CREATE TABLE requests (id bigint PRIMARY KEY, tokens int NOT NULL, note text)');
    await db.query('INSERT INTO requests SELECT i, i, NULL FROM generate_series(1, 5) i');
  }, 60_000);
  afterAll(async () => {
    await db?.end();
    await cluster?.stop();
  });

  /** Streams until `count` transactions have arrived (or the timeout), confirming those `confirmUpTo` accepts. */
  async function collect(count: number, confirmUpTo?: (t: CommittedTransaction) => boolean, timeoutMs = 10_000): Promise<CommittedTransaction[]> {
    const seen: CommittedTransaction[] = [];
    let fail: Error | undefined;
    const stream: ChangeStream = new ChangeStream({
      connection: { connectionString: cluster.url() }, slot, publication: slot, keys,
      onTransaction: async (t) => {
        seen.push(t);
        if (confirmUpTo?.(t)) await stream.confirm(t.lsn);
      },
      onError: (error) => (fail = error),
    });
    stream.start();
    const deadline = Date.now() + timeoutMs;
    while (seen.length < count && Date.now() < deadline && !fail) await new Promise((r) => setTimeout(r, 50));
    // A moment for anything unexpected to arrive too.
    await new Promise((r) => setTimeout(r, 300));
    await stream.stop();
    // The walsender lets the slot go a moment after the connection ends: the next stream (or a
    // test of the slot's state) would find it still active.
    for (let waited = 0; (await slotStatus(db, slot)).active && waited < 10_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    if (fail) throw fail;
    return seen;
  }

  it('names the slot after the source, and refuses to publish a table without a replica identity', async () => {
    expect(slot).toBe('tokenwatch_claude_nexus_proxy');
    await db.query('CREATE TABLE IF NOT EXISTS no_key (value int)');
    expect(await withoutReplicaIdentity(db, ['public.requests', 'public.no_key'])).toEqual(['public.no_key']);
  });

  it('starts with an exported snapshot: the load under it and the stream meet with no gap and no overlap', async () => {
    expect(await ensurePublication(db, slot, ['public.requests'])).toEqual(['public.requests']);
    const created = await createSlot({ connectionString: cluster.url() }, slot);
    // Committed after the slot: streamed, and not in the snapshot.
    await db.query('INSERT INTO requests VALUES (6, 6, NULL)');
    const client = await db.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await client.query(`SET TRANSACTION SNAPSHOT '${created.snapshotName}'`);
      const { rows } = await client.query<{ id: string }>('SELECT id::text FROM requests ORDER BY id');
      expect(rows.map((r) => r.id)).toEqual(['1', '2', '3', '4', '5']);
      await client.query('COMMIT');
    } finally {
      client.release();
      await created.close();
    }
    const [first] = await collect(1);
    expect([...first!.tables.get('public.requests')!.upserted]).toEqual(['6']);
    expect(lsnValue(first!.lsn)).toBeGreaterThan(lsnValue(created.consistentPoint));
  });

  it('delivers each committed transaction once, in commit order, reduced to ids; a rolled-back savepoint leaves nothing', async () => {
    // Transaction 6 from the previous test was never confirmed: it comes again first.
    const a = await db.connect();
    const b = await db.connect();
    try {
      await a.query('BEGIN');
      await a.query('INSERT INTO requests VALUES (10, 10, NULL)'); // a begins first, commits last
      await b.query('BEGIN');
      await b.query('UPDATE requests SET tokens = 20 WHERE id = 2');
      await b.query('SAVEPOINT s1');
      await b.query('INSERT INTO requests VALUES (11, 11, NULL)');
      await b.query('ROLLBACK TO SAVEPOINT s1');
      await b.query('SAVEPOINT s2');
      await b.query('INSERT INTO requests VALUES (12, 12, NULL)');
      await b.query('RELEASE SAVEPOINT s2');
      await b.query('DELETE FROM requests WHERE id = 3');
      // Deleted and inserted again: not a new row (the event store may hold it).
      await b.query('INSERT INTO requests VALUES (3, 30, NULL)');
      await b.query('COMMIT');
      await a.query('UPDATE requests SET note = $1 WHERE id = 10', ['x'.repeat(3000)]);
      await a.query('COMMIT');
    } finally {
      a.release();
      b.release();
    }
    const seen = await collect(3);
    expect(seen.length).toBe(3);
    const ids = seen.map((t) => {
      const c = t.tables.get('public.requests')!;
      return { upserted: [...c.upserted], inserted: [...c.inserted], deleted: c.deleted };
    });
    // Inserted: rows that did not exist before their transaction (10 was then updated by it).
    expect(ids).toEqual([
      { upserted: ['6'], inserted: ['6'], deleted: 0 },
      { upserted: ['2', '12', '3'], inserted: ['12'], deleted: 1 },
      { upserted: ['10'], inserted: ['10'], deleted: 0 },
    ]);
    expect(lsnValue(seen[1]!.lsn)).toBeLessThan(lsnValue(seen[2]!.lsn));
  });

  it('streams again what was not confirmed, not what was; the source shows the lag until confirmed', async () => {
    const before = await slotStatus(db, slot);
    expect(before).toMatchObject({ exists: true, active: false });
    expect(before.lagBytes).toBeGreaterThan(0);
    // Confirm the first two of the three waiting transactions.
    let n = 0;
    const first = await collect(3, () => ++n <= 2);
    expect(first.length).toBe(3);
    const again = await collect(1);
    expect(again.length).toBe(1);
    expect([...again[0]!.tables.get('public.requests')!.upserted]).toEqual(['10']);
    await collect(1, () => true);
    expect(await collect(1, undefined, 1500)).toEqual([]);
    const after = await slotStatus(db, slot);
    expect(after.lagBytes).toBeLessThan(before.lagBytes);
    expect(after.confirmedLsn).not.toBeNull();
  });

  it('reports truncates, and drops the slot', async () => {
    await db.query('TRUNCATE requests');
    const [t] = await collect(1, () => true);
    expect(t!.tables.get('public.requests')).toMatchObject({ truncated: true });
    expect(await dropSlot(db, slot)).toBe(true);
    expect((await slotStatus(db, slot)).exists).toBe(false);
    expect(await dropSlot(db, slot)).toBe(false);
  });
});

/** A logical cluster with `ddl` run, the publication over public.requests and its slot created. */
async function slotCluster(slot: string, settings: Record<string, string>, ddl: string): Promise<{ cluster: PgCluster; db: pg.Pool }> {
  const cluster = await startPgCluster({ settings: { wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4', ...settings } });
  const db = new pg.Pool({ connectionString: cluster.url() });
  await db.query(ddl);
  await ensurePublication(db, slot, ['public.requests']);
  await (await createSlot({ connectionString: cluster.url() }, slot)).close();
  return { cluster, db };
}

/** A stream of `slot` on public.requests that confirms every transaction it receives. */
function confirmingStream(cluster: PgCluster, slot: string, options: { confirmed?: string; streaming?: boolean; largeTransactionRows?: number } = {}): { stream: ChangeStream; seen: CommittedTransaction[]; errors: Error[] } {
  const seen: CommittedTransaction[] = [];
  const errors: Error[] = [];
  const stream: ChangeStream = new ChangeStream({
    connection: { connectionString: cluster.url() }, slot, publication: slot, keys: new Map([['public.requests', 'id']]), ...options,
    onTransaction: async (t) => {
      seen.push(t);
      await stream.confirm(t.lsn);
    },
    onError: (error) => errors.push(error),
  });
  stream.start();
  return { stream, seen, errors };
}

// A slot only moves when its consumer confirms; pgoutput sends nothing for transactions on
// tables it does not publish. Without confirming keepalives, a platform writing mostly other
// tables would keep all that WAL, and an idle stream would be cut off by wal_sender_timeout.
describe('logical replication keepalives', () => {
  let cluster: PgCluster;
  let db: pg.Pool;
  const slot = replicationName('keepalive');

  beforeAll(async () => {
    ({ cluster, db } = await slotCluster(slot, { wal_sender_timeout: '2s' },
      'CREATE TABLE requests (id bigint PRIMARY KEY, tokens int NOT NULL); CREATE TABLE other (id bigserial PRIMARY KEY, payload text NOT NULL)'));
  }, 60_000);
  afterAll(async () => {
    await db?.end();
    await cluster?.stop();
  });

  it('confirms the server position when idle: WAL of unpublished tables is released, and an idle stream outlives wal_sender_timeout', async () => {
    const { stream, seen, errors } = confirmingStream(cluster, slot, { confirmed: (await slotStatus(db, slot)).confirmedLsn ?? undefined });
    try {
      const start = await slotStatus(db, slot);
      // About 8 MB of WAL on a table the publication does not hold, over 6 s (3 × wal_sender_timeout).
      for (let i = 0; i < 12; i++) {
        await db.query("INSERT INTO other (payload) SELECT repeat('x', 500) FROM generate_series(1, 1000)");
        await new Promise((r) => setTimeout(r, 500));
      }
      const written = Number((await db.query<{ n: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::text AS n', [start.currentLsn])).rows[0]!.n);
      expect(written).toBeGreaterThan(4_000_000);
      // The keepalives' confirmations catch up within a few of wal_sender_timeout / 2.
      let lag = Infinity;
      for (let i = 0; i < 80 && lag > 100_000; i++) {
        await new Promise((r) => setTimeout(r, 250));
        lag = (await slotStatus(db, slot)).lagBytes;
      }
      expect(lag).toBeLessThan(100_000);
      // Still the same connection, and it still delivers.
      await db.query('INSERT INTO requests VALUES (1, 10)');
      for (let i = 0; i < 40 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(seen.map((t) => [...t.tables.get('public.requests')!.upserted])).toEqual([['1']]);
      expect(errors).toEqual([]);
    } finally {
      await stream.stop();
    }
  });
});

// Large transactions (PostgreSQL 14 and later): with `streaming`, the server sends a
// transaction's changes in blocks while it runs once it exceeds logical_decoding_work_mem (set
// to its minimum here), interleaved with other transactions; a rolled-back subtransaction or
// transaction is announced by a Stream Abort. What reaches the handler must be what commits,
// in commit order, exactly as without streaming.
describe('logical replication of large transactions, streamed while they run', () => {
  let cluster: PgCluster;
  let db: pg.Pool;
  const slot = replicationName('streaming');

  beforeAll(async () => {
    ({ cluster, db } = await slotCluster(slot, { logical_decoding_work_mem: '64kB' }, 'CREATE TABLE requests (id bigint PRIMARY KEY, tokens int NOT NULL, note text)'));
  }, 60_000);
  afterAll(async () => {
    await db?.end();
    await cluster?.stop();
  });

  it('hands over only what commits, in commit order: subtransactions and transactions rolled back after being streamed leave nothing', async () => {
    const { stream, seen, errors } = confirmingStream(cluster, slot, { streaming: true });
    const rows = (from: number, to: number) => `INSERT INTO requests SELECT i, i, repeat('x', 40) FROM generate_series(${from}, ${to}) i`;
    const a = await db.connect();
    const c = await db.connect();
    try {
      await a.query('BEGIN');
      await a.query(rows(1, 5000));
      await a.query('SAVEPOINT s1');
      await a.query(rows(10_001, 15_000));
      await a.query('ROLLBACK TO SAVEPOINT s1');
      await a.query('SAVEPOINT s2');
      await a.query(rows(20_001, 23_000));
      await a.query('RELEASE SAVEPOINT s2');
      // A delete undone: not counted.
      await a.query('SAVEPOINT s3');
      await a.query('DELETE FROM requests WHERE id > 4000 AND id <= 5000');
      await a.query('ROLLBACK TO SAVEPOINT s3');
      // A small transaction commits while the large one is open (and partly streamed).
      await db.query(rows(50_000, 50_000));
      await a.query('UPDATE requests SET tokens = 0 WHERE id <= 20');
      await a.query('DELETE FROM requests WHERE id <= 10');
      await a.query('COMMIT');
      // Streamed, then rolled back as a whole.
      await c.query('BEGIN');
      await c.query(rows(60_001, 65_000));
      await c.query('ROLLBACK');
      await db.query(rows(70_000, 70_000));
      for (let i = 0; i < 100 && seen.length < 3; i++) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      a.release();
      c.release();
      await stream.stop();
    }
    expect(errors).toEqual([]);
    const summary = seen.map((t) => {
      const changes = t.tables.get('public.requests')!;
      const ids = [...changes.upserted].map(Number);
      return { n: ids.length, min: Math.min(...ids), max: Math.max(...ids), deleted: changes.deleted, inserted: changes.inserted.size };
    });
    expect(summary).toEqual([
      { n: 1, min: 50_000, max: 50_000, deleted: 0, inserted: 1 },
      // 1..5000 and 20001..23000: a streamed delete keeps its id (a later ROLLBACK TO
      // SAVEPOINT could undo it); read by id, a deleted row is not found. With a delete in it,
      // none of a streamed transaction's inserts is taken as new (the order across its
      // subtransactions is not kept).
      { n: 5000 + 3000, min: 1, max: 23_000, deleted: 10, inserted: 0 },
      { n: 1, min: 70_000, max: 70_000, deleted: 0, inserted: 1 },
    ]);
    expect([...seen[1]!.tables.get('public.requests')!.upserted].some((id) => Number(id) > 10_000 && Number(id) <= 15_000)).toBe(false);
    // Both large transactions were streamed while they ran, not decoded after their end.
    const { rows: [stats] } = await db.query<{ streamed: number }>('SELECT stream_txns::int AS streamed FROM pg_stat_replication_slots WHERE slot_name = $1', [slot]);
    expect(stats!.streamed).toBeGreaterThanOrEqual(2);
    expect(lsnValue(seen[0]!.lsn)).toBeLessThan(lsnValue(seen[1]!.lsn));
    expect(lsnValue(seen[1]!.lsn)).toBeLessThan(lsnValue(seen[2]!.lsn));
  });

  it('keeps no ids of a transaction past largeTransactionRows: the xids of what it left instead, the same rows by xmin', async () => {
    const { stream, seen, errors } = confirmingStream(cluster, slot, { streaming: true, largeTransactionRows: 1000 });
    const rows = (from: number, to: number) => `INSERT INTO requests SELECT i, i, repeat('x', 40) FROM generate_series(${from}, ${to}) i`;
    const a = await db.connect();
    try {
      await a.query('BEGIN');
      await a.query(rows(100_001, 104_000));
      await a.query('SAVEPOINT s1');
      await a.query(rows(110_001, 113_000));
      await a.query('ROLLBACK TO SAVEPOINT s1');
      await a.query('SAVEPOINT s2');
      // Rows of an earlier transaction updated in a subtransaction kept.
      await a.query('UPDATE requests SET tokens = -1 WHERE id BETWEEN 20001 AND 20500');
      await a.query('RELEASE SAVEPOINT s2');
      await a.query('DELETE FROM requests WHERE id BETWEEN 100001 AND 100010');
      await a.query('COMMIT');
      await db.query(rows(120_000, 120_000));
      for (let i = 0; i < 100 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      a.release();
      await stream.stop();
    }
    expect(errors).toEqual([]);
    expect(seen.length).toBe(2);
    const large = seen[0]!.tables.get('public.requests')!;
    expect({ listed: large.upserted.size, inserted: large.inserted.size, deleted: large.deleted, unlisted: large.unlistedRows })
      .toEqual({ listed: 0, inserted: 0, deleted: 10, unlisted: 4000 + 500 });
    // The rows with those xmins are exactly the rows the transaction left: not the rolled-back
    // savepoint's, not the next transaction's.
    const { rows: found } = await db.query<{ id: string }>('SELECT id::text AS id FROM requests WHERE xmin = ANY($1::xid[]) ORDER BY requests.id', [[...large.xids].map(String)]);
    const expected = [...Array.from({ length: 500 }, (_, i) => 20_001 + i), ...Array.from({ length: 3990 }, (_, i) => 100_011 + i)].map(String);
    expect(found.map((r) => r.id)).toEqual(expected);
    // A small transaction still lists its ids.
    expect([...seen[1]!.tables.get('public.requests')!.upserted]).toEqual(['120000']);
    expect(seen[1]!.tables.get('public.requests')!.xids.size).toBe(0);
  });
});

// Of a change only the id is decoded (pgoutput-ids.ts): the id must come out right from every
// form of change PostgreSQL sends, and a change without the id column must stop the stream,
// never be skipped.
describe('logical replication change ids', () => {
  let cluster: PgCluster;
  let db: pg.Pool;
  const slot = replicationName('ids');
  const big = "(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 300))";

  beforeAll(async () => {
    ({ cluster, db } = await slotCluster(slot, {}, 'CREATE TABLE requests (id bigint PRIMARY KEY, tokens int NOT NULL, note text)'));
  }, 60_000);
  afterAll(async () => {
    await db?.end();
    await cluster?.stop();
  });

  it('reads the id of inserts, of updates with a TOASTed column unchanged or a new key, and of deletes, with the default and the full replica identity', async () => {
    const { stream, seen, errors } = confirmingStream(cluster, slot);
    try {
      await db.query(`INSERT INTO requests VALUES (1, 1, ${big}), (2, 2, NULL), (3, 3, ${big})`);
      // The new row holds the TOASTed note as "unchanged": only its id is read.
      await db.query('UPDATE requests SET tokens = 10 WHERE id = 1');
      // A new key: the old key comes first ('K'), then the new row.
      await db.query('UPDATE requests SET id = 20 WHERE id = 2');
      await db.query('DELETE FROM requests WHERE id = 20');
      await db.query('ALTER TABLE requests REPLICA IDENTITY FULL');
      // The whole old row comes first ('O').
      await db.query('UPDATE requests SET tokens = 30 WHERE id = 3');
      await db.query('DELETE FROM requests WHERE id = 1');
      for (let i = 0; i < 50 && seen.length < 6; i++) await new Promise((r) => setTimeout(r, 100));
    } finally {
      await stream.stop();
    }
    expect(errors).toEqual([]);
    expect(seen.map((t) => {
      const c = t.tables.get('public.requests')!;
      return { upserted: [...c.upserted], deleted: c.deleted };
    })).toEqual([
      { upserted: ['1', '2', '3'], deleted: 0 },
      { upserted: ['1'], deleted: 0 },
      { upserted: ['20'], deleted: 0 },
      { upserted: [], deleted: 1 },
      { upserted: ['3'], deleted: 0 },
      { upserted: [], deleted: 1 },
    ]);
  });

  it('a change without the id column (renamed at the source) fails the stream with what to do, and is not confirmed', async () => {
    const { stream, seen, errors } = confirmingStream(cluster, slot);
    await db.query('ALTER TABLE requests RENAME COLUMN id TO request_id');
    try {
      await db.query('INSERT INTO requests VALUES (40, 40, NULL)');
      for (let i = 0; i < 50 && errors.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    } finally {
      await stream.stop();
    }
    expect(seen).toEqual([]);
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('the changes of public.requests have no column id to take ids from: renamed or dropped at the source? Name the column under columns:')]);
    expect((await slotStatus(db, slot)).lagBytes).toBeGreaterThan(0);
  });
});
