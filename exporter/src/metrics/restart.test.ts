// Totals stay right across restarts and replicas: two exporter processes read the same
// database while rows keep arriving; one of them is killed with SIGKILL and restarted twice.
// Prometheus scrapes both. Neither counter ever resets, never exceeds the rows in the table,
// and both end equal to SQL's count: no spike, no gap, the same totals on both replicas.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { API_REQUEST_COLUMNS, apiRequestRows, insertRows } from '../embedded/seed.ts';
import { eventually, startPrometheus, type PrometheusServer } from '../testing/prometheus.ts';

const MAIN = new URL('../cli/main.ts', import.meta.url).pathname;

interface Exporter {
  /** 0 until the first start has bound one. */
  port: number;
  stateDir: string;
  child?: ChildProcess;
  /** The last lines the process logged (stderr), to name a failure. */
  log: string[];
}

/**
 * Starts the exporter and resolves once it serves HTTP. The first start binds port 0 and reads
 * the port from its 'serving HTTP' log line: a port picked free beforehand can be taken by
 * another test's connection before the child binds it (CI lost a replica so once).
 */
function start(exporter: Exporter, db: TestDatabase, config: string): Promise<void> {
  const child = spawn(process.execPath, [MAIN, 'run', '--config', config], {
    env: {
      PATH: process.env.PATH ?? '', DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: exporter.stateDir,
      TOKENWATCH_LISTEN_ADDRESS: `127.0.0.1:${exporter.port}`, TOKENWATCH_LOG_LEVEL: 'info', TOKENWATCH_LOG_FORMAT: 'json',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  exporter.child = child;
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      exporter.log.push(line);
      if (exporter.log.length > 40) exporter.log.shift();
      const served = /"msg":"serving HTTP"/.test(line) ? /"address":"[^"]*:(\d+)"/.exec(line) : null;
      if (served) {
        exporter.port = Number(served[1]);
        resolve();
      }
    });
    child.once('exit', (code, signal) => reject(new Error(`tokenwatch exited (${code ?? signal}) before serving HTTP:\n${exporter.log.join('\n')}`)));
  });
}

async function killHard(exporter: Exporter): Promise<void> {
  const child = exporter.child!;
  child.kill('SIGKILL');
  if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
}

describe('metrics across restarts and replicas', () => {
  let db: TestDatabase;
  let prometheus: PrometheusServer;
  const exporters: Exporter[] = [];
  let config: string;
  let dir: string;

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(3000, { seed: 11, idPrefix: 'pre-' }));
    dir = mkdtempSync(join(tmpdir(), 'tokenwatch-restart-'));
    config = join(dir, 'tokenwatch.yaml');
    writeFileSync(config, 'sources:\n  - type: claude-nexus-proxy\n    pollInterval: 200ms\n    batchSize: 500\n    snapshotInterval: 1s\n');
    for (const name of ['a', 'b']) exporters.push({ port: 0, stateDir: join(dir, name), log: [] });
    await Promise.all(exporters.map((e) => start(e, db, config)));
    prometheus = await startPrometheus(exporters.map((e, i) => ({ job: `replica-${i}`, targets: [`127.0.0.1:${e.port}`] })));
  });
  afterAll(async () => {
    for (const e of exporters) e.child?.kill('SIGKILL');
    await prometheus?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('no reset, no over-count and equal final totals after kill -9 while rows keep arriving', async () => {
    const started = Date.now() / 1000;
    let batch = 0;
    const insert = async () => {
      // 40 rows, some with timestamps minutes in the past (late commits).
      batch += 1;
      await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(40, { seed: 100 + batch, idPrefix: `live-${batch}-`, spanMs: 4 * 60_000 }));
    };
    const [a] = exporters;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 25; i++) {
        await insert();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      if (round < 2) {
        await killHard(a!);
        for (let i = 0; i < 5; i++) await insert();
        await start(a!, db, config);
      }
    }
    const { rows } = await db.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM api_requests WHERE request_type = 'inference'");
    const truth = rows[0]!.n;
    for (const [i] of exporters.entries()) {
      // What each replica last showed, and its own /metrics, name a failure (a flake under load
      // timed out here once, with no more to go on).
      let shown: number | undefined;
      await eventually(
        async () => (shown = (await prometheus.query(`sum(tokenwatch_requests_total{job="replica-${i}"})`))[0]?.value) === truth,
        60_000,
        `replica-${i} to count ${truth} requests`,
      ).catch(async (error: unknown) => {
        const own = await fetch(`http://127.0.0.1:${exporters[i]!.port}/metrics`).then((r) => r.text(), (e: unknown) => String(e));
        const lines = own.split('\n').filter((l) => /^tokenwatch_(source_up|source_rows_read_total|source_last_error|requests_total)\b/.test(l) || /^tokenwatch_sink/.test(l));
        const exited = exporters[i]!.child!.exitCode ?? exporters[i]!.child!.signalCode;
        throw new Error(`${(error as Error).message}: Prometheus shows ${shown}; ${exited === null ? 'running' : `exited (${exited})`}; its /metrics:\n${lines.join('\n')}\nits last log lines:\n${exporters[i]!.log.join('\n')}`);
      });
    }
    const end = Date.now() / 1000 + 1;
    for (const [i] of exporters.entries()) {
      const window = `${Math.ceil(end - started) + 5}s`;
      // resets() sees every drop of every series: a restart that lost its counters would show here.
      const resets = await prometheus.query(`sum(resets(tokenwatch_requests_total{job="replica-${i}"}[${window}]))`);
      expect(resets[0]?.value ?? 0, `replica-${i} resets`).toBe(0);
      const series = await prometheus.queryRange(`sum(tokenwatch_requests_total{job="replica-${i}"})`, started, end, 1);
      const values = series[0]!.values.map(([, v]) => v);
      expect(Math.max(...values), `replica-${i} never counts more rows than exist`).toBeLessThanOrEqual(truth);
      for (let k = 1; k < values.length; k++) expect(values[k]!).toBeGreaterThanOrEqual(values[k - 1]!);
      // Tokens too: the sum over the table equals the counter.
      const { rows: tokens } = await db.pool.query<{ n: string }>("SELECT sum(output_tokens)::text AS n FROM api_requests WHERE request_type = 'inference'");
      const counted = await prometheus.query(`sum(tokenwatch_tokens_total{job="replica-${i}", type="output"})`);
      expect(counted[0]!.value).toBe(Number(tokens[0]!.n));
    }
  });
});
