// Benchmark: what tokenwatch costs the source database, against the usual SQL exporter.
// PostgreSQL execution time per minute (pg_stat_statements, by role) of tokenwatch `run`
// (polls, snapshot queries, and the straggler sweep amortised over its interval) against
// prometheus-sql-exporter (Debian's package) exposing the same requests, tokens and latency by
// tenant and model with GROUP BY queries every 15 s, on tables of 100k, 1M and 5M rows while
// 100 new rows/s arrive. Then tokenwatch in `mode: replication` on the same traffic: its
// statements' time (the snapshot tables, the changed rows read by id) plus the CPU time of the
// walsender that decodes the WAL for it (/proc/PID/stat), against the same peer figure, and
// the walsender's CPU against that of PostgreSQL's own client, pg_recvlogical, on the same
// traffic: the floor of any reader by logical replication.
//
// The table: a history at 1 row/s back in time (so 100k rows are 28 hours, 5M rows 58 days)
// and the last 15 minutes at the live rate, 100 rows/s, as if the traffic had been flowing;
// so the windows tokenwatch reads (15 minutes for polls, 5 hours for the account window, 24
// hours for the sweep) hold the same rows whatever the table's size. A proxy that really ran
// at 100 rows/s for a day would have 8.6M rows in the sweep's window: the sweep's cost per
// million rows in its window is reported for that extrapolation.
//   npm run bench -- db-cost      (BENCH_DB_SIZES=100000,1000000,5000000 BENCH_DB_SECONDS=30)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { sourceDdl } from '../exporter/src/embedded/ddl.ts';
import { freePortOnLoopback } from '../exporter/src/embedded/ports.ts';
import { findBinDir, startPgCluster, type PgCluster } from '../exporter/src/testing/pg-cluster.ts';
import { startTokenwatch, waitUntil } from '../exporter/src/testing/tokenwatch-process.ts';
import { IncrementalReader } from '../exporter/src/reader/incremental-reader.ts';
import { MemoryCheckpointStore } from '../exporter/src/reader/checkpoint-store.ts';
import { ADAPTERS } from '../exporter/src/sources/registry.ts';
import { testConfig } from '../exporter/src/testing/fixtures.ts';
import { startWriterProcess } from './harness.ts';
import type { BenchReport } from './report.ts';

const PEER_QUERIES = `
jobs:
  - name: proxy
    interval: 15s
    connections: ['CONNECTION']
    queries:
      - name: requests
        help: Requests by tenant and model
        labels: [domain, model]
        values: [requests]
        query: SELECT domain, model, count(*)::float AS requests FROM api_requests WHERE request_type = 'inference' GROUP BY domain, model
      - name: tokens
        help: Tokens by tenant and model
        labels: [domain, model]
        values: [input, output]
        query: SELECT domain, model, sum(input_tokens)::float AS input, sum(output_tokens)::float AS output FROM api_requests WHERE request_type = 'inference' GROUP BY domain, model
      - name: latency_p95_seconds
        help: p95 request duration by tenant and model
        labels: [domain, model]
        values: [p95]
        query: SELECT domain, model, (percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) / 1000)::float AS p95 FROM api_requests WHERE request_type = 'inference' GROUP BY domain, model
`;

/**
 * Grows the table to `rows` (sizes ascending, so a larger size does not seed the smaller one
 * again): the history part further back in time, from the first seed's instant, and the live
 * part topped up to now at 100 rows/s (no traffic arrived while the history was inserted).
 */
async function seed(client: pg.Client, rows: number, seeded: { rows: number; anchor: string | null }): Promise<void> {
  const recent = 100 * 900;
  const insert = (from: number, to: number, spacing: string, origin: string) => client.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status,
      input_tokens, output_tokens, duration_ms, first_token_ms, account_id)
    SELECT gen_random_uuid(), 'tenant-' || (i % 20) || '.example.com', ${origin} - i * ${spacing},
      (ARRAY['claude-sonnet-4-5-20250929', 'claude-opus-4-1-20250805', 'claude-haiku-4-5-20251001', 'claude-3-5-haiku-20241022'])[1 + i % 4],
      'inference', CASE WHEN i % 50 = 0 THEN 529 ELSE 200 END, 100 + i % 3000, i % 1200, 300 + ((i::bigint * 7919) % 30000)::int, 200 + i % 800, 'account-' || (i % 3)
    FROM generate_series(${from + 1}, ${to}) AS i`);
  seeded.anchor ??= (await client.query<{ now: string }>('SELECT now()::text AS now')).rows[0]!.now;
  const live = (n: number) => Math.min(n, recent);
  if (live(rows) > live(seeded.rows)) await insert(live(seeded.rows), live(rows), "interval '10 milliseconds'", `'${seeded.anchor}'::timestamptz`);
  const history = (n: number) => Math.max(0, n - recent);
  if (history(rows) > history(seeded.rows)) await insert(history(seeded.rows), history(rows), "interval '1 second'", `'${seeded.anchor}'::timestamptz - interval '15 minutes'`);
  const { rows: [gap] } = await client.query<{ n: number }>("SELECT floor(extract(epoch FROM now() - max(timestamp)) * 100)::int AS n FROM api_requests WHERE timestamp > now() - interval '15 minutes'");
  if ((gap?.n ?? 0) > 0) await insert(0, Math.min(recent, gap!.n), "interval '10 milliseconds'", 'now()');
  seeded.rows = rows;
  await client.query('VACUUM ANALYZE api_requests');
}

/** PostgreSQL time (ms) and calls of a role's statements since the last reset, sweep queries apart. */
async function cost(client: pg.Client, role: string): Promise<{ ms: number; calls: number; sweepMs: number }> {
  const { rows } = await client.query<{ ms: number; calls: number; sweep_ms: number }>(
    `SELECT coalesce(sum(total_exec_time), 0)::float AS ms, coalesce(sum(calls), 0)::int AS calls,
       coalesce(sum(total_exec_time) FILTER (WHERE query LIKE '%NOT (CASE WHEN%'), 0)::float AS sweep_ms
     FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = $1`,
    [role],
  );
  return { ms: rows[0]!.ms, calls: rows[0]!.calls, sweepMs: rows[0]!.sweep_ms };
}

/** One straggler sweep over the full 24-hour window, as a reader in steady state runs it: its PostgreSQL time. */
async function oneSweep(cluster: PgCluster, admin: pg.Client, role: string): Promise<{ ms: number; windowRows: number }> {
  const url = cluster.url().replace('postgres@', `${role}:${role}@`);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    const config = testConfig(url);
    const stream = ADAPTERS['claude-nexus-proxy'].build(config.sources[0] as never).streams[0]!;
    const store = new MemoryCheckpointStore();
    const { rows } = await admin.query<{ s: string; w: string; n: number }>(
      "SELECT txid_current_snapshot()::text AS s, (now() - interval '15 minutes')::text AS w, (SELECT count(*) FROM api_requests WHERE timestamp > now() - interval '24 hours')::int AS n",
    );
    // A reader that has been polling all day: one history range up to the watermark, read with the current snapshot.
    store.save(stream.spec.id, {
      version: 1, watermark: rows[0]!.w, snapshot: rows[0]!.s, inProgress: null, rowsEmitted: 0, updatedAt: new Date().toISOString(),
      history: { from: null, ranges: [{ upTo: rows[0]!.w, snapshot: rows[0]!.s, emittedFrom: null }], lastSweepAt: null },
    });
    const reader = new IncrementalReader(stream.spec, store, () => pool.connect());
    await admin.query('SELECT pg_stat_statements_reset()');
    await reader.sweep(async () => undefined);
    return { ms: (await cost(admin, role)).sweepMs, windowRows: rows[0]!.n };
  } finally {
    await pool.end();
  }
}

/** CPU time (ms) a process has used, user and system (/proc/PID/stat, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * tokenwatch `run` alone on the live traffic, from where the traffic is now (its start is not
 * measured): its statements' PostgreSQL time over `seconds`, and in replication mode the
 * walsender's CPU time, which decodes the WAL for it (its slot is dropped afterwards).
 */
async function tokenwatchCost(cluster: PgCluster, admin: pg.Client, dir: string, name: string, mode: 'polling' | 'replication', seconds: number): Promise<{ ms: number; calls: number; sweepMs: number; walsenderCpuMs: number }> {
  const configFile = join(dir, `${name}.yaml`);
  writeFileSync(configFile, `sources:\n  - type: claude-nexus-proxy\n    mode: ${mode}\n    startFrom: now\nclickhouse:\n  enabled: false\n`);
  const address = `127.0.0.1:${await freePortOnLoopback()}`;
  const tw = startTokenwatch(['run'], { DATABASE_URL: cluster.url().replace('postgres@', 'tokenwatch_ro:tokenwatch_ro@'), TOKENWATCH_STATE_DIR: join(dir, `state-${name}`), TOKENWATCH_CONFIG: configFile, TOKENWATCH_LOG_LEVEL: 'warn' }, address);
  const writer = startWriterProcess(cluster.url(), 100, seconds + 30);
  try {
    await waitUntil(async () => (await tw.get('/readyz')).status === 200, 'tokenwatch ready', 120_000, 200);
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const walsender = async () => {
      if (mode === 'polling') return undefined;
      const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_replication WHERE application_name LIKE 'tokenwatch/%'");
      if (rows.length !== 1) throw new Error(`expected one tokenwatch walsender, found ${rows.length}`);
      return rows[0]!.pid;
    };
    const pid = await walsender();
    await admin.query('SELECT pg_stat_statements_reset()');
    const cpuBefore = pid === undefined ? 0 : cpuMs(pid);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const walsenderCpuMs = pid === undefined ? 0 : cpuMs(pid) - cpuBefore;
    if (pid !== undefined && (await walsender()) !== pid) throw new Error('the walsender changed during the measurement');
    const measured = await cost(admin, 'tokenwatch_ro');
    if (process.env.BENCH_TRACE) {
      const { rows: top } = await admin.query(`SELECT calls, round(total_exec_time::numeric, 1) AS ms, round(mean_exec_time::numeric, 2) AS mean, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 140) AS query
        FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'tokenwatch_ro' ORDER BY total_exec_time DESC LIMIT 8`);
      console.error(mode, top);
    }
    return { ...measured, walsenderCpuMs };
  } finally {
    tw.child.kill('SIGTERM');
    await tw.exited;
    writer.child.kill('SIGTERM');
    await writer.done.catch(() => undefined);
    if (mode === 'replication') await admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'tokenwatch_claude_nexus_proxy'");
  }
}

/**
 * The floor of any logical-replication reader: the walsender's CPU time over `seconds` on the
 * same traffic when PostgreSQL's own client, pg_recvlogical, consumes a pgoutput slot of the
 * same publication and throws the changes away (status every 10 s, its default).
 */
async function recvlogicalWalsenderCpu(cluster: PgCluster, admin: pg.Client, seconds: number): Promise<number> {
  const slot = 'bench_pg_recvlogical';
  await admin.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
  const writer = startWriterProcess(cluster.url(), 100, seconds + 20);
  const client = spawn(join(findBinDir(), 'pg_recvlogical'), ['-d', cluster.url(), '-S', slot, '--start', '-o', 'proto_version=1', '-o', 'publication_names=tokenwatch_claude_nexus_proxy', '-f', '/dev/null'], { stdio: 'ignore' });
  try {
    let pid: number | undefined;
    await waitUntil(async () => {
      pid = (await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_replication WHERE application_name = 'pg_recvlogical'")).rows[0]?.pid;
      return pid !== undefined;
    }, 'pg_recvlogical to stream', 30_000, 200);
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const before = cpuMs(pid!);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    return cpuMs(pid!) - before;
  } finally {
    client.kill('SIGTERM');
    await new Promise((resolve) => client.once('exit', resolve));
    writer.child.kill('SIGTERM');
    await writer.done.catch(() => undefined);
    await admin.query('SELECT pg_drop_replication_slot($1)', [slot]);
  }
}

/** The peer is a separate program: say which package brings it rather than die with spawn ENOENT. */
function requirePeer(): void {
  const found = spawnSync('prometheus-sql-exporter', ['-version'], { stdio: 'ignore' });
  if ((found.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error('db-cost measures against prometheus-sql-exporter, which is not installed: apt-get install prometheus-sql-exporter (Debian and Ubuntu), or put the binary from github.com/justwatchcom/sql_exporter on PATH');
  }
}

export async function runDbCostBench(report: BenchReport): Promise<void> {
  requirePeer();
  const sizes = (process.env.BENCH_DB_SIZES ?? '100000,1000000,5000000').split(',').map(Number);
  const seconds = Number(process.env.BENCH_DB_SECONDS ?? 30);
  console.log(`\ndatabase cost: tokenwatch against prometheus-sql-exporter, ${seconds} s each, 100 rows/s arriving, tables of ${sizes.join(', ')} rows`);
  // wal_level = logical for both modes, so that polling is measured on the same server.
  const cluster = await startPgCluster({ settings: { shared_preload_libraries: "'pg_stat_statements'", 'pg_stat_statements.max': '1000', wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' } });
  const admin = new pg.Client({ connectionString: cluster.url() });
  await admin.connect();
  const dir = mkdtempSync(join(tmpdir(), 'tw-bench-dbcost-'));
  try {
    await admin.query(`CREATE EXTENSION pg_stat_statements; ${sourceDdl('claude-nexus-proxy')};
      CREATE ROLE tokenwatch_ro LOGIN PASSWORD 'tokenwatch_ro'; CREATE ROLE sql_exporter LOGIN PASSWORD 'sql_exporter';
      GRANT SELECT ON api_requests TO tokenwatch_ro, sql_exporter;
      ALTER ROLE tokenwatch_ro REPLICATION; CREATE PUBLICATION tokenwatch_claude_nexus_proxy FOR TABLE api_requests`);
    const perSize: { rows: number; ours: number; peer: number; replication?: number }[] = [];
    const seeded = { rows: 0, anchor: null as string | null };
    for (const rows of [...sizes].sort((a, b) => a - b)) {
      await seed(admin, rows, seeded);
      console.log(`  ${(await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM api_requests')).rows[0]!.n} rows in api_requests`);
      const sweep = await oneSweep(cluster, admin, 'tokenwatch_ro');
      // The peer, alone, with the live traffic.
      const peerConfig = join(dir, 'sql-exporter.yml');
      writeFileSync(peerConfig, PEER_QUERIES.replace('CONNECTION', `postgres://sql_exporter:sql_exporter@127.0.0.1:${cluster.port}/postgres?sslmode=disable`));
      const peerPort = await freePortOnLoopback();
      const writer = startWriterProcess(cluster.url(), 100, seconds + 20);
      const peer = spawn('prometheus-sql-exporter', [`-config.file=${peerConfig}`, `-web.listen-address=127.0.0.1:${peerPort}`], { stdio: 'ignore' });
      await waitUntil(async () => (await fetch(`http://127.0.0.1:${peerPort}/metrics`).then((r) => r.text())).includes('sql_requests'), 'the SQL exporter to run its queries', 120_000, 500);
      await admin.query('SELECT pg_stat_statements_reset()');
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      const peerCost = await cost(admin, 'sql_exporter');
      peer.kill('SIGTERM');
      writer.child.kill('SIGTERM');
      await writer.done.catch(() => undefined);

      const ourCost = await tokenwatchCost(cluster, admin, dir, `polling-${rows}`, 'polling', seconds);
      const replicated = await tokenwatchCost(cluster, admin, dir, `replication-${rows}`, 'replication', seconds);
      const floorCpuMs = await recvlogicalWalsenderCpu(cluster, admin, seconds);

      // Per minute; the sweep runs every 10 minutes, its cost spread over them.
      const minutes = seconds / 60;
      const oursPerMinute = (ourCost.ms - ourCost.sweepMs) / minutes + sweep.ms / 10;
      const peerPerMinute = peerCost.ms / minutes;
      perSize.push({ rows, ours: oursPerMinute, peer: peerPerMinute });
      const label = rows >= 1e6 ? `${rows / 1e6}M` : `${rows / 1e3}k`;
      report.add({ bench: 'db-cost', name: `PostgreSQL time per minute, ${label} rows (tokenwatch: polls and snapshots, and the sweep spread over 10 minutes)`, value: oursPerMinute, unit: 'ms/min',
        baseline: { name: `prometheus-sql-exporter (${(peerCost.ms / Math.max(1, peerCost.calls / 3)).toFixed(0)} ms per 15 s run)`, value: peerPerMinute }, ratio: peerPerMinute / oursPerMinute,
        target: rows === 1_000_000 ? '≥ 100× less at 1M rows' : undefined, met: rows === 1_000_000 ? peerPerMinute / oursPerMinute >= 100 : undefined });
      const replicationPerMinute = (replicated.ms + replicated.walsenderCpuMs) / minutes;
      perSize.at(-1)!.replication = replicationPerMinute;
      report.add({ bench: 'db-cost', name: `mode: replication, per minute at ${label} rows: statement time ${(replicated.ms / minutes).toFixed(0)} ms (snapshot tables, rows read by id) + walsender CPU ${(replicated.walsenderCpuMs / minutes).toFixed(0)} ms`,
        value: replicationPerMinute, unit: 'ms/min', baseline: { name: 'prometheus-sql-exporter, same run', value: peerPerMinute }, ratio: peerPerMinute / replicationPerMinute,
        target: rows === 1_000_000 ? '≥ 100× less at 1M rows' : undefined, met: rows === 1_000_000 ? peerPerMinute / replicationPerMinute >= 100 : undefined });
      // What the walsender costs whatever the client does: the best ratio any reader by logical
      // replication could reach against the peer.
      const floorPerMinute = floorCpuMs / minutes;
      report.add({ bench: 'db-cost', name: `mode: replication, walsender CPU per minute at ${label} rows, against the walsender of PostgreSQL's own pg_recvlogical on the same traffic (at most ${(peerPerMinute / Math.max(1, floorPerMinute)).toFixed(0)}× less than the peer for any logical-replication reader)`,
        value: replicated.walsenderCpuMs / minutes, unit: 'ms/min', baseline: { name: 'pg_recvlogical walsender, same run', value: floorPerMinute }, ratio: floorPerMinute / Math.max(1, replicated.walsenderCpuMs / minutes) });
      report.add({ bench: 'db-cost', name: `one straggler sweep over 24 h, ${label} rows (${sweep.windowRows} rows in its window)`, value: sweep.ms, unit: 'ms',
        baseline: { name: 'per million rows in the window', value: (sweep.ms / Math.max(1, sweep.windowRows)) * 1e6 } });
    }
    const flat = perSize.at(-1)!.ours / perSize[0]!.ours;
    report.add({ bench: 'db-cost', name: `tokenwatch's cost at ${sizes.at(-1)} rows against ${sizes[0]} rows`, value: flat, unit: '×', baseline: { name: `the peer's growth`, value: perSize.at(-1)!.peer / perSize[0]!.peer }, target: 'flat (≈ 1×)', met: flat < 1.5 });
    const flatReplication = perSize.at(-1)!.replication! / perSize[0]!.replication!;
    report.add({ bench: 'db-cost', name: `mode: replication, cost at ${sizes.at(-1)} rows against ${sizes[0]} rows`, value: flatReplication, unit: '×', baseline: { name: `the peer's growth`, value: perSize.at(-1)!.peer / perSize[0]!.peer }, target: 'flat (≈ 1×)', met: flatReplication < 1.5 });
  } finally {
    await admin.end();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
