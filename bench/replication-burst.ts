// Benchmark: a burst through `mode: replication` against polling in the same run. With
// `tokenwatch run` started and caught up, 1M api_requests rows (BENCH_BURST_ROWS) are committed
// in 10 transactions; the figure is rows per second from the first commit to all of them
// counted on /metrics, and the process's peak RSS over the burst (read from /proc every
// 100 ms). The same burst read by polling (every 1 s) is the baseline.
//   npm run bench -- replication-burst
import pg from 'pg';
import { readFileSync } from 'node:fs';
import { sumSamples } from '../exporter/src/testing/metrics-text.ts';
import { liveSetup, MiB } from './harness.ts';
import type { BenchReport } from './report.ts';

const TRANSACTIONS = 10;

/** Commits as production databases do; see freshness.ts. */
const SETTINGS = { synchronous_commit: 'on', wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' };

function rss(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // The process has exited: the loop below reports it.
    return NaN;
  }
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : NaN;
}

async function burst(mode: 'polling' | 'replication', rows: number): Promise<{ seconds: number; peakRss: number; startRss: number; slowestScrapeMs: number }> {
  const yaml = `sources:\n  - type: claude-nexus-proxy\n    mode: ${mode}\n    pollInterval: 1s\n`;
  const setup = await liveSetup({ yaml, settings: SETTINGS });
  const db = new pg.Client({ connectionString: setup.url });
  await db.connect();
  let sampler: NodeJS.Timeout | undefined;
  try {
    const pid = setup.tokenwatch.child.pid;
    if (process.env.BENCH_TRACE) console.log(`${mode}: tokenwatch at http://${setup.address}`);
    // Caught up with the empty table (the replication slot created and its load done).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const startRss = rss(pid);
    let peakRss = startRss;
    sampler = setInterval(() => (peakRss = Math.max(peakRss, rss(pid))), 100);
    const started = performance.now();
    const per = Math.ceil(rows / TRANSACTIONS);
    for (let t = 0; t < TRANSACTIONS; t++) {
      await db.query(
        `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
         SELECT gen_random_uuid(), 'tenant-' || (i % 20) || '.example.com', now() - make_interval(secs => i % 30), 'claude-sonnet-4-5-20250929', 'inference', 200, 100 + i % 900, i % 300
         FROM generate_series(1, $1::int) AS i`,
        [Math.min(per, rows - t * per)],
      );
    }
    const committed = performance.now();
    let counted = 0;
    let slowestScrapeMs = 0;
    while (counted < rows) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const exit = setup.tokenwatch.child.exitCode ?? setup.tokenwatch.child.signalCode;
      if (exit !== null) throw new Error(`${mode}: tokenwatch exited (${exit}) during the burst: ${setup.tokenwatch.stderr().slice(-2000)}`);
      // Prometheus's default scrape timeout; the slowest answer is reported.
      const asked = performance.now();
      const text = await fetch(`http://${setup.address}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text()).catch((error: unknown) => {
        throw new Error(`${mode}: /metrics did not answer within 10 s (${String(error)}); tokenwatch's log: ${setup.tokenwatch.stderr().slice(-2000)}`);
      });
      slowestScrapeMs = Math.max(slowestScrapeMs, performance.now() - asked);
      counted = sumSamples(text, 'tokenwatch_requests_total');
      if (performance.now() - started > 900_000) throw new Error(`${mode}: ${counted} of ${rows} rows counted after 15 minutes`);
    }
    clearInterval(sampler);
    const seconds = (performance.now() - started) / 1000;
    console.log(`${mode}: ${rows} rows committed in ${((committed - started) / 1000).toFixed(1)} s, all counted after ${seconds.toFixed(1)} s (${Math.round(rows / seconds)} rows/s); slowest /metrics answer ${Math.round(slowestScrapeMs)} ms; RSS ${Math.round(startRss / MiB)} -> peak ${Math.round(peakRss / MiB)} MiB`);
    return { seconds, peakRss, startRss, slowestScrapeMs };
  } finally {
    clearInterval(sampler);
    await db.end();
    await setup.close();
  }
}

export async function runReplicationBurstBench(report: BenchReport): Promise<void> {
  const rows = Number(process.env.BENCH_BURST_ROWS ?? 1_000_000);
  console.log(`\nburst: ${rows} rows in ${TRANSACTIONS} transactions, mode: replication against polling every 1 s`);
  const polled = await burst('polling', rows);
  const replicated = await burst('replication', rows);
  const label = rows >= 1e6 ? `${rows / 1e6}M` : `${rows / 1e3}k`;
  report.add({
    bench: 'replication-burst', name: `${label} rows in ${TRANSACTIONS} transactions, commit to counted on /metrics, mode: replication`, value: rows / replicated.seconds, unit: 'rows/s',
    baseline: { name: 'polling every 1 s, same run', value: rows / polled.seconds }, ratio: polled.seconds / replicated.seconds,
  });
  report.add({
    bench: 'replication-burst', name: 'slowest /metrics answer during the burst (asked every 100 ms), mode: replication', value: Math.round(replicated.slowestScrapeMs), unit: 'ms',
    baseline: { name: 'polling every 1 s, same run', value: Math.round(polled.slowestScrapeMs) }, target: '< 10 s (Prometheus\'s default scrape timeout)', met: replicated.slowestScrapeMs < 10_000,
  });
  report.add({
    bench: 'replication-burst', name: `peak RSS growth over the burst, mode: replication (polling: ${Math.round((polled.peakRss - polled.startRss) / MiB)} MiB)`,
    value: Math.round((replicated.peakRss - replicated.startRss) / MiB), unit: 'MiB',
    baseline: { name: 'RSS before the burst', value: Math.round(replicated.startRss / MiB) },
  });
}
