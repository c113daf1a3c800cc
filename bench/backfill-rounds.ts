// The rounds of a backfill benchmark against ClickHouse's postgresql() table function: a
// warm-up round and `rounds` counted ones, each tokenwatch's backfill then the raw baseline in
// the same run; reported as the median of the rounds' ratios.
import type { Config } from '../exporter/src/config/schema.ts';
import type { EventStore } from '../exporter/src/store/clickhouse.ts';
import type { Pipeline } from '../exporter/src/pipeline/pipeline.ts';
import { benchLogger, median, openBackfillPipeline, waitForMerges } from './api-requests.ts';
import type { BenchReport } from './report.ts';

export interface BackfillRoundsOptions {
  bench: string;
  /** What the rows are, for the report ("LiteLLM_SpendLogs"). */
  what: string;
  rows: number;
  rounds: number;
  config: Config;
  store: EventStore;
  /** Empties what a backfill writes. */
  truncate(): Promise<void>;
  /** The baseline's seconds for the same rows. */
  raw(): Promise<number>;
  /** Checks what the backfill stored (throws when it is wrong); returns a note for the round's line. */
  verify(pipeline: Pipeline): Promise<string>;
  /**
   * The seconds the ratio compares (default: the whole backfill): a source whose backfill also
   * reads snapshot queries (gauges) compares its tables' streams only, which is what the
   * baseline moves; the whole backfill's time is printed beside it.
   */
  seconds?(pipeline: Pipeline, wall: number): number;
}

export async function runBackfillRounds(o: BackfillRoundsOptions, report: BenchReport): Promise<void> {
  const ratios: number[] = [];
  const rates: { ours: number; raw: number }[] = [];
  for (let round = 0; round <= o.rounds; round++) {
    await o.truncate();
    await waitForMerges(o.store);
    const pipeline = await openBackfillPipeline(o.config, o.store, benchLogger());
    const started = performance.now();
    await pipeline.backfill();
    const wall = (performance.now() - started) / 1000;
    const ours = o.seconds?.(pipeline, wall) ?? wall;
    const note = `${await o.verify(pipeline)}${ours === wall ? '' : `; the whole backfill ${wall.toFixed(2)} s`}`;
    await pipeline.close();
    await waitForMerges(o.store);
    const raw = await o.raw();
    console.log(`${round === 0 ? 'warm-up (not counted)' : `round ${round}`}: raw postgresql() ${raw.toFixed(2)} s (${Math.round(o.rows / raw)} rows/s), tokenwatch ${ours.toFixed(2)} s (${Math.round(o.rows / ours)} rows/s${note}), ratio ${(raw / ours).toFixed(3)}`);
    if (round > 0) {
      ratios.push(raw / ours);
      rates.push({ ours: o.rows / ours, raw: o.rows / raw });
    }
  }
  const label = o.rows >= 1e6 ? `${Number((o.rows / 1e6).toFixed(1))}M` : `${Math.round(o.rows / 1e3)}k`;
  const ratio = median(ratios);
  report.add({
    bench: o.bench, name: `${o.what} rows/s, ${label} rows (median of ${ratios.length}; rounds ${ratios.map((r) => r.toFixed(2)).join(', ')})`, value: median(rates.map((r) => r.ours)), unit: 'rows/s',
    baseline: { name: 'raw postgresql() table function', value: median(rates.map((r) => r.raw)) }, ratio, target: '≥ 0.70', met: ratio >= 0.7,
  });
}
