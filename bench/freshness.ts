// Benchmark: how fresh the numbers are. A writer process commits 500 rows/s into api_requests
// the way Claude Nexus Proxy does (at each response's end) for two minutes
// (BENCH_FRESHNESS_SECONDS); the latency from each commit to its rows counted on /metrics and to
// its rows visible in ClickHouse, p50 / p95 / p99, at the default poll interval and at 1 s, and
// for 30 s (BENCH_FRESHNESS_EXTRA_SECONDS) at 400 ms. /metrics is read every 25 ms during the
// first half of each run, ClickHouse (through the running process's loopback query endpoint)
// during the second: one sampler at a time (since 2026-12-06; both at once before).
// The baseline is the poll interval: a reader that polls every interval makes a commit wait
// for the next poll, half an interval on average. Then the same two minutes with `mode:
// replication` (a PostgreSQL with wal_level=logical), against polling at 1 s in the same run:
// the goal there is p95 < 250 ms and p99 < 500 ms.
import { latencies, liveSetup, startWriterProcess } from './harness.ts';
import { percentile, type BenchReport } from './report.ts';
import { sumSamples } from '../exporter/src/testing/metrics-text.ts';

const SAMPLE_MS = 25;

/**
 * Every run commits as production databases do (synchronous_commit = on; the test clusters turn
 * it off for speed). With asynchronous commits logical decoding waits for the WAL writer to
 * flush (up to 3 × wal_writer_delay, 200–600 ms here), which polling does not.
 */
const DURABLE = { synchronous_commit: 'on' };
/** Logical replication's server settings. */
const LOGICAL = { ...DURABLE, wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' };

async function freshnessRun(pollInterval: string | undefined, intervalMs: number, seconds: number, mode: 'polling' | 'replication' = 'polling'): Promise<{ metrics: number[]; clickhouse: number[] }> {
  const yaml = `sources:\n  - type: claude-nexus-proxy\n    mode: ${mode}\n${pollInterval ? `    pollInterval: ${pollInterval}\n` : ''}`;
  const setup = await liveSetup({ yaml, settings: mode === 'replication' ? LOGICAL : DURABLE });
  try {
    const writer = startWriterProcess(setup.url, 500, seconds);
    const started = Date.now();
    const half = started + (seconds * 1000) / 2;
    // /metrics is sampled this long past the half, so that the commits before it are all seen.
    const settle = Math.max(3000, 2 * intervalMs);
    // One sampler at a time: /metrics for the first half of the run, ClickHouse for the second.
    // Both at once, the ClickHouse sampler's query every few tens of milliseconds shares the
    // embedded engine with the reader's writes and slowed the counters it was compared with
    // (replication, 60 s: /metrics p95 233 ms alone, 282 ms with it).
    const sample = async (until: () => boolean, read: () => Promise<number>, into: { t: number; n: number }[]) => {
      while (!until()) {
        const n = await read();
        into.push({ t: Date.now(), n });
        await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS));
      }
    };
    const metricsSeen: { t: number; n: number }[] = [];
    const storeSeen: { t: number; n: number }[] = [];
    await sample(() => Date.now() > half + settle, async () => sumSamples((await setup.tokenwatch.get('/metrics')).text, 'tokenwatch_requests_total'), metricsSeen);
    let finished = false;
    void writer.done.then(() => setTimeout(() => (finished = true), 10_000));
    await sample(() => finished, async () => {
      const response = await fetch(`http://${setup.address}/api/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sql: 'SELECT count() AS n FROM tokenwatch.requests' }) });
      return Number(((await response.json()) as { rows: { n: number }[] }).rows[0]!.n);
    }, storeSeen);
    await writer.done;
    // The first 10 s are the start-up (the first poll reads what arrived before it). ClickHouse
    // is timed for the commits after its sampler started.
    const commits = writer.commits.filter((c) => c.t - writer.commits[0]!.t > 10_000);
    return {
      metrics: latencies(commits.filter((c) => c.t < half), metricsSeen),
      clickhouse: latencies(commits.filter((c) => c.t > half + settle), storeSeen),
    };
  } finally {
    await setup.close();
  }
}

export async function runFreshnessBench(report: BenchReport): Promise<void> {
  // Two minutes at the default and at 1 s, as the figures are specified; the extra 400 ms run
  // (what the p95 target takes with interval polling) is shorter so the whole bench fits 30 minutes.
  const seconds = Number(process.env.BENCH_FRESHNESS_SECONDS ?? 120);
  const extraSeconds = Number(process.env.BENCH_FRESHNESS_EXTRA_SECONDS ?? 30);
  const runs = [
    ['default poll interval (5 s)', undefined, 5000, seconds, 'polling'], ['poll interval 1 s', '1s', 1000, seconds, 'polling'],
    ['poll interval 400 ms', '400ms', 400, extraSeconds, 'polling'], ['mode: replication', undefined, 1000, seconds, 'replication'],
  ] as const;
  const atOneSecond: Record<string, number> = {};
  for (const [label, interval, intervalMs, runSeconds, mode] of runs) {
    console.log(`\nfreshness: 500 rows/s for ${runSeconds} s, ${label}`);
    const result = await freshnessRun(interval, intervalMs, runSeconds, mode);
    for (const [where, values] of [['/metrics', result.metrics], ['ClickHouse', result.clickhouse]] as const) {
      for (const p of [50, 95, 99]) {
        const value = percentile(values, p);
        if (mode === 'replication') {
          // Against polling at 1 s, measured in the same run.
          const polled = atOneSecond[`${where} ${p}`]!;
          const target = p === 95 ? 250 : p === 99 ? 500 : undefined;
          report.add({
            bench: 'freshness', name: `p${p} commit to visible in ${where}, ${label} (${values.length} commits)`, value, unit: 'ms',
            baseline: { name: 'polling at 1 s, same run', value: polled }, ratio: value / polled,
            ...(target ? { target: `< ${target} ms`, met: value < target } : {}),
          });
          continue;
        }
        if (intervalMs === 1000) atOneSecond[`${where} ${p}`] = value;
        const target = intervalMs === 1000 && p !== 50 ? (p === 95 ? '< 500 ms' : '< 1000 ms') : undefined;
        report.add({
          bench: 'freshness', name: `p${p} commit to visible in ${where}, ${label} (${values.length} commits)`, value, unit: 'ms',
          baseline: { name: 'poll interval', value: intervalMs }, ratio: value / intervalMs,
          ...(target ? { target, met: value < (p === 95 ? 500 : 1000) } : {}),
        });
      }
    }
  }
}
