// Benchmark: backfill of api_requests from PostgreSQL into the embedded ClickHouse engine,
// tokenwatch against the raw baseline measured in the same run: the same rows moved with no
// transformation by ClickHouse's postgresql() table function into a MergeTree table.
// Rounds alternate baseline and tokenwatch; the result is the median of the rounds' ratios
// (this machine's speed varies by a factor of two from one minute to the next). A first,
// warm-up round of each is run and reported but not counted: both sides pay one-off costs
// there (the process's first large allocations, connections, compiled code).
//   npm run bench -- backfill     (BENCH_ROWS=1000000, BENCH_ROUNDS=5, BENCH_CHUNK_ROWS=250000)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { startPgCluster } from '../exporter/src/testing/pg-cluster.ts';
import { sourceDdl } from '../exporter/src/embedded/ddl.ts';
import { Config } from '../exporter/src/config/schema.ts';
import { openStore } from '../exporter/src/store/clickhouse.ts';
import { Pipeline } from '../exporter/src/pipeline/pipeline.ts';
import { MemoryCheckpointStore } from '../exporter/src/reader/checkpoint-store.ts';
import { ClickHouseSink } from '../exporter/src/sinks/clickhouse-sink.ts';
import { MetricsRegistry } from '../exporter/src/metrics/registry.ts';
import { createLogger } from '../exporter/src/log.ts';

const COLUMNS = 'request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens, duration_ms, first_token_ms, tool_call_count, is_subtask, account_id';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

export async function runBackfillBench(): Promise<void> {
  const rows = Number(process.env.BENCH_ROWS ?? 1_000_000);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
  const cluster = await startPgCluster();
  const stateDir = mkdtempSync(join(tmpdir(), 'tw-bench-'));
  try {
    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    await admin.query(sourceDdl('claude-nexus-proxy'));
    // 50 tenants, 3 models, 2.5 % errors (529), no conversation content: request metadata.
    await admin.query(`INSERT INTO api_requests (${COLUMNS})
      SELECT gen_random_uuid(), 'tenant-' || (i % 50) || '.example.com', now() - make_interval(secs => i * 0.5),
        (ARRAY['claude-sonnet-4-5-20250929', 'claude-opus-4-1-20250805', 'claude-haiku-4-5-20251001'])[1 + i % 3], 'inference',
        CASE WHEN i % 40 = 0 THEN 529 ELSE 200 END, 100 + i % 997, i % 613, i % 5 * 1000, i % 11 * 100, 500 + i % 20000, 100 + i % 900, i % 3, i % 13 = 0, 'acct-' || (i % 5)
      FROM generate_series(1, ${rows}) AS i`);
    await admin.query('VACUUM ANALYZE api_requests');
    await admin.end();

    const config = Config.parse({
      stateDir,
      sources: [{ type: 'claude-nexus-proxy', batchSize: 10_000 }],
      clickhouse: { bulkChunkRows: Number(process.env.BENCH_CHUNK_ROWS ?? 250_000) },
    });
    config.sources[0]!.name = 'claude-nexus-proxy';
    config.sources[0]!.databaseUrl = cluster.url();
    const store = await openStore(config);
    await store.migrate();
    const logger = process.env.BENCH_TRACE
      ? createLogger({ level: 'debug', format: 'json', destination: process.stderr })
      : createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, cb) => cb() }) });

    console.log(`\nbackfill PostgreSQL -> ClickHouse (embedded), ${rows} rows of api_requests, a warm-up round and ${rounds} rounds`);
    const ratios: number[] = [];
    const rawRates: number[] = [];
    const ourRates: number[] = [];
    let peakRss = 0;
    let rssBefore = 0;
    for (let round = 0; round <= rounds; round++) {
      // Background merges of the previous round's parts would slow the next measurement down.
      for (let waited = 0; waited < 60_000; waited += 200) {
        const [merging] = await store.query<{ n: string }>('SELECT count() AS n FROM system.merges');
        if (Number(merging!.n) === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      // Raw baseline: the same columns, no transformation, PostgreSQL -> ClickHouse by postgresql().
      await store.command('DROP TABLE IF EXISTS tokenwatch.raw_requests');
      await store.command(`CREATE TABLE tokenwatch.raw_requests (request_id UUID, domain String, timestamp DateTime64(6, 'UTC'), model String,
        request_type String, response_status Int32, input_tokens Int32, output_tokens Int32, cache_read_input_tokens Int32, cache_creation_input_tokens Int32,
        duration_ms Int32, first_token_ms Int32, tool_call_count Int32, is_subtask Bool, account_id String) ENGINE = MergeTree ORDER BY (domain, timestamp)`);
      let started = performance.now();
      await store.command(`INSERT INTO tokenwatch.raw_requests SELECT ${COLUMNS} FROM postgresql('127.0.0.1:${cluster.port}', 'postgres', 'api_requests', 'postgres', '')`);
      const rawSeconds = (performance.now() - started) / 1000;

      // tokenwatch: a fresh backfill into emptied tables.
      for (const table of ['requests', 'requests_daily', 'messages', 'messages_daily', 'activity_events']) await store.command(`TRUNCATE TABLE tokenwatch.${table}`);
      const pipeline = await Pipeline.open({
        config, logger, sinks: [new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false, metrics: new MetricsRegistry(),
      });
      rssBefore = process.memoryUsage().rss;
      peakRss = Math.max(peakRss, rssBefore);
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
      started = performance.now();
      const cpuBefore = process.cpuUsage();
      await pipeline.backfill();
      const ourSeconds = (performance.now() - started) / 1000;
      if (process.env.BENCH_TRACE) {
        const cpu = process.cpuUsage(cpuBefore);
        const merges = await store.query<Record<string, string>>("SELECT table, count() AS parts FROM system.parts WHERE active AND database = 'tokenwatch' GROUP BY table");
        console.error(`tokenwatch process cpu user ${(cpu.user / 1e6).toFixed(2)} s sys ${(cpu.system / 1e6).toFixed(2)} s; merges ${JSON.stringify(merges)}`);
      }
      clearInterval(sampler);
      await pipeline.close();

      const [count] = await store.query<{ n: string; raw: string }>('SELECT (SELECT count() FROM tokenwatch.requests) AS n, (SELECT count() FROM tokenwatch.raw_requests) AS raw');
      if (Number(count!.n) !== rows || Number(count!.raw) !== rows) throw new Error(`row counts differ: tokenwatch ${count!.n}, baseline ${count!.raw}, source ${rows}`);
      const ratio = rawSeconds / ourSeconds;
      if (round > 0) {
        ratios.push(ratio);
        rawRates.push(rows / rawSeconds);
        ourRates.push(rows / ourSeconds);
      }
      console.log(`${round === 0 ? 'warm-up (not counted)' : `round ${round}`}: raw postgresql() ${rawSeconds.toFixed(2)} s (${Math.round(rows / rawSeconds)} rows/s), tokenwatch ${ourSeconds.toFixed(2)} s (${Math.round(rows / ourSeconds)} rows/s), ratio ${ratio.toFixed(3)}`);
    }
    await store.close();

    const ratio = median(ratios);
    console.log(`raw baseline (postgresql() table function): median ${Math.round(median(rawRates))} rows/s`);
    console.log(`tokenwatch backfill (bulk path: COPY, ClickHouse mapping, metrics, exactly-once insert): median ${Math.round(median(ourRates))} rows/s`);
    console.log(`peak RSS during the backfills: ${Math.round(peakRss / 1024 / 1024)} MiB (${Math.round(rssBefore / 1024 / 1024)} MiB before the last one)`);
    console.log(`RESULT backfill_throughput_ratio=${ratio.toFixed(3)} (median of ${rounds}; target >= 0.70) ${ratio >= 0.7 ? 'PASS' : 'FAIL'}`);
  } finally {
    await cluster.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
