// What the live benchmarks share: a throwaway PostgreSQL with the Claude Nexus Proxy schema,
// `tokenwatch run` as its own process on it (embedded ClickHouse on), a writer process, and
// readings of /metrics.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { sourceDdl } from '../exporter/src/embedded/ddl.ts';
import { freePortOnLoopback } from '../exporter/src/embedded/ports.ts';
import { startPgCluster, type PgCluster } from '../exporter/src/testing/pg-cluster.ts';
import { startTokenwatch, waitUntil, type TokenwatchProcess } from '../exporter/src/testing/tokenwatch-process.ts';
import { sumSamples } from '../exporter/src/testing/metrics-text.ts';

export interface LiveSetup {
  cluster: PgCluster;
  url: string;
  dir: string;
  address: string;
  tokenwatch: TokenwatchProcess;
  /** Ends tokenwatch (SIGTERM), the database and the directory. */
  close(): Promise<void>;
}

/** PostgreSQL with the proxy's schema (and pg_stat_statements when asked), and tokenwatch running on it. */
export async function liveSetup(options: { yaml?: string; settings?: Record<string, string>; before?: (url: string) => Promise<void> } = {}): Promise<LiveSetup> {
  const cluster = await startPgCluster({ settings: options.settings });
  const url = cluster.url();
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(sourceDdl('claude-nexus-proxy'));
  await admin.end();
  await options.before?.(url);
  const dir = mkdtempSync(join(tmpdir(), 'tw-bench-live-'));
  const configFile = join(dir, 'tokenwatch.yaml');
  writeFileSync(configFile, options.yaml ?? 'sources:\n  - type: claude-nexus-proxy\n');
  const address = `127.0.0.1:${await freePortOnLoopback()}`;
  const tokenwatch = startTokenwatch(['run'], { DATABASE_URL: url, TOKENWATCH_STATE_DIR: join(dir, 'state'), TOKENWATCH_CONFIG: configFile, TOKENWATCH_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    // BENCH_NODE_OPTIONS: e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile tokenwatch.
    ...(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {}) }, address);
  await waitUntil(async () => (await tokenwatch.get('/readyz')).status === 200, 'tokenwatch ready', 120_000, 200);
  return {
    cluster, url, dir, address, tokenwatch,
    async close() {
      tokenwatch.child.kill('SIGTERM');
      await tokenwatch.exited;
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface WriterProcess {
  child: ChildProcess;
  /** Every commit: when it returned (epoch ms) and the rows committed so far. */
  commits: { t: number; n: number }[];
  committed(): number;
  done: Promise<void>;
}

/** bench/writer.ts as its own process: `rate` rows/s for `seconds`. */
export function startWriterProcess(url: string, rate: number, seconds: number): WriterProcess {
  const child = spawn(process.execPath, [new URL('./writer.ts', import.meta.url).pathname, url, String(rate), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const commits: { t: number; n: number }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => commits.push(JSON.parse(line) as { t: number; n: number }));
  const done = new Promise<void>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited with ${code}`)))));
  return { child, commits, committed: () => commits.at(-1)?.n ?? 0, done };
}

/** Figures of one /metrics reading. */
export interface Reading {
  at: number;
  requests: number;
  rowsRead: number;
  ingestLagSeconds: number;
  residentBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  /** RSS split as the kernel counts it (/proc/PID/status): anonymous memory, and file-backed pages. */
  anonBytes: number;
  fileBytes: number;
  eventLoopP99Seconds: number;
  sinkFailures: number;
  sourceUp: number;
  cpuSeconds: number;
}

/**
 * Anonymous and file-backed resident memory of a process. The file-backed part is mostly the
 * embedded engine's 560 MB library, whose code pages the kernel loads as code paths first run
 * (and may drop again): it grows without any allocation. A leak grows the anonymous part.
 */
function residentSplit(pid: number | undefined): { anonBytes: number; fileBytes: number } {
  if (pid === undefined) return { anonBytes: NaN, fileBytes: NaN };
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { anonBytes: kB('RssAnon'), fileBytes: kB('RssFile') + kB('RssShmem') };
}

export async function read(tokenwatch: TokenwatchProcess): Promise<Reading> {
  const text = (await tokenwatch.get('/metrics')).text;
  const table = 'table="api_requests"';
  return {
    ...residentSplit(tokenwatch.child.pid),
    at: Date.now(),
    requests: sumSamples(text, 'tokenwatch_requests_total'),
    rowsRead: sumSamples(text, 'tokenwatch_source_rows_read_total', table),
    ingestLagSeconds: sumSamples(text, 'tokenwatch_ingest_lag_seconds', table),
    residentBytes: sumSamples(text, 'process_resident_memory_bytes'),
    heapUsedBytes: sumSamples(text, 'nodejs_heap_size_used_bytes'),
    externalBytes: sumSamples(text, 'nodejs_external_memory_bytes'),
    eventLoopP99Seconds: sumSamples(text, 'nodejs_eventloop_lag_p99_seconds'),
    sinkFailures: sumSamples(text, 'tokenwatch_sink_write_failures_total'),
    sourceUp: sumSamples(text, 'tokenwatch_source_up', table),
    cpuSeconds: sumSamples(text, 'process_cpu_seconds_total'),
  };
}

export function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}

export const MiB = 1024 * 1024;

/** Least-squares slope of y over x (per unit of x); 0 with fewer than two points. */
export function slope(points: readonly { x: number; y: number }[]): number {
  if (points.length < 2) return 0;
  const mx = mean(points.map((p) => p.x));
  const my = mean(points.map((p) => p.y));
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Milliseconds from each commit until `seen` first reached its cumulative row count. */
export function latencies(commits: { t: number; n: number }[], seen: { t: number; n: number }[]): number[] {
  const out: number[] = [];
  let j = 0;
  for (const commit of commits) {
    while (j < seen.length && (seen[j]!.n < commit.n || seen[j]!.t < commit.t)) j++;
    if (j === seen.length) break;
    out.push(seen[j]!.t - commit.t);
  }
  return out;
}
