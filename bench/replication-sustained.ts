// Benchmark: a busy gateway's rate held for five minutes. A writer process commits 10,000
// api_requests rows/s (BENCH_SUSTAINED_RATE) the way Claude Nexus Proxy does, for 5 minutes
// (BENCH_SUSTAINED_SECONDS), into `tokenwatch run` in `mode: replication`, then the same into
// polling every 1 s as the baseline, in the same run. Figures: the lag from each commit to its
// rows counted on /metrics (p50, p95; goal p95 < 1 s; a commit never counted has none), the
// rows written and counted per second, the rows still behind when the writer stops, and the
// process's anonymous memory (RSS without the embedded engine's library pages, see
// harness.ts): the least-squares slope over the run after the first minute (goal: flat).
//   npm run bench -- replication-sustained     (by name only: 11 minutes)
import { latencies, liveSetup, MiB, read, slope, startWriterProcess, type Reading } from './harness.ts';
import { percentile, type BenchReport } from './report.ts';
import { sumSamples } from '../exporter/src/testing/metrics-text.ts';

const SAMPLE_MS = 100;
const WARM_UP_MS = 60_000;
/** Commits as production databases do; see freshness.ts. */
const SETTINGS = { synchronous_commit: 'on', wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' };

interface SustainedResult {
  lags: number[];
  writtenPerSecond: number;
  countedPerSecond: number;
  /** Anonymous RSS growth per minute after the warm-up, and its level then. */
  anonSlopeMiBPerMin: number;
  anonAtWarmUpMiB: number;
  /** Seconds from the last commit to all rows counted (Infinity: not within 2 minutes). */
  caughtUpSeconds: number;
  /** Rows written and not yet counted when the writer stopped. */
  backlogAtStop: number;
}

export async function sustained(mode: 'polling' | 'replication', rate: number, seconds: number): Promise<SustainedResult> {
  const yaml = `sources:\n  - type: claude-nexus-proxy\n    mode: ${mode}\n    pollInterval: 1s\n`;
  const setup = await liveSetup({ yaml, settings: SETTINGS });
  try {
    // Caught up with the empty table (the replication slot created and its load done).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const writer = startWriterProcess(setup.url, rate, seconds);
    const started = Date.now();
    const seen: { t: number; n: number }[] = [];
    const readings: Reading[] = [];
    let running = true;
    const sampleCounts = (async () => {
      while (running) {
        seen.push({ t: Date.now(), n: sumSamples((await setup.tokenwatch.get('/metrics')).text, 'tokenwatch_requests_total') });
        await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
      }
    })();
    const sampler = setInterval(() => void read(setup.tokenwatch).then((r) => readings.push(r), () => undefined), 1000);
    await writer.done;
    const writeSeconds = (Date.now() - started) / 1000;
    const written = writer.committed();
    // The rows still in flight when the writer stops: at most 2 minutes to count them.
    while (Date.now() - started < (seconds + 120) * 1000 && (seen.at(-1)?.n ?? 0) < written) await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
    running = false;
    clearInterval(sampler);
    await sampleCounts;
    // A reader slower than the writer falls behind: the commits never counted have no lag, and
    // the backlog says how far behind it was.
    const countedAtStop = seen.filter((x) => x.t - started <= writeSeconds * 1000).at(-1)?.n ?? 0;
    const caughtUp = seen.find((x) => x.n >= written);
    const caughtUpSeconds = caughtUp ? (caughtUp.t - started) / 1000 - writeSeconds : Infinity;
    const steady = readings.filter((r) => r.at - started >= WARM_UP_MS && r.at - started <= writeSeconds * 1000);
    const result = {
      lags: latencies(writer.commits, seen),
      writtenPerSecond: written / writeSeconds,
      countedPerSecond: countedAtStop / writeSeconds,
      backlogAtStop: written - countedAtStop,
      anonSlopeMiBPerMin: slope(steady.map((r) => ({ x: (r.at - started) / 60_000, y: r.anonBytes / MiB }))),
      anonAtWarmUpMiB: (steady[0]?.anonBytes ?? NaN) / MiB,
      caughtUpSeconds,
    };
    // Lag minute by minute (commits in order): a reader that slows down as the run goes on
    // (the event store's merges, a growing journal) shows here, one that is simply short of
    // the rate from the start does not.
    const byMinute: string[] = [];
    for (let m = 0; m * 60_000 < writeSeconds * 1000; m++) {
      const inMinute = result.lags.filter((_, k) => writer.commits[k]!.t - started >= m * 60_000 && writer.commits[k]!.t - started < (m + 1) * 60_000);
      if (inMinute.length > 0) byMinute.push(`${(percentile(inMinute, 95) / 1000).toFixed(1)} s`);
    }
    console.log(`${mode}: lag p95 minute by minute: ${byMinute.join(', ')}`);
    console.log(`${mode}: ${written} rows in ${writeSeconds.toFixed(0)} s (${Math.round(result.writtenPerSecond)} rows/s); lag p50 ${percentile(result.lags, 50).toFixed(0)} ms, p95 ${percentile(result.lags, 95).toFixed(0)} ms; ${result.backlogAtStop} rows behind when it stopped, all counted ${caughtUpSeconds.toFixed(1)} s after; anonymous RSS ${result.anonAtWarmUpMiB.toFixed(0)} MiB at 1 min, ${result.anonSlopeMiBPerMin.toFixed(1)} MiB/min after`);
    return result;
  } finally {
    await setup.close();
  }
}

export async function runReplicationSustainedBench(report: BenchReport): Promise<void> {
  const rate = Number(process.env.BENCH_SUSTAINED_RATE ?? 10_000);
  const seconds = Number(process.env.BENCH_SUSTAINED_SECONDS ?? 300);
  console.log(`\nsustained: ${rate} rows/s for ${seconds} s, mode: replication, then polling every 1 s`);
  const replicated = await sustained('replication', rate, seconds);
  const polled = await sustained('polling', rate, seconds);
  const label = `${rate} rows/s for ${seconds / 60} min`;
  for (const p of [50, 95, 99]) {
    const value = percentile(replicated.lags, p);
    report.add({
      bench: 'replication-sustained', name: `p${p} commit to counted on /metrics, ${label}, mode: replication (${replicated.lags.length} commits)`, value, unit: 'ms',
      baseline: { name: 'polling every 1 s, same run', value: percentile(polled.lags, p) }, ratio: value / percentile(polled.lags, p),
      ...(p === 95 ? { target: '< 1000 ms', met: value < 1000 } : {}),
    });
  }
  report.add({
    bench: 'replication-sustained', name: `rows counted per second while writing, ${label}, mode: replication (written: ${Math.round(replicated.writtenPerSecond)} rows/s)`, value: replicated.countedPerSecond, unit: 'rows/s',
    baseline: { name: 'polling every 1 s, same run', value: polled.countedPerSecond }, ratio: replicated.countedPerSecond / polled.countedPerSecond,
  });
  report.add({
    bench: 'replication-sustained', name: `rows behind when the writer stopped, ${label}, mode: replication (all counted ${replicated.caughtUpSeconds.toFixed(0)} s later; polling ${polled.caughtUpSeconds.toFixed(0)} s)`, value: replicated.backlogAtStop, unit: 'rows',
    baseline: { name: 'polling every 1 s, same run', value: polled.backlogAtStop },
  });
  report.add({
    bench: 'replication-sustained', name: `anonymous RSS growth after the first minute, ${label}, mode: replication (${replicated.anonAtWarmUpMiB.toFixed(0)} MiB at 1 min)`, value: replicated.anonSlopeMiBPerMin, unit: 'MiB/min',
    baseline: { name: `polling every 1 s, same run (${polled.anonAtWarmUpMiB.toFixed(0)} MiB at 1 min)`, value: polled.anonSlopeMiBPerMin },
    target: 'flat (< 5 MiB/min)', met: replicated.anonSlopeMiBPerMin < 5,
  });
}
