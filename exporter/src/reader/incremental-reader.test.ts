// The incremental reader against a real PostgreSQL: late and out-of-order commits, restarts,
// interrupted polls, and index use.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { IncrementalReader, type IncrementalStreamSpec } from './incremental-reader.ts';
import { chunkTarget } from './chunked-read.ts';
import { FileCheckpointStore, MemoryCheckpointStore, type CheckpointStore } from './checkpoint-store.ts';
import { usesIndex } from '../cli/check.ts';
import { random, uuidFrom } from '../embedded/seed.ts';

function spec(overrides: Partial<IncrementalStreamSpec> = {}): IncrementalStreamSpec {
  return {
    id: 'test/api_requests',
    table: '"public"."api_requests"',
    cursorColumn: '"timestamp"',
    idColumn: '"request_id"',
    selectList: 't."request_id"::text AS request_id',
    maxCommitDelayMs: 15 * 60_000,
    batchSize: 500,
    startFrom: 'earliest',
    ...overrides,
  };
}

function reader(db: TestDatabase, store: CheckpointStore, overrides: Partial<IncrementalStreamSpec> = {}): IncrementalReader {
  return new IncrementalReader(spec(overrides), store, () => db.pool.connect());
}

async function insert(client: pg.PoolClient | pg.Pool, id: string, ageMs: number): Promise<void> {
  await client.query(
    `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type) VALUES ($1, 'd.example', now() - make_interval(secs => $2::double precision / 1000), 'claude-sonnet-4-5', 'inference')`,
    [id, ageMs],
  );
}

async function tableIds(db: TestDatabase): Promise<string[]> {
  const { rows } = await db.pool.query<{ id: string }>('SELECT request_id::text AS id FROM api_requests');
  return rows.map((r) => r.id).sort();
}

/** Polls and records every row handed over, counting duplicates. */
class Collector {
  readonly seen = new Map<string, number>();
  async pollWith(r: IncrementalReader): Promise<number> {
    const result = await r.poll(async (rows) => {
      for (const row of rows) this.seen.set(String(row.request_id), (this.seen.get(String(row.request_id)) ?? 0) + 1);
    });
    return result.rows;
  }
  duplicates(): string[] {
    return [...this.seen].filter(([, n]) => n > 1).map(([id]) => id);
  }
  ids(): string[] {
    return [...this.seen.keys()].sort();
  }
}

describe('IncrementalReader', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
  });
  afterAll(async () => {
    await db.drop();
  });

  it('emits every row of 10,000 concurrent, late, out-of-order commits exactly once, across a restart', async () => {
    await db.pool.query('TRUNCATE api_requests');
    const stateDir = mkdtempSync(join(tmpdir(), 'tokenwatch-ckpt-'));
    const collector = new Collector();
    let current = reader(db, new FileCheckpointStore(stateDir));
    const target = 10_000;
    let inserted = 0;
    let rolledBack = 0;
    let writersDone = false;

    const writer = async (w: number): Promise<void> => {
      const rnd = random(1000 + w);
      const client = await db.pool.connect();
      try {
        let n = 0;
        while (inserted < target) {
          const rows = Math.min(1 + Math.floor(rnd() * 4), target - inserted);
          inserted += rows;
          const roll = rnd();
          // Most transactions commit quickly; one in ten is held open up to 1.5 s; one in five
          // writes rows whose timestamp is 1 to 5 minutes in the past (a long request).
          const holdMs = roll < 0.1 ? 300 + rnd() * 1200 : rnd() * 20;
          const rollback = rnd() < 0.03;
          await client.query('BEGIN');
          for (let i = 0; i < rows; i++) {
            const ageMs = rnd() < 0.2 ? 60_000 + rnd() * 240_000 : rnd() * 2000;
            await insert(client, uuidFrom(`w${w}-${n++}`), ageMs);
          }
          await new Promise((resolve) => setTimeout(resolve, holdMs));
          if (rollback) {
            await client.query('ROLLBACK');
            inserted -= rows;
            rolledBack += rows;
          } else {
            await client.query('COMMIT');
          }
        }
      } finally {
        client.release();
      }
    };

    const polling = (async () => {
      let polls = 0;
      while (!writersDone) {
        await collector.pollWith(current);
        polls += 1;
        // Restart halfway: a new reader on the same checkpoint directory.
        if (polls === 20) current = reader(db, new FileCheckpointStore(stateDir));
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
      return polls;
    })();
    await Promise.all(Array.from({ length: 16 }, (_, w) => writer(w)));
    writersDone = true;
    const polls = await polling;
    await collector.pollWith(current);

    const table = await tableIds(db);
    expect(table).toHaveLength(target);
    expect(rolledBack).toBeGreaterThan(0);
    expect(polls).toBeGreaterThan(20);
    expect(collector.duplicates()).toEqual([]);
    expect(collector.ids()).toEqual(table);
    rmSync(stateDir, { recursive: true, force: true });
  });

  /**
   * Writers whose transactions commit up to 3× maxCommitDelay after their rows' timestamps,
   * read by a polling loop that runs the straggler sweep when it is due (as the pipeline
   * does) and restarts halfway. Returns what was read, and how much of it the sweep found.
   */
  async function lateCommitRun(sweep: { sweepWindowMs: number; sweepIntervalMs: number }): Promise<{ collector: Collector; swept: number; table: string[] }> {
    await db.pool.query('TRUNCATE api_requests');
    const stateDir = mkdtempSync(join(tmpdir(), 'tokenwatch-late-'));
    const settings = { maxCommitDelayMs: 1000, ...sweep };
    const collector = new Collector();
    let current = reader(db, new FileCheckpointStore(stateDir), settings);
    let swept = 0;
    const readOnce = async (r: IncrementalReader) => {
      if (r.sweepDue()) {
        swept += (await r.sweep(async (rows) => {
          for (const row of rows) collector.seen.set(String(row.request_id), (collector.seen.get(String(row.request_id)) ?? 0) + 1);
        })).rows;
      }
      await collector.pollWith(r);
    };
    let writersDone = false;
    const writer = async (w: number): Promise<void> => {
      const rnd = random(2000 + w);
      const client = await db.pool.connect();
      try {
        for (let n = 0; n < 12; n++) {
          await client.query('BEGIN');
          for (let i = 0; i < 3; i++) await insert(client, uuidFrom(`late-w${w}-${n}-${i}`), rnd() * 300);
          // Two transactions in five commit 1.2 to 3 s after their rows' timestamps.
          await new Promise((resolve) => setTimeout(resolve, rnd() < 0.4 ? 1200 + rnd() * 1800 : rnd() * 30));
          await client.query('COMMIT');
        }
      } finally {
        client.release();
      }
    };
    const polling = (async () => {
      for (let polls = 0; !writersDone; polls++) {
        await readOnce(current);
        if (polls === 40) current = reader(db, new FileCheckpointStore(stateDir), settings);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    await Promise.all(Array.from({ length: 8 }, (_, w) => writer(w)));
    writersDone = true;
    await polling;
    // Past the last commit by more than the sweep interval: one more sweep and poll.
    await new Promise((resolve) => setTimeout(resolve, sweep.sweepIntervalMs + 100));
    await readOnce(current);
    rmSync(stateDir, { recursive: true, force: true });
    return { collector, swept, table: await tableIds(db) };
  }

  it('hands over rows written inside savepoints of a transaction open across polls exactly once, and never a rolled-back savepoint\'s rows', async () => {
    // Defect: txid_current_snapshot() lists top-level transactions only; a row inserted by a
    // released savepoint of a transaction still open at a poll looked already visible, and
    // was never handed over (350 of 360 rows lost). Django's nested atomic(), SQLAlchemy's
    // begin_nested() write like this.
    await db.pool.query('TRUNCATE api_requests');
    const collector = new Collector();
    const r = reader(db, new MemoryCheckpointStore());
    await collector.pollWith(r);
    const writers = await Promise.all(Array.from({ length: 3 }, () => db.pool.connect()));
    const kept: string[] = [];
    try {
      for (const client of writers) await client.query('BEGIN');
      for (let round = 0; round < 4; round++) {
        for (const [w, client] of writers.entries()) {
          for (let i = 0; i < 10; i++) {
            const id = uuidFrom(`sp-${w}-${round}-${i}`);
            await client.query('SAVEPOINT s');
            await insert(client, id, 10);
            if (i % 5 === 4) {
              await client.query('ROLLBACK TO SAVEPOINT s');
            } else {
              await client.query('RELEASE SAVEPOINT s');
              kept.push(id);
            }
          }
        }
        // Polls while all three transactions are open, between their savepoints.
        expect(await collector.pollWith(r)).toBe(0);
      }
      // A row committed meanwhile by another transaction is handed over while they stay open.
      await insert(db.pool, uuidFrom('sp-plain'), 10);
      kept.push(uuidFrom('sp-plain'));
      expect(await collector.pollWith(r)).toBe(1);
      for (const client of writers) {
        await client.query('COMMIT');
        await collector.pollWith(r);
      }
    } finally {
      for (const client of writers) client.release();
    }
    await collector.pollWith(r);
    expect(kept).toHaveLength(3 * 4 * 8 + 1);
    expect(collector.duplicates()).toEqual([]);
    expect(collector.ids()).toEqual([...kept].sort());
    expect(await tableIds(db)).toEqual([...kept].sort());
  });

  it('hands over a row written in steps once, when it is complete, or as it is when its timestamp falls below the watermark', async () => {
    // Claude Nexus Proxy inserts the request row without its response, then updates it. A
    // poll between the two statements handed the row over twice (the insert and the update).
    await db.pool.query('TRUNCATE api_requests');
    const seen: { id: string; status: unknown; complete: unknown }[] = [];
    const store = new MemoryCheckpointStore();
    const r = reader(db, store, { maxCommitDelayMs: 1500, complete: 't.response_status IS NOT NULL', selectList: 't."request_id"::text AS request_id, t.response_status' });
    const poll = () => r.poll(async (rows) => {
      for (const row of rows) seen.push({ id: String(row.request_id), status: row.response_status, complete: row.__complete });
    });
    await poll();
    const ids = Array.from({ length: 6 }, (_, i) => uuidFrom(`steps-${i}`));
    for (const id of ids) await insert(db.pool, id, 0);
    expect((await poll()).rows).toBe(0);
    // Four get their response (two of them a second update later), two never do.
    for (const id of ids.slice(0, 4)) await db.pool.query('UPDATE api_requests SET response_status = 200, output_tokens = 7 WHERE request_id = $1', [id]);
    const completed = await poll();
    expect(completed).toMatchObject({ rows: 4, incomplete: 0 });
    await new Promise((resolve) => setTimeout(resolve, 1700));
    const late = await poll();
    expect(late).toMatchObject({ rows: 2, incomplete: 2 });
    expect((await poll()).rows).toBe(0);
    expect(seen.map((s) => s.id).sort()).toEqual([...ids].sort());
    expect(seen.filter((s) => s.complete === false).map((s) => s.id).sort()).toEqual(ids.slice(4).sort());
    expect(seen.filter((s) => s.complete === true).every((s) => s.status === 200)).toBe(true);
  });

  it('hands over rows that commit up to 3× maxCommitDelay late exactly once, through the straggler sweep', async () => {
    const { collector, swept, table } = await lateCommitRun({ sweepWindowMs: 60_000, sweepIntervalMs: 500 });
    expect(table).toHaveLength(8 * 12 * 3);
    expect(swept).toBeGreaterThan(0);
    expect(collector.duplicates()).toEqual([]);
    expect(collector.ids()).toEqual(table);
  });

  it('without the sweep, the same late commits are missed (the defect the sweep fixes)', async () => {
    const { collector, table } = await lateCommitRun({ sweepWindowMs: 0, sweepIntervalMs: 500 });
    expect(collector.duplicates()).toEqual([]);
    expect(collector.ids().length).toBeLessThan(table.length);
  });

  it('a poll with nothing new returns nothing, and a restart resumes from the durable checkpoint', async () => {
    await db.pool.query('TRUNCATE api_requests');
    const stateDir = mkdtempSync(join(tmpdir(), 'tokenwatch-ckpt-'));
    for (let i = 0; i < 50; i++) await insert(db.pool, uuidFrom(`a-${i}`), i * 1000);
    const collector = new Collector();
    expect(await collector.pollWith(reader(db, new FileCheckpointStore(stateDir)))).toBe(50);
    expect(await collector.pollWith(reader(db, new FileCheckpointStore(stateDir)))).toBe(0);
    // A row committed after the restart with a timestamp older than everything read so far.
    await insert(db.pool, uuidFrom('late'), 10 * 60_000);
    expect(await collector.pollWith(reader(db, new FileCheckpointStore(stateDir)))).toBe(1);
    expect(collector.duplicates()).toEqual([]);
    expect(collector.ids()).toEqual(await tableIds(db));
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('resumes an interrupted backfill after its last completed page, without losing rows that arrived meanwhile', async () => {
    await db.pool.query('TRUNCATE api_requests');
    for (let i = 0; i < 1000; i++) await insert(db.pool, uuidFrom(`b-${i}`), i * 100);
    const store = new MemoryCheckpointStore();
    const handled = new Map<string, number>();
    let pages = 0;
    const crashing = reader(db, store, { batchSize: 100, progressSaveIntervalMs: 0 });
    await expect(
      crashing.poll(async (rows) => {
        pages += 1;
        if (pages === 4) throw new Error('killed');
        for (const row of rows) handled.set(String(row.request_id), (handled.get(String(row.request_id)) ?? 0) + 1);
      }),
    ).rejects.toThrow('killed');
    expect(handled.size).toBe(300);
    expect(store.load('test/api_requests')?.inProgress).not.toBeNull();
    // Rows that commit while the exporter is down, some older than the interruption point.
    for (let i = 0; i < 20; i++) await insert(db.pool, uuidFrom(`c-${i}`), i * 5000);
    const resumed = reader(db, store, { batchSize: 100, progressSaveIntervalMs: 0 });
    let read = 0;
    await resumed.poll(async (rows) => {
      read += rows.length;
      for (const row of rows) handled.set(String(row.request_id), (handled.get(String(row.request_id)) ?? 0) + 1);
    });
    expect(read).toBe(720);
    expect([...handled.values()].every((n) => n === 1)).toBe(true);
    expect([...handled.keys()].sort()).toEqual(await tableIds(db));
  });

  it('startFrom "now" skips rows already committed but still reads late commits within maxCommitDelay', async () => {
    await db.pool.query('TRUNCATE api_requests');
    for (let i = 0; i < 10; i++) await insert(db.pool, uuidFrom(`old-${i}`), 1000);
    const collector = new Collector();
    const r = reader(db, new MemoryCheckpointStore(), { startFrom: 'now' });
    expect(await collector.pollWith(r)).toBe(0);
    await insert(db.pool, uuidFrom('late-now'), 3 * 60_000);
    expect(await collector.pollWith(r)).toBe(1);
    expect(collector.ids()).toEqual([uuidFrom('late-now')]);
  });

  it('polls a 100k-row table through the timestamp index, never a sequential scan', async () => {
    await db.pool.query('TRUNCATE api_requests');
    await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type)
      SELECT gen_random_uuid(), 'd' || (i % 10), now() - make_interval(secs => i * 6), 'claude-sonnet-4-5', 'inference'
      FROM generate_series(1, 100000) AS i`);
    await db.pool.query('ANALYZE api_requests');
    const r = reader(db, new MemoryCheckpointStore(), { batchSize: 5000, filter: (param) => `t."request_type" = ANY(${param(['inference'])}::text[])` });
    const { rows } = await db.pool.query<{ s: string; w: string }>("SELECT txid_current_snapshot()::text AS s, (now() - interval '15 minutes')::text AS w");
    const snapshot = rows[0]!.s;
    const steady = { version: 1 as const, watermark: rows[0]!.w, snapshot, inProgress: null, rowsEmitted: 0, updatedAt: '' };
    const tail = r.pageQuery(steady, null);
    const tailPlan = await usesIndex(db.pool, tail.sql, tail.params);
    expect(tailPlan.plan).toMatch(/Index Scan using idx_api_requests_timestamp/);
    expect(tailPlan.indexed).toBe(true);
    // A page in the middle of a backfill starts the index scan at the page boundary.
    const backfill = { ...steady, watermark: null, snapshot: null };
    const { rows: mid } = await db.pool.query<{ c: string; id: string }>(
      `SELECT timestamp::text AS c, request_id::text AS id FROM api_requests ORDER BY timestamp, request_id::text COLLATE "C" OFFSET 50000 LIMIT 1`,
    );
    const page = r.pageQuery(backfill, { cursor: mid[0]!.c, id: mid[0]!.id });
    const pagePlan = await usesIndex(db.pool, page.sql, page.params);
    expect(pagePlan.plan).toMatch(/Index Scan using idx_api_requests_timestamp/);
    expect(pagePlan.indexed).toBe(true);
  });
});

describe('chunkTarget', () => {
  it('ramps up over the first chunks, holds the chunk size, and leaves a small last chunk', () => {
    const size = 250_000;
    expect([0, 1, 2, 3].map((i) => chunkTarget(i, 10_000_000, size))).toEqual([62_500, 125_000, 250_000, 250_000]);
    // Once a full chunk would leave less than a quarter chunk, the chunk leaves exactly one.
    expect([400_000, 312_500, 200_000, 62_500, 10_000, 0].map((left) => chunkTarget(5, left, size))).toEqual([250_000, 250_000, 137_500, 62_500, 62_500, 62_500]);
    // A million rows: 62.5k, 125k, 250k, 250k, 250k and the last 62.5k.
    const chunks: number[] = [];
    for (let left = 1_000_000; left > 0; ) {
      const take = Math.min(left, chunkTarget(chunks.length, left, size));
      chunks.push(take);
      left -= take;
    }
    expect(chunks).toEqual([62_500, 125_000, 250_000, 250_000, 250_000, 62_500]);
  });
});
