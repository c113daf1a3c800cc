// The source database drops tokenwatch's connections in the middle of a backfill (a restart,
// a failover, an administrator): the backfill fails with the connection error instead of
// taking the process down, and the next one resumes from the checkpoint and delivers every
// row.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { API_REQUEST_COLUMNS, apiRequestRows, insertRows } from '../embedded/seed.ts';
import { Pipeline } from './pipeline.ts';
import { MemorySink } from '../sinks/memory-sink.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';

describe('source connections dropped during a backfill', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(20_000, { end: new Date(), spanMs: 7 * 24 * 3_600_000 }));
  });
  afterAll(async () => {
    await db.drop();
  });

  it('fails the backfill, not the process, and the next backfill resumes and delivers every row', async () => {
    const checkpoints = new MemoryCheckpointStore();
    // Small pages: the backfill takes many queries (its progress is saved after the first
    // page, then every second).
    const config = testConfig(db.url, { sources: [{ type: 'claude-nexus-proxy', batchSize: 200 }] });
    const first = new MemorySink();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [first], store: checkpoints, autoSources: false });
    let settled = false;
    const backfill = pipeline.backfill().finally(() => (settled = true));
    backfill.catch(() => undefined);
    while (first.events.length < 2000 && !settled) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(settled, 'the backfill ended before the connections were dropped').toBe(false);
    const { rows: terminated } = await db.pool.query<{ n: number }>(
      "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tokenwatch/%'",
    );
    expect(terminated[0]!.n).toBeGreaterThan(0);
    await expect(backfill).rejects.toThrow(/terminat|Connection/i);
    await pipeline.close();
    // pg reports a lost connection as an 'error' event too, when the socket closes.
    await new Promise((resolve) => setTimeout(resolve, 500));

    const second = new MemorySink();
    const again = await Pipeline.open({ config, logger: silentLogger(), sinks: [second], store: checkpoints, autoSources: false });
    await again.backfill();
    await again.close();
    const ids = (sink: MemorySink) => sink.events.flatMap((e) => (e.kind === 'request' ? [e.requestId] : []));
    const { rows } = await db.pool.query<{ id: string }>("SELECT request_id::text AS id FROM api_requests WHERE request_type = 'inference'");
    const delivered = new Set([...ids(first), ...ids(second)]);
    expect(delivered.size).toBe(rows.length);
    for (const row of rows) expect(delivered.has(row.id)).toBe(true);
    // Resumed from the checkpoint, not from the start.
    expect(ids(second).length).toBeLessThan(rows.length);
  });
});
