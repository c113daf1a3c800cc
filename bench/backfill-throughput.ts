// Benchmark: backfill of api_requests from PostgreSQL into the embedded ClickHouse engine,
// tokenwatch against the raw baseline measured in the same run: the same rows moved with no
// transformation by ClickHouse's postgresql() table function into a MergeTree table.
// Rounds alternate baseline and tokenwatch; the result is the median of the rounds' ratios
// (this machine's speed varies by a factor of two from one minute to the next). A first,
// warm-up round of each is run and reported but not counted: both sides pay one-off costs
// there (the process's first large allocations, connections, compiled code).
//   npm run bench -- backfill     (BENCH_ROWS=1000000, BENCH_ROUNDS=5, BENCH_CHUNK_ROWS=250000)
import { openStore } from '../exporter/src/store/clickhouse.ts';
import {
  backfillConfig, benchLogger, benchSize, median, openBackfillPipeline, rawBaseline, truncateEvents, twoCoreSpeedup, waitForMerges, withSeededSource,
} from './api-requests.ts';

export async function runBackfillBench(): Promise<void> {
  const { rows, rounds } = benchSize();
  await withSeededSource(rows, async (cluster, stateDir) => {
    const config = backfillConfig(cluster, stateDir);
    const store = await openStore(config);
    await store.migrate();
    const logger = benchLogger();

    console.log(`\nbackfill PostgreSQL -> ClickHouse (embedded), ${rows} rows of api_requests, a warm-up round and ${rounds} rounds`);
    const ratios: number[] = [];
    const rawRates: number[] = [];
    const ourRates: number[] = [];
    let peakRss = 0;
    let rssBefore = 0;
    const other = await store.connectAgain();
    for (let round = 0; round <= rounds; round++) {
      await waitForMerges(store);
      const speedup = await twoCoreSpeedup(store, other);
      // Raw baseline: the same columns, no transformation, PostgreSQL -> ClickHouse by postgresql().
      const rawSeconds = await rawBaseline(store, cluster.port);

      // tokenwatch: a fresh backfill into emptied tables.
      await truncateEvents(store);
      const pipeline = await openBackfillPipeline(config, store, logger);
      rssBefore = process.memoryUsage().rss;
      peakRss = Math.max(peakRss, rssBefore);
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
      const started = performance.now();
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
      console.log(`${round === 0 ? 'warm-up (not counted)' : `round ${round}`}: raw postgresql() ${rawSeconds.toFixed(2)} s (${Math.round(rows / rawSeconds)} rows/s), tokenwatch ${ourSeconds.toFixed(2)} s (${Math.round(rows / ourSeconds)} rows/s), ratio ${ratio.toFixed(3)}; second core ${speedup.toFixed(2)}x`);
    }
    await other.close();
    await store.close();

    const ratio = median(ratios);
    console.log(`raw baseline (postgresql() table function): median ${Math.round(median(rawRates))} rows/s`);
    console.log(`tokenwatch backfill (bulk path: COPY, ClickHouse mapping, metrics, exactly-once insert): median ${Math.round(median(ourRates))} rows/s`);
    console.log(`peak RSS during the backfills: ${Math.round(peakRss / 1024 / 1024)} MiB (${Math.round(rssBefore / 1024 / 1024)} MiB before the last one)`);
    console.log(`RESULT backfill_throughput_ratio=${ratio.toFixed(3)} (median of ${rounds}; target >= 0.70) ${ratio >= 0.7 ? 'PASS' : 'FAIL'}`);
  });
}
