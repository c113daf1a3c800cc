// Diagnostic benchmark: the CPU each side of the backfill ratio spends, not only its wall time.
// Rounds alternate the raw baseline and tokenwatch's backfill (as in `backfill`), and each
// reports its wall time, this process's user and system CPU (the embedded ClickHouse engine
// runs inside it) and the CPU of every PostgreSQL process, read from /proc (Linux only).
// Cores used = CPU / wall. On a machine with two cores, a backfill that needs more than twice
// the baseline's CPU cannot reach the 0.70 ratio however well its stages overlap.
//   npm run bench -- backfill-cpu     (BENCH_ROWS=1000000, BENCH_ROUNDS=5, BENCH_CHUNK_ROWS=250000)
import { openStore } from '../exporter/src/store/clickhouse.ts';
import {
  backfillConfig, benchLogger, benchSize, cpuTotal, describeCpu, median, openBackfillPipeline, rawBaseline, sampleCpu, truncateEvents, waitForMerges, withSeededSource,
} from './api-requests.ts';

export async function runBackfillCpuBench(): Promise<void> {
  if (process.platform !== 'linux') {
    console.log('backfill-cpu reads PostgreSQL CPU from /proc: Linux only, skipped');
    return;
  }
  const { rows, rounds } = benchSize();
  await withSeededSource(rows, async (cluster, stateDir) => {
    const config = backfillConfig(cluster, stateDir);
    const store = await openStore(config);
    await store.migrate();
    const logger = benchLogger();
    console.log(`\nbackfill CPU (raw baseline and tokenwatch alternating), ${rows} rows, a warm-up round and ${rounds} rounds`);
    const cpuRatios: number[] = [];
    for (let round = 0; round <= rounds; round++) {
      await waitForMerges(store);
      const raw = await sampleCpu(() => rawBaseline(store, cluster.port));
      await truncateEvents(store);
      await waitForMerges(store);
      const pipeline = await openBackfillPipeline(config, store, logger);
      const ours = await sampleCpu(() => pipeline.backfill());
      await pipeline.close();
      const cpuRatio = cpuTotal(ours) / cpuTotal(raw);
      if (round > 0) cpuRatios.push(cpuRatio);
      console.log(`${round === 0 ? 'warm-up (not counted)' : `round ${round}`}:\n  raw postgresql() ${describeCpu(raw)}\n  tokenwatch       ${describeCpu(ours)}\n  CPU ratio tokenwatch / raw ${cpuRatio.toFixed(2)}`);
    }
    await store.close();
    console.log(`RESULT backfill_cpu_ratio=${median(cpuRatios).toFixed(2)} (median of ${rounds}: tokenwatch's CPU per backfill over the raw baseline's)`);
  });
}
