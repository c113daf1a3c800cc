// Diagnostic benchmark: the CPU each side of the backfill ratio spends, not only its wall time.
// Rounds alternate the raw baseline and tokenwatch's backfill (as in `backfill`), and each
// reports its wall time, this process's user and system CPU (the embedded ClickHouse engine
// runs inside it) and the CPU of every PostgreSQL process, read from /proc (Linux only).
// Cores used = CPU / wall. On a machine with two cores, a backfill that needs more than twice
// the baseline's CPU cannot reach the 0.70 ratio however well its stages overlap.
//   npm run bench -- backfill-cpu     (BENCH_ROWS=1000000, BENCH_ROUNDS=5, BENCH_CHUNK_ROWS=250000)
import { readdirSync, readFileSync } from 'node:fs';
import { openStore } from '../exporter/src/store/clickhouse.ts';
import {
  backfillConfig, benchLogger, benchSize, median, openBackfillPipeline, rawBaseline, truncateEvents, waitForMerges, withSeededSource,
} from './api-requests.ts';

/**
 * User plus system CPU seconds of the PostgreSQL processes, from /proc/PID/stat: each live one's
 * own time, plus the time of children they have reaped (a backend that has exited, like the
 * baseline's connection, counts in its postmaster's).
 */
function postgresCpuSeconds(): number {
  const ticksPerSecond = 100; // USER_HZ: 100 on every Linux architecture Node supports
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // the process ended
    }
    if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'postgres') continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]); // utime, stime, cutime, cstime
  }
  return ticks / ticksPerSecond;
}

interface CpuSample {
  wall: number;
  user: number;
  system: number;
  postgres: number;
}

async function sample(run: () => Promise<unknown>): Promise<CpuSample> {
  const postgresBefore = postgresCpuSeconds();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await run();
  const wall = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  return { wall, user: cpu.user / 1e6, system: cpu.system / 1e6, postgres: postgresCpuSeconds() - postgresBefore };
}

function describe(s: CpuSample): string {
  const total = s.user + s.system + s.postgres;
  return `wall ${s.wall.toFixed(2)} s, CPU ${total.toFixed(2)} s (process user ${s.user.toFixed(2)} + system ${s.system.toFixed(2)}, PostgreSQL ${s.postgres.toFixed(2)}), ${(total / s.wall).toFixed(2)} cores`;
}

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
      const raw = await sample(() => rawBaseline(store, cluster.port));
      await truncateEvents(store);
      await waitForMerges(store);
      const pipeline = await openBackfillPipeline(config, store, logger);
      const ours = await sample(() => pipeline.backfill());
      await pipeline.close();
      const cpuRatio = (ours.user + ours.system + ours.postgres) / (raw.user + raw.system + raw.postgres);
      if (round > 0) cpuRatios.push(cpuRatio);
      console.log(`${round === 0 ? 'warm-up (not counted)' : `round ${round}`}:\n  raw postgresql() ${describe(raw)}\n  tokenwatch       ${describe(ours)}\n  CPU ratio tokenwatch / raw ${cpuRatio.toFixed(2)}`);
    }
    await store.close();
    console.log(`RESULT backfill_cpu_ratio=${median(cpuRatios).toFixed(2)} (median of ${rounds}: tokenwatch's CPU per backfill over the raw baseline's)`);
  });
}
