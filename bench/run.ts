// npm run bench [-- NAME...]: runs the benchmarks (metrics and backfill by default; the
// backfill-floor and backfill-cpu diagnostics only when named) and prints their ratios
// against baselines measured in the same run. Benchmarks, not tests: machines are noisy.
import { runMetricsBench } from './metrics-serving.ts';
import { runBackfillBench } from './backfill-throughput.ts';
import { runBackfillFloorBench } from './backfill-floor.ts';
import { runBackfillCpuBench } from './backfill-cpu.ts';

const BENCHES: Record<string, () => Promise<void>> = {
  metrics: runMetricsBench,
  backfill: runBackfillBench,
  'backfill-floor': runBackfillFloorBench,
  'backfill-cpu': runBackfillCpuBench,
};

const DEFAULT = ['metrics', 'backfill'];

const wanted = process.argv.slice(2);
for (const name of wanted.length > 0 ? wanted : DEFAULT) {
  const bench = BENCHES[name];
  if (!bench) {
    console.error(`unknown benchmark ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
    process.exit(2);
  }
  await bench();
}
