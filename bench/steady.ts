// Benchmarks of `tokenwatch run` under steady traffic, as an operator runs it: a writer
// process commits rows the way Claude Nexus Proxy does, Prometheus scrapes every 5 s, the
// ClickHouse writer is on.
//   load: 1,000 rows/s for 5 minutes (BENCH_LOAD_SECONDS): ingest lag stays flat, no errors, RSS drift.
//   soak: 500 rows/s for 10 minutes (BENCH_SOAK_SECONDS): RSS drift < 50 MB, event-loop delay p99 < 100 ms.
// The baseline of each is the writer itself: rows read per second against rows written.
import { startPrometheus } from '../exporter/src/testing/prometheus.ts';
import { waitUntil } from '../exporter/src/testing/tokenwatch-process.ts';
import { liveSetup, mean, MiB, read, startWriterProcess, type Reading } from './harness.ts';
import type { BenchReport } from './report.ts';

/** RSS and lag are compared after this warm-up (a quarter of a short run). */
const warmUpSeconds = (seconds: number) => Math.min(60, seconds / 4);

interface SteadyResult {
  readings: Reading[];
  written: number;
  writeSeconds: number;
  catchUpSeconds: number;
  pollFailures: number;
}

async function steadyRun(rate: number, seconds: number): Promise<SteadyResult> {
  const setup = await liveSetup();
  const prometheus = await startPrometheus([{ job: 'tokenwatch', targets: [setup.address] }], { scrapeInterval: '5s' });
  try {
    const writer = startWriterProcess(setup.url, rate, seconds);
    const started = Date.now();
    const readings: Reading[] = [];
    // Every second, not every 5 s: the lag gauge saws between polls, and a sampler at the poll
    // interval reads it at one phase that drifts through the run (a "growing" lag of 0.3 s -> 4.6 s
    // that was only the phase). Five readings per poll average over the saw.
    const sampler = setInterval(() => void read(setup.tokenwatch).then((r) => readings.push(r), () => undefined), 1000);
    await writer.done;
    const writeSeconds = (Date.now() - started) / 1000;
    clearInterval(sampler);
    const written = writer.committed();
    const caughtUp = Date.now();
    await waitUntil(async () => (await read(setup.tokenwatch)).requests >= written, 'tokenwatch to read every row', 120_000, 200);
    const catchUpSeconds = (Date.now() - caughtUp) / 1000;
    const pollFailures = setup.tokenwatch.logs().filter((l) => l.msg === 'poll failed').length;
    return { readings, written, writeSeconds, catchUpSeconds, pollFailures };
  } finally {
    await prometheus.stop();
    await setup.close();
  }
}

/** Targets: the soak's (RSS drift, event-loop delay); the load run reports the same figures without them. */
function steadyFigures(report: BenchReport, bench: string, rate: number, result: SteadyResult, targets: boolean): { driftMiB: number; loopP99Ms: number } {
  const { readings } = result;
  const warmUp = warmUpSeconds(result.writeSeconds);
  const steady = readings.filter((r) => r.at - readings[0]!.at >= warmUp * 1000);
  const third = Math.max(1, Math.floor(steady.length / 3));
  const firstLag = mean(steady.slice(0, third).map((r) => r.ingestLagSeconds));
  const lastLag = mean(steady.slice(-third).map((r) => r.ingestLagSeconds));
  const readRate = (readings.at(-1)!.requests - readings[0]!.requests) / ((readings.at(-1)!.at - readings[0]!.at) / 1000);
  const driftMiB = (steady.at(-1)!.residentBytes - steady[0]!.residentBytes) / MiB;
  const loopP99Ms = Math.max(...steady.map((r) => r.eventLoopP99Seconds)) * 1000;
  const errors = result.pollFailures + readings.at(-1)!.sinkFailures + readings.filter((r) => r.sourceUp !== 1).length;
  const writeRate = result.written / result.writeSeconds;
  report.add({ bench, name: `rows read per second at ${rate} rows/s written`, value: readRate, unit: 'rows/s', baseline: { name: 'rows written per second', value: writeRate }, ratio: readRate / writeRate, target: '≈ 1.0 (keeps up)', met: readRate / writeRate > 0.97 });
  report.add({ bench, name: 'ingest lag, mean of the last third against the first third', value: lastLag, unit: 's', baseline: { name: 'first third', value: firstLag }, ratio: lastLag / Math.max(firstLag, 0.001), target: 'flat (≤ 1.5)', met: lastLag <= firstLag * 1.5 + 1 });
  report.add({ bench, name: 'time to read the last rows after the writer stopped', value: result.catchUpSeconds, unit: 's' });
  report.add({ bench, name: 'errors (failed polls, failed sink writes, readings with source_up 0)', value: errors, unit: '', target: '0', met: errors === 0 });
  report.add({ bench, name: `RSS drift after a ${Math.round(warmUp)} s warm-up`, value: driftMiB, unit: 'MiB', baseline: { name: 'RSS after warm-up', value: steady[0]!.residentBytes / MiB }, ...(targets ? { target: '< 50 MiB', met: driftMiB < 50 } : {}) });
  report.add({ bench, name: 'event-loop delay p99 (worst 30 s window)', value: loopP99Ms, unit: 'ms', ...(targets ? { target: '< 100 ms', met: loopP99Ms < 100 } : {}) });
  return { driftMiB, loopP99Ms };
}

export async function runLoadBench(report: BenchReport): Promise<void> {
  const seconds = Number(process.env.BENCH_LOAD_SECONDS ?? 300);
  console.log(`\nload: 1000 rows/s for ${seconds} s, Prometheus scraping every 5 s, ClickHouse writer on`);
  steadyFigures(report, 'load', 1000, await steadyRun(1000, seconds), false);
}

export async function runSoakBench(report: BenchReport): Promise<void> {
  const seconds = Number(process.env.BENCH_SOAK_SECONDS ?? 600);
  console.log(`\nsoak: 500 rows/s for ${seconds} s`);
  steadyFigures(report, 'soak', 500, await steadyRun(500, seconds), true);
}
