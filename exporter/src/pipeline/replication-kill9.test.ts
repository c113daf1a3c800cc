// kill -9 of `tokenwatch run` in mode: replication, at 8 random moments while a writer inserts
// rows and updates them as the proxy does (PostgreSQL with wal_level=logical): afterwards
// ClickHouse holds every source row exactly once, the rollups agree, and the totals in
// Prometheus (which scraped every run) equal SQL with no counter reset. Each kill comes at a
// random moment after a checkpoint the run wrote (the first after the initial load).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.ts';
import { sourceDdl } from '../embedded/ddl.ts';
import { freePortOnLoopback } from '../embedded/ports.ts';
import { random } from '../embedded/seed.ts';
import { startPrometheus, type PrometheusServer } from '../testing/prometheus.ts';
import { afterCheckpoint, checkpointWrittenAt, startTokenwatch, waitUntil } from '../testing/tokenwatch-process.ts';
import { startWriter } from '../testing/writer.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { testConfig } from '../testing/fixtures.ts';
import { openStore } from '../store/clickhouse.ts';

const KILLS = 8;
const STREAM = 'claude-nexus-proxy/api_requests';

describe('kill -9 of run in mode: replication while rows arrive', () => {
  let cluster: PgCluster;
  let db: { url: string; pool: pg.Pool };
  let prometheus: PrometheusServer;
  let dir: string;
  beforeAll(async () => {
    cluster = await startPgCluster({ settings: { wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' } });
    db = { url: cluster.url(), pool: new pg.Pool({ connectionString: cluster.url() }) };
    await db.pool.query(sourceDdl('claude-nexus-proxy'));
    // A history to read first, so some kills land in the middle of the first long read.
    await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
      SELECT gen_random_uuid(), 'tenant-' || (i % 5) || '.example.com', now() - make_interval(secs => i * 2), 'claude-opus-4-1-20250805', 'inference',
        CASE WHEN i % 23 = 0 THEN 500 ELSE 200 END, i % 800, i % 333
      FROM generate_series(1, 20000) AS i`);
    dir = mkdtempSync(join(tmpdir(), 'tw-replication-kill9-'));
  }, 60_000);
  afterAll(async () => {
    await prometheus?.stop();
    await db?.pool.end();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`loses and duplicates nothing across ${KILLS} kills`, async () => {
    const port = await freePortOnLoopback();
    const address = `127.0.0.1:${port}`;
    prometheus = await startPrometheus([{ job: 'tokenwatch', targets: [address] }]);
    const configFile = join(dir, 'tokenwatch.yaml');
    writeFileSync(configFile, 'sources:\n  - type: claude-nexus-proxy\n    mode: replication\n');
    const env = { DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: join(dir, 'state'), TOKENWATCH_CONFIG: configFile, TOKENWATCH_LOG_LEVEL: 'warn' };
    // Written as the proxy writes: INSERT, UPDATE with the response, UPDATE (Task tool).
    const writer = startWriter(db.url, { rowsPerInsert: 4, everyMs: 50, inSteps: true });
    const rnd = random(912);
    const delays: number[] = [];
    const state = join(dir, 'state');
    for (let i = 0; i < KILLS; i++) {
      // Killed at a random moment after the run's first new checkpoint (observed progress,
      // not a fixed delay, which a loaded machine can spend before the first poll).
      const before = checkpointWrittenAt(state, STREAM);
      const tw = startTokenwatch(['run'], env, address);
      const delay = Math.round(rnd() * 2000);
      delays.push(delay);
      await afterCheckpoint(state, STREAM, before, tw.exited, delay);
      tw.child.kill('SIGKILL');
      expect((await tw.exited).signal).toBe('SIGKILL');
    }
    await writer.stop();
    const { rows } = await db.pool.query<{ n: number; output: string }>("SELECT count(*)::int AS n, sum(output_tokens)::text AS output FROM api_requests WHERE request_type = 'inference'");
    const total = rows[0]!.n;

    const tw = startTokenwatch(['run'], env, address);
    let seen = 0;
    await waitUntil(async () => (seen = sumSamples((await tw.get('/metrics')).text, 'tokenwatch_requests_total')) === total, 'the last run to count every row', 120_000, 250)
      .catch((error: unknown) => {
        throw new Error(`the last run counted ${seen} of ${total} requests`, { cause: error });
      });
    const metrics = (await tw.get('/metrics')).text;
    expect(sumSamples(metrics, 'tokenwatch_tokens_total', 'type="output"')).toBe(Number(rows[0]!.output));
    // Prometheus saw every run: its total equals SQL and no counter ever went back.
    await waitUntil(async () => (await prometheus.query('sum(tokenwatch_requests_total)'))[0]?.value === total, 'Prometheus to scrape the final total', 20_000, 500);
    const resets = await prometheus.query('sum(resets(tokenwatch_requests_total[1h]))');
    expect(resets[0]?.value ?? 0).toBe(0);
    tw.child.kill('SIGTERM');
    expect((await tw.exited).code).toBe(0);

    const store = await openStore(testConfig(db.url, { stateDir: join(dir, 'state') }));
    try {
      const [ch] = await store.query<Record<string, number>>(`SELECT
          (SELECT count() FROM tokenwatch.requests) AS physical,
          (SELECT uniqExact(request_id) FROM tokenwatch.requests) AS distinct_ids,
          (SELECT sum(requests) FROM tokenwatch.requests_daily) AS rollup`);
      const lost = total - Number(ch!.distinct_ids);
      const duplicated = Number(ch!.physical) - Number(ch!.distinct_ids);
      console.log(`replication: kill -9 x${KILLS} (${delays.join(', ')} ms after a checkpoint): ${total} source rows, ${lost} lost, ${duplicated} duplicated, rollup ${ch!.rollup}`);
      expect(lost).toBe(0);
      expect(duplicated).toBe(0);
      expect(Number(ch!.rollup)).toBe(total);
    } finally {
      await store.close();
    }
  });
});
