// Benchmarks of `tokenwatch run` under steady traffic, as an operator runs it: a writer
// process commits rows the way Claude Nexus Proxy does, Prometheus scrapes every 5 s, the
// ClickHouse writer is on.
//   load: 1,000 rows/s for 5 minutes (BENCH_LOAD_SECONDS): ingest lag stays flat, no errors, RSS drift.
//   soak: 500 rows/s for 10 minutes (BENCH_SOAK_SECONDS): RSS drift < 50 MB, event-loop delay p99 < 100 ms.
// The drift is the rise of the least-squares line through every reading after the warm-up (a
// reading a second), not the difference of two readings, which the embedded engine's merges
// move by tens of MiB either way. The V8 heap's line beside it says whose memory grows: the
// heap's (JavaScript objects kept alive) or native memory's (the engine, buffers), and the
// kernel's split of RSS says whether it is allocated memory at all: the file-backed part is the
// embedded engine's library paged in as its code first runs. The slope of the last half says
// whether RSS still grows at the end or has levelled off.
// The baseline of each is the writer itself: rows read per second against rows written.
import { startPrometheus } from '../exporter/src/testing/prometheus.ts';
import { waitUntil } from '../exporter/src/testing/tokenwatch-process.ts';
import { liveSetup, mean, MiB, read, slope, startWriterProcess, type Reading } from './harness.ts';
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
  const pointDriftMiB = (steady.at(-1)!.residentBytes - steady[0]!.residentBytes) / MiB;
  const minutes = (r: Reading) => (r.at - steady[0]!.at) / 60_000;
  const steadyMinutes = minutes(steady.at(-1)!);
  const line = (rs: readonly Reading[], f: (r: Reading) => number) => slope(rs.map((r) => ({ x: minutes(r), y: f(r) / MiB })));
  const driftMiB = line(steady, (r) => r.residentBytes) * steadyMinutes;
  const heapRiseMiB = line(steady, (r) => r.heapUsedBytes) * steadyMinutes;
  const externalRiseMiB = line(steady, (r) => r.externalBytes) * steadyMinutes;
  const anonRiseMiB = line(steady, (r) => r.anonBytes) * steadyMinutes;
  const fileRiseMiB = line(steady, (r) => r.fileBytes) * steadyMinutes;
  const lastHalf = steady.slice(Math.floor(steady.length / 2));
  const lastHalfSlope = line(lastHalf, (r) => r.residentBytes);
  const firstHalfSlope = line(steady.slice(0, Math.floor(steady.length / 2)), (r) => r.residentBytes);
  // A line a minute, for the record: where RSS and the heap were.
  for (let m = 0; m <= Math.floor(steadyMinutes); m++) {
    const inMinute = steady.filter((r) => Math.floor(minutes(r)) === m);
    if (inMinute.length === 0) continue;
    console.log(`  minute ${m + 1}: RSS ${mean(inMinute.map((r) => r.residentBytes / MiB)).toFixed(0)} MiB (anonymous ${mean(inMinute.map((r) => r.anonBytes / MiB)).toFixed(0)}, file-backed ${mean(inMinute.map((r) => r.fileBytes / MiB)).toFixed(0)}), V8 heap used ${mean(inMinute.map((r) => r.heapUsedBytes / MiB)).toFixed(0)} MiB, external ${mean(inMinute.map((r) => r.externalBytes / MiB)).toFixed(0)} MiB, lag ${mean(inMinute.map((r) => r.ingestLagSeconds)).toFixed(2)} s`);
  }
  const loopP99Ms = Math.max(...steady.map((r) => r.eventLoopP99Seconds)) * 1000;
  const errors = result.pollFailures + readings.at(-1)!.sinkFailures + readings.filter((r) => r.sourceUp !== 1).length;
  const writeRate = result.written / result.writeSeconds;
  report.add({ bench, name: `rows read per second at ${rate} rows/s written`, value: readRate, unit: 'rows/s', baseline: { name: 'rows written per second', value: writeRate }, ratio: readRate / writeRate, target: '≈ 1.0 (keeps up)', met: readRate / writeRate > 0.97 });
  report.add({ bench, name: 'ingest lag, mean of the last third against the first third', value: lastLag, unit: 's', baseline: { name: 'first third', value: firstLag }, ratio: lastLag / Math.max(firstLag, 0.001), target: 'flat (≤ 1.5)', met: lastLag <= firstLag * 1.5 + 1 });
  report.add({ bench, name: 'time to read the last rows after the writer stopped', value: result.catchUpSeconds, unit: 's' });
  report.add({ bench, name: 'errors (failed polls, failed sink writes, readings with source_up 0)', value: errors, unit: '', target: '0', met: errors === 0 });
  report.add({ bench, name: `RSS drift after a ${Math.round(warmUp)} s warm-up: rise of the fitted line over ${steadyMinutes.toFixed(1)} min (${steady.length} readings)`, value: driftMiB, unit: 'MiB', baseline: { name: 'RSS after warm-up', value: steady[0]!.residentBytes / MiB }, ...(targets ? { target: '< 50 MiB', met: driftMiB < 50 } : {}) });
  report.add({ bench, name: 'RSS drift, last reading against the first after the warm-up', value: pointDriftMiB, unit: 'MiB' });
  report.add({ bench, name: 'RSS slope, last half of the run against the first half', value: lastHalfSlope, unit: 'MiB/min', baseline: { name: 'first half', value: firstHalfSlope } });
  report.add({ bench, name: 'V8 heap used: rise of the fitted line over the same readings', value: heapRiseMiB, unit: 'MiB', baseline: { name: 'heap used after warm-up', value: steady[0]!.heapUsedBytes / MiB } });
  report.add({ bench, name: 'external memory (Buffers, outside the heap): rise of the fitted line', value: externalRiseMiB, unit: 'MiB' });
  report.add({ bench, name: 'anonymous RSS (allocations: the heap, the engine\'s jemalloc, buffers): rise of the fitted line', value: anonRiseMiB, unit: 'MiB', baseline: { name: 'anonymous RSS after warm-up', value: steady[0]!.anonBytes / MiB } });
  report.add({ bench, name: 'file-backed RSS (code pages of the engine\'s library as they are first run): rise of the fitted line', value: fileRiseMiB, unit: 'MiB', baseline: { name: 'file-backed RSS after warm-up', value: steady[0]!.fileBytes / MiB } });
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
