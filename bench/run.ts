// npm run bench [-- NAME...]: runs the benchmarks (all but `load`, a 5-minute run at twice the
// soak's rate, `replication-burst` (1M rows through both readers), `replication-sustained` (10,000 rows/s for
// 5 minutes through both) and the backfill-floor and
// backfill-cpu diagnostics, which run only when named:
// the default set must fit 30 minutes on a 2-core machine), writes bench/results/<date>.json and
// bench/RESULTS.md, and prints every figure with its ratio against a baseline measured in the
// same run. Benchmarks, not tests: machines are noisy.
import { runMetricsBench } from './metrics-serving.ts';
import { runBackfillBench } from './backfill-throughput.ts';
import { runSpendLogsBackfillBench } from './backfill-spendlogs.ts';
import { runPlatformBackfillBench } from './backfill-platform.ts';
import { runReplicationBurstBench } from './replication-burst.ts';
import { runReplicationSustainedBench } from './replication-sustained.ts';
import { runBackfillFloorBench } from './backfill-floor.ts';
import { runBackfillCpuBench } from './backfill-cpu.ts';
import { runLoadBench, runSoakBench } from './steady.ts';
import { runDbCostBench } from './db-cost.ts';
import { runFreshnessBench } from './freshness.ts';
import { runAnalyticsBench } from './analytics.ts';
import { BenchReport } from './report.ts';

const BENCHES: Record<string, (report: BenchReport) => Promise<void>> = {
  metrics: runMetricsBench,
  backfill: runBackfillBench,
  'backfill-spendlogs': runSpendLogsBackfillBench,
  'backfill-platform': runPlatformBackfillBench,
  'replication-burst': runReplicationBurstBench,
  'replication-sustained': runReplicationSustainedBench,
  freshness: runFreshnessBench,
  analytics: runAnalyticsBench,
  'db-cost': runDbCostBench,
  load: runLoadBench,
  soak: runSoakBench,
  'backfill-floor': () => runBackfillFloorBench(),
  'backfill-cpu': () => runBackfillCpuBench(),
};

const DEFAULT = ['metrics', 'freshness', 'db-cost', 'analytics', 'backfill', 'backfill-spendlogs', 'backfill-platform', 'soak'];

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : DEFAULT;
for (const name of names) {
  if (!BENCHES[name]) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
}
const report = new BenchReport();
// Wall time of each benchmark and of the whole run, so the run's length (at most 30 minutes on
// a 2-core machine) is a recorded figure too.
const started = performance.now();
const failed: string[] = [];
for (const name of names) {
  const start = performance.now();
  try {
    await BENCHES[name]!(report);
  } catch (error) {
    // One benchmark that cannot run (a peer not installed) says why and lets the others run.
    console.error(`\nbenchmark ${name} did not run to the end: ${error instanceof Error ? error.message : String(error)}`);
    failed.push(name);
    continue;
  }
  report.add({ bench: name, name: 'wall time of this benchmark', value: (performance.now() - start) / 60_000, unit: 'min' });
}
if (names.length > 1) report.add({ bench: 'all', name: `wall time of npm run bench (${names.join(', ')})`, value: (performance.now() - started) / 60_000, unit: 'min', ...(wanted.length === 0 ? { target: '≤ 30 min', met: performance.now() - started <= 30 * 60_000 } : {}) });
// Nothing measured: keep the results of the last run that measured something.
if (failed.length < names.length) console.log(`\nresults written to ${report.write()} and bench/RESULTS.md`);
if (failed.length > 0) {
  console.error(`failed: ${failed.join(', ')}`);
  process.exitCode = 1;
}
