// The planner's row estimate against a real PostgreSQL: a table never vacuumed or analyzed
// still gets an estimate of the right size (the bulk backfill's first chunk width and the
// progress bar's total depend on it), and an analyzed one gets its exact size.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { plannerRowEstimate } from './postgres.ts';

describe('plannerRowEstimate', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    // Autovacuum would analyze the table behind the test's back.
    await db.pool.query(`CREATE TABLE "Events" (id bigint, label text) WITH (autovacuum_enabled = false);
      INSERT INTO "Events" SELECT i, 'event ' || i FROM generate_series(1, 20000) AS i`);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('estimates a table never analyzed from its size, and an analyzed one exactly', async () => {
    const { rows } = await db.pool.query<{ reltuples: number }>(`SELECT reltuples FROM pg_class WHERE oid = '"Events"'::regclass`);
    expect(rows[0]!.reltuples).toBe(-1); // never vacuumed or analyzed: pg_class knows nothing
    const guess = await plannerRowEstimate(db.pool, 'public."Events"');
    expect(guess).toBeGreaterThan(5_000);
    expect(guess).toBeLessThan(80_000);

    await db.pool.query('ANALYZE "Events"');
    expect(await plannerRowEstimate(db.pool, 'public."Events"')).toBe(20_000);
  });
});
