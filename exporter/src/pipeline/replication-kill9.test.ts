// kill -9 of `tokenwatch run` in mode: replication, at 8 random moments while a writer inserts
// rows and updates them as the proxy does (PostgreSQL with wal_level=logical): afterwards
// ClickHouse holds every source row exactly once, the rollups agree, and the totals in
// Prometheus (which scraped every run) equal SQL with no counter reset. Each kill comes at a
// random moment after a checkpoint the run wrote (the first after the initial load).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import pg from 'pg';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.ts';
import { sourceDdl } from '../embedded/ddl.ts';
import { killRunWhileWriting } from '../testing/kill-run.ts';

const KILLS = 8;

describe('kill -9 of run in mode: replication while rows arrive', () => {
  let cluster: PgCluster;
  let db: { url: string; pool: pg.Pool };
  let dir: string;
  beforeAll(async () => {
    // logical_decoding_work_mem at its minimum: larger transactions are streamed while they run, and kills land inside them too.
    cluster = await startPgCluster({ settings: { wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4', logical_decoding_work_mem: '64kB' } });
    db = { url: cluster.url(), pool: new pg.Pool({ connectionString: cluster.url() }) };
    await db.pool.query(sourceDdl('claude-nexus-proxy'));
    // A history to load first, under the slot's snapshot.
    await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
      SELECT gen_random_uuid(), 'tenant-' || (i % 5) || '.example.com', now() - make_interval(secs => i * 2), 'claude-opus-4-1-20250805', 'inference',
        CASE WHEN i % 23 = 0 THEN 500 ELSE 200 END, i % 800, i % 333
      FROM generate_series(1, 20000) AS i`);
    dir = mkdtempSync(join(tmpdir(), 'tw-replication-kill9-'));
  }, 60_000);
  afterAll(async () => {
    await db?.pool.end();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`loses and duplicates nothing across ${KILLS} kills`, async () => {
    await killRunWhileWriting({ db, dir, config: 'sources:\n  - type: claude-nexus-proxy\n    mode: replication\n', kills: KILLS, seed: 912, label: 'replication: ' });
  });
});
