// npm run bench [-- NAME...]: runs the benchmarks (all but the backfill-floor and backfill-cpu
// diagnostics, which run only when named), writes bench/results/<date>.json and
// bench/RESULTS.md, and prints every figure with its ratio against a baseline measured in the
// same run. Benchmarks, not tests: machines are noisy.
import { runMetricsBench } from './metrics-serving.ts';
import { runBackfillBench } from './backfill-throughput.ts';
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
  freshness: runFreshnessBench,
  analytics: runAnalyticsBench,
  'db-cost': runDbCostBench,
  load: runLoadBench,
  soak: runSoakBench,
  'backfill-floor': () => runBackfillFloorBench(),
  'backfill-cpu': () => runBackfillCpuBench(),
};

const DEFAULT = ['metrics', 'freshness', 'db-cost', 'analytics', 'backfill', 'load', 'soak'];

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : DEFAULT;
for (const name of names) {
  if (!BENCHES[name]) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
}
const report = new BenchReport();
for (const name of names) await BENCHES[name]!(report);
console.log(`\nresults written to ${report.write()} and bench/RESULTS.md`);
