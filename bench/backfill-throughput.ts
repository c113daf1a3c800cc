// Benchmark: backfill of api_requests from PostgreSQL into the embedded ClickHouse engine,
// tokenwatch against the raw baseline measured in the same run: the same rows moved with no
// transformation by ClickHouse's postgresql() table function into a MergeTree table.
// At 1M rows (BENCH_ROWS) rounds alternate baseline and tokenwatch and the result is the
// median of the rounds' ratios (this machine's speed varies by a factor of two from one
// minute to the next), after a warm-up round of each that is reported but not counted. Each
// round also measures both sides' CPU (this process, the embedded engine included, and every
// PostgreSQL process). Then one round at 5M rows (BENCH_LARGE_ROWS): rows/s, and peak RSS,
// which must not grow with the table (the bulk path holds a fixed number of chunks); the same
// PostgreSQL, grown from 1M to 5M rows. The RSS
// growth compared is each size's first round, from a freshly opened engine: later rounds start
// with what the engine kept from the one before, so their growth says little.
//   npm run bench -- backfill     (BENCH_ROWS=1000000 BENCH_ROUNDS=3 BENCH_LARGE_ROWS=5000000 BENCH_CHUNK_ROWS=250000)
import { join } from 'node:path';
import { openStore } from '../exporter/src/store/clickhouse.ts';
import type { PgCluster } from '../exporter/src/testing/pg-cluster.ts';
import {
  backfillConfig, benchLogger, benchSize, cpuTotal, median, openBackfillPipeline, rawBaseline, sampleCpu, seedApiRequests, truncateEvents, twoCoreSpeedup, waitForMerges,
  withSeededSource,
} from './api-requests.ts';
import type { BenchReport } from './report.ts';

const MiB = 1024 * 1024;

interface Round {
  ratio: number;
  cpuRatio: number;
  rawRate: number;
  ourRate: number;
  peakRssGrowth: number;
  peakRss: number;
}

/** Rounds over the `rows` rows of the seeded source, into a fresh embedded engine in `stateDir`. */
async function backfillRounds(cluster: PgCluster, stateDir: string, rows: number, rounds: number, warmUp: boolean): Promise<{ counted: Round[]; first: Round }> {
  const out: Round[] = [];
  let first: Round | undefined;
  const config = backfillConfig(cluster, stateDir);
  const store = await openStore(config);
  await store.migrate();
  const logger = benchLogger();
  const other = await store.connectAgain();
  console.log(`\nbackfill PostgreSQL -> ClickHouse (embedded), ${rows} rows of api_requests, ${warmUp ? 'a warm-up round and ' : ''}${rounds} round(s)`);
  for (let round = warmUp ? 0 : 1; round <= rounds; round++) {
    await waitForMerges(store);
    const speedup = await twoCoreSpeedup(store, other);
    // tokenwatch first, then the baseline: the baseline's postgresql() read of the whole table
    // raises the RSS the process then keeps, which would hide the backfill's own growth.
    await truncateEvents(store);
    await waitForMerges(store);
    const pipeline = await openBackfillPipeline(config, store, logger);
    const rssBefore = process.memoryUsage().rss;
    let peakRss = rssBefore;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
    const ours = await sampleCpu(() => pipeline.backfill());
    clearInterval(sampler);
    await pipeline.close();
    await waitForMerges(store);
    // Raw baseline: the same columns, no transformation, PostgreSQL -> ClickHouse by postgresql().
    const raw = await sampleCpu(() => rawBaseline(store, cluster.port));
    const [count] = await store.query<{ n: string; raw: string }>('SELECT (SELECT count() FROM tokenwatch.requests) AS n, (SELECT count() FROM tokenwatch.raw_requests) AS raw');
    if (Number(count!.n) !== rows || Number(count!.raw) !== rows) throw new Error(`row counts differ: tokenwatch ${count!.n}, baseline ${count!.raw}, source ${rows}`);
    const r: Round = { ratio: raw.wall / ours.wall, cpuRatio: cpuTotal(ours) / cpuTotal(raw), rawRate: rows / raw.wall, ourRate: rows / ours.wall, peakRssGrowth: peakRss - rssBefore, peakRss };
    first ??= r;
    if (round > 0) out.push(r);
    console.log(`${round === 0 ? 'warm-up (not counted)' : `round ${round}`}: raw postgresql() ${raw.wall.toFixed(2)} s (${Math.round(r.rawRate)} rows/s), tokenwatch ${ours.wall.toFixed(2)} s (${Math.round(r.ourRate)} rows/s), ratio ${r.ratio.toFixed(3)}, CPU ratio ${r.cpuRatio.toFixed(2)}, peak RSS ${Math.round(r.peakRss / MiB)} MiB (+${Math.round(r.peakRssGrowth / MiB)}); second core ${speedup.toFixed(2)}x`);
  }
  await other.close();
  await store.close();
  return { counted: out, first: first! };
}

export async function runBackfillBench(report: BenchReport): Promise<void> {
  const { rows, rounds } = benchSize();
  const large = Number(process.env.BENCH_LARGE_ROWS ?? 5_000_000);
  let small: Awaited<ReturnType<typeof backfillRounds>> | undefined;
  let big: typeof small;
  await withSeededSource(rows, async (cluster, stateDir) => {
    small = await backfillRounds(cluster, join(stateDir, 'small'), rows, rounds, true);
    if (large > rows) {
      await seedApiRequests(cluster.url(), large, rows);
      big = await backfillRounds(cluster, join(stateDir, 'large'), large, 1, false);
    }
  });
  if (!small) throw new Error('the backfill rounds did not run');
  const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);
  for (const [n, results] of [[rows, small], [large, big]] as const) {
    if (!results) continue;
    const m = (f: (r: Round) => number) => median(results.counted.map(f));
    report.add({ bench: 'backfill', name: `rows/s, ${label(n)} rows (median of ${results.counted.length})`, value: m((r) => r.ourRate), unit: 'rows/s',
      baseline: { name: 'raw postgresql() table function', value: m((r) => r.rawRate) }, ratio: m((r) => r.ratio), target: '≥ 0.70', met: m((r) => r.ratio) >= 0.7 });
    report.add({ bench: 'backfill', name: `CPU, ${label(n)} rows: tokenwatch's (process and PostgreSQL) over the baseline's`, value: m((r) => r.cpuRatio), unit: '×' });
    report.add({ bench: 'backfill', name: `peak RSS growth during the first backfill on a fresh engine, ${label(n)} rows`, value: results.first.peakRssGrowth / MiB, unit: 'MiB',
      baseline: { name: 'peak RSS of the process', value: results.first.peakRss / MiB } });
  }
  if (big) {
    const growth = big.first.peakRssGrowth / Math.max(MiB, small.first.peakRssGrowth);
    report.add({ bench: 'backfill', name: `peak RSS growth at ${label(large)} rows against ${label(rows)}`, value: growth, unit: '×', target: 'does not grow with the table (≤ 1.5×)', met: growth <= 1.5 });
  }
}
