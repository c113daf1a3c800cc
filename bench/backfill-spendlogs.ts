// Benchmark: bulk backfill of LiteLLM_SpendLogs into the embedded ClickHouse engine, tokenwatch
// against the raw baseline measured in the same run (the same columns moved with no
// transformation by ClickHouse's postgresql() table function into a MergeTree table), as the
// api_requests backfill bench does. Rounds alternate tokenwatch and the baseline after a
// warm-up round of each; the result is the median of the rounds' ratios.
//   npm run bench -- backfill-spendlogs     (BENCH_SPEND_ROWS=500000 BENCH_ROUNDS=3)
import pg from 'pg';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Config } from '../exporter/src/config/schema.ts';
import { openStore, type EventStore } from '../exporter/src/store/clickhouse.ts';
import { sourceDdl } from '../exporter/src/embedded/ddl.ts';
import { startPgCluster } from '../exporter/src/testing/pg-cluster.ts';
import { truncateEvents } from './api-requests.ts';
import { runBackfillRounds } from './backfill-rounds.ts';
import type { BenchReport } from './report.ts';

const COLUMNS = 'request_id, call_type, spend, prompt_tokens, completion_tokens, "startTime", "endTime", model, model_group, custom_llm_provider, api_base, "user", team_id, status, metadata';

/** `rows` SpendLogs rows as a gateway writes them: 40 teams (one key in ten without a team), 4 models, 2 % failures, usage in metadata. */
async function seed(url: string, rows: number): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(sourceDdl('litellm'));
    await admin.query(`INSERT INTO "LiteLLM_SpendLogs" (${COLUMNS})
      SELECT 'call-' || i, 'acompletion', (i % 997) * 0.000013, 100 + i % 997, i % 613,
        now() - make_interval(secs => i * 0.5), now() - make_interval(secs => i * 0.5 - 1),
        (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5', 'gemini-2.5-flash'])[1 + i % 4], (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5', 'gemini-2.5-flash'])[1 + i % 4],
        (ARRAY['openai', 'openai', 'anthropic', 'gemini'])[1 + i % 4], 'https://api.example.com', 'user-' || (i % 300),
        CASE WHEN i % 10 = 0 THEN '' ELSE 'team-' || (i % 40) END, CASE WHEN i % 50 = 0 THEN 'failure' ELSE 'success' END,
        jsonb_build_object('usage_object', jsonb_build_object('prompt_tokens', 100 + i % 997, 'completion_tokens', i % 613, 'prompt_tokens_details', jsonb_build_object('cached_tokens', i % 5 * 10)))
      FROM generate_series(1, ${rows}) AS i`);
    await admin.query('VACUUM ANALYZE "LiteLLM_SpendLogs"');
  } finally {
    await admin.end();
  }
}

async function rawBaseline(store: EventStore, port: number): Promise<number> {
  await store.command('DROP TABLE IF EXISTS tokenwatch.raw_spend_logs');
  await store.command(`CREATE TABLE tokenwatch.raw_spend_logs (request_id String, call_type String, spend Float64, prompt_tokens Int32, completion_tokens Int32,
    startTime DateTime64(3, 'UTC'), endTime DateTime64(3, 'UTC'), model String, model_group String, custom_llm_provider String, api_base String, user String,
    team_id String, status String, metadata String) ENGINE = MergeTree ORDER BY (team_id, startTime)`);
  const started = performance.now();
  await store.command(`INSERT INTO tokenwatch.raw_spend_logs SELECT ${COLUMNS.replaceAll('"', '')} FROM postgresql('127.0.0.1:${port}', 'postgres', 'LiteLLM_SpendLogs', 'postgres', '')`);
  return (performance.now() - started) / 1000;
}

export async function runSpendLogsBackfillBench(report: BenchReport): Promise<void> {
  const rows = Number(process.env.BENCH_SPEND_ROWS ?? 500_000);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const cluster = await startPgCluster();
  const stateDir = mkdtempSync(join(tmpdir(), 'tw-bench-spend-'));
  try {
    await seed(cluster.url(), rows);
    const config = Config.parse({ stateDir, sources: [{ type: 'litellm', batchSize: 10_000 }], clickhouse: { bulkChunkRows: Number(process.env.BENCH_CHUNK_ROWS ?? 250_000) } });
    config.sources[0]!.name = 'litellm';
    config.sources[0]!.databaseUrl = cluster.url();
    const store = await openStore(config);
    await store.migrate();
    console.log(`\nbackfill PostgreSQL -> ClickHouse (embedded), ${rows} rows of LiteLLM_SpendLogs, a warm-up round and ${rounds} round(s)`);
    await runBackfillRounds({
      bench: 'backfill-spendlogs', what: 'LiteLLM_SpendLogs', rows, rounds, config, store,
      truncate: () => truncateEvents(store),
      raw: () => rawBaseline(store, cluster.port),
      verify: async () => {
        const [count] = await store.query<{ n: string }>("SELECT count() AS n FROM tokenwatch.requests WHERE source = 'litellm'");
        if (Number(count!.n) !== rows) throw new Error(`row counts differ: tokenwatch ${count!.n}, source ${rows}`);
        return '';
      },
    }, report);
    await store.close();
  } finally {
    await cluster.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
