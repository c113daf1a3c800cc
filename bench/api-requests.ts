// What the backfill benchmarks share: the seeded api_requests table and the raw baseline
// (the same rows moved untransformed by ClickHouse's postgresql() table function).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { sourceDdl } from '../exporter/src/embedded/ddl.ts';
import { Config } from '../exporter/src/config/schema.ts';
import { createLogger, type Logger } from '../exporter/src/log.ts';
import { Pipeline } from '../exporter/src/pipeline/pipeline.ts';
import { MemoryCheckpointStore } from '../exporter/src/reader/checkpoint-store.ts';
import { ClickHouseSink } from '../exporter/src/sinks/clickhouse-sink.ts';
import { MetricsRegistry } from '../exporter/src/metrics/registry.ts';
import type { EventStore } from '../exporter/src/store/clickhouse.ts';
import { startPgCluster, type PgCluster } from '../exporter/src/testing/pg-cluster.ts';

/** BENCH_ROWS (default 1,000,000) and BENCH_ROUNDS (default 3, after a warm-up round). */
export function benchSize(): { rows: number; rounds: number } {
  return { rows: Number(process.env.BENCH_ROWS ?? 1_000_000), rounds: Number(process.env.BENCH_ROUNDS ?? 3) };
}

/** Runs `bench` against a throwaway PostgreSQL seeded with `rows` api_requests and a state directory. */
export async function withSeededSource(rows: number, bench: (cluster: PgCluster, stateDir: string) => Promise<void>): Promise<void> {
  const cluster = await startPgCluster();
  const stateDir = mkdtempSync(join(tmpdir(), 'tw-bench-'));
  try {
    await seedApiRequests(cluster.url(), rows);
    await bench(cluster, stateDir);
  } finally {
    await cluster.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** The configuration the backfill benchmarks run with: the seeded source, chunks of BENCH_CHUNK_ROWS. */
export function backfillConfig(cluster: PgCluster, stateDir: string): Config {
  const config = Config.parse({
    stateDir,
    sources: [{ type: 'claude-nexus-proxy', batchSize: 10_000 }],
    clickhouse: { bulkChunkRows: Number(process.env.BENCH_CHUNK_ROWS ?? 250_000) },
  });
  config.sources[0]!.name = 'claude-nexus-proxy';
  config.sources[0]!.databaseUrl = cluster.url();
  return config;
}

/** Errors only, discarded; with BENCH_TRACE every log line (per-chunk timings) on stderr. */
export function benchLogger(): Logger {
  return process.env.BENCH_TRACE
    ? createLogger({ level: 'debug', format: 'json', destination: process.stderr })
    : createLogger({ level: 'error', format: 'json', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
}

/** A pipeline for one fresh backfill: the event store its only sink (so the bulk path runs), no checkpoints kept. */
export function openBackfillPipeline(config: Config, store: EventStore, logger: Logger): Promise<Pipeline> {
  return Pipeline.open({
    config, logger, sinks: [new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false, metrics: new MetricsRegistry(),
  });
}

/** The columns the seed fills, and the baseline moves. */
export const COLUMNS = 'request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens, duration_ms, first_token_ms, tool_call_count, is_subtask, account_id';

/**
 * `rows` api_requests: 50 tenants, 3 models, 2.5 % errors (529), no conversation content, one
 * every half second back from now. With `from`, a table seeded with `from` rows grows to `rows`
 * (the added rows are older), so a larger size does not seed the smaller one again.
 */
export async function seedApiRequests(url: string, rows: number, from = 0): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    if (from === 0) await admin.query(sourceDdl('claude-nexus-proxy'));
    await admin.query(`INSERT INTO api_requests (${COLUMNS})
      SELECT gen_random_uuid(), 'tenant-' || (i % 50) || '.example.com', now() - make_interval(secs => i * 0.5),
        (ARRAY['claude-sonnet-4-5-20250929', 'claude-opus-4-1-20250805', 'claude-haiku-4-5-20251001'])[1 + i % 3], 'inference',
        CASE WHEN i % 40 = 0 THEN 529 ELSE 200 END, 100 + i % 997, i % 613, i % 5 * 1000, i % 11 * 100, 500 + i % 20000, 100 + i % 900, i % 3, i % 13 = 0, 'acct-' || (i % 5)
      FROM generate_series(${from + 1}, ${rows}) AS i`);
    await admin.query('VACUUM ANALYZE api_requests');
  } finally {
    await admin.end();
  }
}

/** ClickHouse's postgresql() table function over the seeded table. */
export function postgresqlTable(port: number): string {
  return `postgresql('127.0.0.1:${port}', 'postgres', 'api_requests', 'postgres', '')`;
}

/** One baseline round into a fresh MergeTree table; returns its seconds. */
export async function rawBaseline(store: EventStore, port: number): Promise<number> {
  await store.command('DROP TABLE IF EXISTS tokenwatch.raw_requests');
  await store.command(`CREATE TABLE tokenwatch.raw_requests (request_id UUID, domain String, timestamp DateTime64(6, 'UTC'), model String,
    request_type String, response_status Int32, input_tokens Int32, output_tokens Int32, cache_read_input_tokens Int32, cache_creation_input_tokens Int32,
    duration_ms Int32, first_token_ms Int32, tool_call_count Int32, is_subtask Bool, account_id String) ENGINE = MergeTree ORDER BY (domain, timestamp)`);
  const started = performance.now();
  await store.command(`INSERT INTO tokenwatch.raw_requests SELECT ${COLUMNS} FROM ${postgresqlTable(port)}`);
  return (performance.now() - started) / 1000;
}

/** Waits for background merges of an earlier round: they would slow the next measurement down. */
export async function waitForMerges(store: EventStore): Promise<void> {
  for (let waited = 0; waited < 60_000; waited += 200) {
    const [merging] = await store.query<{ n: string }>('SELECT count() AS n FROM system.merges');
    if (Number(merging!.n) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Empties the event tables a backfill writes. */
export async function truncateEvents(store: EventStore): Promise<void> {
  for (const table of ['requests', 'requests_daily', 'messages', 'messages_daily', 'activity_events']) await store.command(`TRUNCATE TABLE tokenwatch.${table}`);
}

/**
 * How much of a second core this machine gives right now: the same CPU-bound query twice,
 * one after the other on one connection, then at once on two. 2.0 is a full second core.
 * (On the virtual machines here it moves between about 1.1 and 1.9 from minute to minute:
 * the baseline is mostly one thread, the backfill uses both cores.)
 */
export async function twoCoreSpeedup(store: EventStore, other: EventStore): Promise<number> {
  const query = 'SELECT sum(cityHash64(number)) FROM numbers(150000000) SETTINGS max_threads = 1';
  let started = performance.now();
  await store.query(query);
  await store.query(query);
  const oneAfterTheOther = performance.now() - started;
  started = performance.now();
  await Promise.all([store.query(query), other.query(query)]);
  return oneAfterTheOther / (performance.now() - started);
}

/**
 * User plus system CPU seconds of the PostgreSQL processes, from /proc/PID/stat: each live one's
 * own time, plus the time of children they have reaped (a backend that has exited, like the
 * baseline's connection, counts in its postmaster's).
 */
function postgresCpuSeconds(): number {
  const ticksPerSecond = 100; // USER_HZ: 100 on every Linux architecture Node supports
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // the process ended
    }
    if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'postgres') continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]); // utime, stime, cutime, cstime
  }
  return ticks / ticksPerSecond;
}

export interface CpuSample {
  wall: number;
  user: number;
  system: number;
  postgres: number;
}

/** Wall time and CPU (this process and PostgreSQL's) of `run`. */
export async function sampleCpu(run: () => Promise<unknown>): Promise<CpuSample> {
  const postgresBefore = postgresCpuSeconds();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await run();
  const wall = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { wall, user: cpu.user / 1e6, system: cpu.system / 1e6, postgres: postgresCpuSeconds() - postgresBefore };
}

export function cpuTotal(s: CpuSample): number {
  return s.user + s.system + s.postgres;
}

export function describeCpu(s: CpuSample): string {
  const total = cpuTotal(s);
  return `wall ${s.wall.toFixed(2)} s, CPU ${total.toFixed(2)} s (process user ${s.user.toFixed(2)} + system ${s.system.toFixed(2)}, PostgreSQL ${s.postgres.toFixed(2)}), ${(total / s.wall).toFixed(2)} cores`;
}
