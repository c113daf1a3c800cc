// Benchmark: bulk backfill of an agent platform's append-only tables (Sidekick Forge's
// activity_log, livekit_events and conversations) into the embedded ClickHouse engine,
// tokenwatch against the raw baseline measured in the same run: the same tables' columns moved
// with no transformation by ClickHouse's postgresql() table function into MergeTree tables, as
// the api_requests and SpendLogs backfill benches do. tokenwatch also resolves each row's
// client and agent in PostgreSQL (the row path's subqueries); the baseline does not.
// Rounds alternate tokenwatch and the baseline after a warm-up round of each; the result is
// the median of the rounds' ratios. The ratio compares the three tables' streams (the
// backfill also reads the platform's snapshot queries: quotas, agents, conversation and voice
// session gauges, which the baseline does not); the whole backfill's time is printed too.
//   npm run bench -- backfill-platform     (BENCH_PLATFORM_ROWS=500000 BENCH_ROUNDS=3)
import pg from 'pg';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../exporter/src/config/schema.ts';
import { openStore, type EventStore } from '../exporter/src/store/clickhouse.ts';
import { sourceDdl } from '../exporter/src/embedded/ddl.ts';
import { seedSidekickForge } from '../exporter/src/embedded/seed.ts';
import { startPgCluster } from '../exporter/src/testing/pg-cluster.ts';
import { runBackfillRounds } from './backfill-rounds.ts';
import type { BenchReport } from './report.ts';

/** Each table's share of the rows, and the columns the baseline moves (ClickHouse structure). */
const TABLES = [
  { table: 'activity_log', share: 0.5, structure: 'id String, activity_type String, action String, client_id Nullable(String), agent_id Nullable(String), resource_type Nullable(String), resource_id Nullable(String), resource_name Nullable(String), status Nullable(String), created_at DateTime64(6, \'UTC\')' },
  { table: 'livekit_events', share: 0.3, structure: 'id String, event_type String, room_name Nullable(String), duration Nullable(Int32), metadata String, created_at DateTime64(6, \'UTC\')' },
  { table: 'conversations', share: 0.2, structure: 'id String, agent_id Nullable(String), user_id Nullable(String), channel Nullable(String), created_at DateTime64(6, \'UTC\')' },
] as const;

/** `rows` rows over the three tables as the platform writes them: 4 clients, 12 agents, 30 days of history back from now. */
async function seed(url: string, rows: number): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(sourceDdl('sidekick-forge'));
    await seedSidekickForge(admin, { conversations: 0 });
    const n = (table: string) => Math.round(rows * TABLES.find((t) => t.table === table)!.share);
    // Rows spread over 30 days: the snapshots the backfill also reads (voice sessions of the
    // last 24 hours) see a day of them, as on a platform with a history.
    const step = (table: string) => (30 * 86_400) / n(table);
    const agent = "(SELECT id FROM agents ORDER BY id LIMIT 1 OFFSET i % 12)";
    const client = "(SELECT id FROM clients ORDER BY id LIMIT 1 OFFSET i % 4)";
    await admin.query(`INSERT INTO activity_log (activity_type, action, client_id, agent_id, resource_type, resource_id, resource_name, status, created_at)
      SELECT (ARRAY['document_uploaded', 'sidekick_updated', 'ability_run'])[1 + i % 3], (ARRAY['create', 'update', 'run'])[1 + i % 3],
        ${client}, ${agent}, 'document', 'doc-' || i, 'Handbook ' || i || '.pdf', 'success', now() - make_interval(secs => i * ${step('activity_log')})
      FROM generate_series(1, ${n('activity_log')}) AS i`);
    await admin.query(`INSERT INTO livekit_events (event_type, room_name, duration, metadata, created_at)
      SELECT (ARRAY['room_started', 'room_finished'])[1 + i % 2], 'room-' || (i / 2), CASE WHEN i % 2 = 1 THEN 30 + i % 600 END,
        jsonb_build_object('client_id', ${client}, 'agent_id', ${agent}), now() - make_interval(secs => i * ${step('livekit_events')})
      FROM generate_series(1, ${n('livekit_events')}) AS i`);
    await admin.query(`INSERT INTO conversations (agent_id, user_id, channel, created_at)
      SELECT ${agent}, gen_random_uuid(), (ARRAY['voice', 'text'])[1 + i % 2], now() - make_interval(secs => i * ${step('conversations')})
      FROM generate_series(1, ${n('conversations')}) AS i`);
    for (const { table } of TABLES) await admin.query(`VACUUM ANALYZE ${table}`);
  } finally {
    await admin.end();
  }
}

async function rawBaseline(store: EventStore, port: number): Promise<number> {
  let seconds = 0;
  for (const { table, structure } of TABLES) {
    await store.command(`DROP TABLE IF EXISTS tokenwatch.raw_${table}`);
    await store.command(`CREATE TABLE tokenwatch.raw_${table} (${structure}) ENGINE = MergeTree ORDER BY created_at`);
    // Column names: the words that start the structure or follow a comma outside parentheses.
    const columns = structure.split(/, (?![^(]*\))/).map((c) => c.split(' ')[0]).join(', ');
    const started = performance.now();
    await store.command(`INSERT INTO tokenwatch.raw_${table} SELECT ${columns} FROM postgresql('127.0.0.1:${port}', 'postgres', '${table}', 'postgres', '')`);
    seconds += (performance.now() - started) / 1000;
  }
  return seconds;
}

async function truncate(store: EventStore): Promise<void> {
  for (const table of ['activity_events', 'conversations', 'messages', 'messages_daily', 'usage_daily']) await store.command(`TRUNCATE TABLE tokenwatch.${table}`);
}

export async function runPlatformBackfillBench(report: BenchReport): Promise<void> {
  const rows = Number(process.env.BENCH_PLATFORM_ROWS ?? 500_000);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const cluster = await startPgCluster();
  const stateDir = mkdtempSync(join(tmpdir(), 'tw-bench-platform-'));
  try {
    await seed(cluster.url(), rows);
    const client = new pg.Client({ connectionString: cluster.url() });
    await client.connect();
    const { rows: counted } = await client.query<{ n: string }>(
      'SELECT (SELECT count(*) FROM activity_log) + (SELECT count(*) FROM livekit_events) + (SELECT count(*) FROM conversations) AS n',
    );
    await client.end();
    const total = Number(counted[0]!.n);
    const config = Config.parse({ stateDir, sources: [{ type: 'sidekick-forge', batchSize: 10_000 }], clickhouse: { bulkChunkRows: Number(process.env.BENCH_CHUNK_ROWS ?? 250_000) } });
    config.sources[0]!.name = 'sidekick-forge';
    config.sources[0]!.databaseUrl = cluster.url();
    const store = await openStore(config);
    await store.migrate();
    console.log(`\nbackfill PostgreSQL -> ClickHouse (embedded), ${total} rows of Sidekick Forge's activity_log, livekit_events and conversations, a warm-up round and ${rounds} round(s)`);
    await runBackfillRounds({
      bench: 'backfill-platform', what: 'Sidekick Forge activity_log + livekit_events + conversations', rows: total, rounds, config, store,
      truncate: () => truncate(store),
      raw: () => rawBaseline(store, cluster.port),
      verify: async (pipeline) => {
        const bulk = pipeline.statuses().reduce((n, s) => n + s.rowsBulk, 0);
        const [count] = await store.query<{ events: string; conversations: string }>(
          "SELECT (SELECT count() FROM tokenwatch.activity_events WHERE event_type NOT IN ('quota_threshold_crossed', 'agent_configuration_changed')) AS events, (SELECT count() FROM tokenwatch.conversations) AS conversations",
        );
        // One event per activity_log and LiveKit row, and one conversation_started per conversation.
        if (Number(count!.conversations) !== Math.round(rows * 0.2)) throw new Error(`stored ${count!.conversations} conversations of ${Math.round(rows * 0.2)}`);
        if (Number(count!.events) < total - 20 || bulk < total - 20) throw new Error(`stored ${count!.events} events (${bulk} in bulk) of ${total} rows`);
        return `, ${bulk} in bulk`;
      },
      // The three tables' streams (the backfill also reads the source's snapshot queries).
      seconds: (pipeline) => pipeline.statuses().filter((s) => s.rowsBulk > 0).reduce((n, s) => n + (s.lastPollDurationMs ?? 0), 0) / 1000,
    }, report);
    await store.close();
  } finally {
    await cluster.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
