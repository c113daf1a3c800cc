// `tokenwatch run` under real faults, as separate processes: a port already in use, the
// source database down at start, the database stopped for 30 s while rows keep arriving, and
// SIGTERM in the middle of a long first read. At the end ClickHouse and the counters equal
// SQL, and a restart re-exports nothing.
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freePortOnLoopback } from '../embedded/ports.ts';
import { sourceDdl } from '../embedded/ddl.ts';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.ts';
import { startTokenwatch, waitUntil, type TokenwatchProcess } from '../testing/tokenwatch-process.ts';
import { startWriter } from '../testing/writer.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { createTestDatabase } from '../testing/databases.ts';
import { testConfig } from '../testing/fixtures.ts';
import { openStore } from '../store/clickhouse.ts';

const MAIN = new URL('./main.ts', import.meta.url).pathname;
const dirs: string[] = [];
const clusters: PgCluster[] = [];
afterAll(async () => {
  for (const cluster of clusters) await cluster.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tw-faults-'));
  dirs.push(dir);
  return dir;
}

function listenOn(port: number, onConnection: () => void = () => undefined): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer((socket) => {
      onConnection();
      socket.destroy();
    });
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** Totals of api_requests as SQL computes them. */
async function sqlTotals(url: string): Promise<{ rows: number; input: number; output: number; errors: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: number; input: string; output: string; errors: number }>(
      "SELECT count(*)::int AS n, coalesce(sum(input_tokens), 0)::text AS input, coalesce(sum(output_tokens), 0)::text AS output, (count(*) FILTER (WHERE response_status >= 500))::int AS errors FROM api_requests WHERE request_type = 'inference'",
    );
    return { rows: rows[0]!.n, input: Number(rows[0]!.input), output: Number(rows[0]!.output), errors: rows[0]!.errors };
  } finally {
    await client.end();
  }
}

/** Rows in the embedded ClickHouse store of a state directory: physically, and distinct ids. */
async function storedRequests(stateDir: string): Promise<{ physical: number; distinct: number }> {
  const store = await openStore(testConfig('postgres://unused@127.0.0.1/x', { stateDir }));
  try {
    const [row] = await store.query<{ physical: number; distinct: number }>(
      'SELECT (SELECT count() FROM tokenwatch.requests) AS physical, (SELECT uniqExact(request_id) FROM tokenwatch.requests) AS distinct',
    );
    return { physical: Number(row!.physical), distinct: Number(row!.distinct) };
  } finally {
    await store.close();
  }
}

function expectCountersEqual(metrics: string, totals: { rows: number; input: number; output: number; errors: number }): void {
  expect(sumSamples(metrics, 'tokenwatch_requests_total')).toBe(totals.rows);
  expect(sumSamples(metrics, 'tokenwatch_tokens_total', 'type="input"')).toBe(totals.input);
  expect(sumSamples(metrics, 'tokenwatch_tokens_total', 'type="output"')).toBe(totals.output);
  expect(sumSamples(metrics, 'tokenwatch_requests_total', 'status_class="5xx"')).toBe(totals.errors);
}

describe('tokenwatch run under faults', () => {
  it('exits 1 naming the address and EADDRINUSE when the port is taken, before reading any source', async () => {
    const port = await freePortOnLoopback();
    const occupier = await listenOn(port);
    // A "database" that counts connection attempts: there must be none.
    let connections = 0;
    const dbPort = await freePortOnLoopback();
    const fakeDb = await listenOn(dbPort, () => (connections += 1));
    try {
      const dir = tempDir();
      const result = spawnSync(process.execPath, [MAIN, 'run'], {
        encoding: 'utf8',
        timeout: 60_000,
        env: { PATH: process.env.PATH ?? '', TOKENWATCH_STATE_DIR: join(dir, 'state'), TOKENWATCH_LISTEN_ADDRESS: `127.0.0.1:${port}`, DATABASE_URL: `postgres://tw@127.0.0.1:${dbPort}/proxy` },
      });
      expect(result.status, result.stderr).toBe(1);
      expect(result.stderr).toContain(`tokenwatch: cannot listen on 127.0.0.1:${port}: the address is already in use by another process (EADDRINUSE)`);
      expect(result.stderr).not.toContain('serving HTTP');
      expect(connections).toBe(0);
    } finally {
      occupier.close();
      fakeDb.close();
    }
  });

  it('starts with the database down, survives a 30 s outage while rows arrive, and ends equal to SQL; SIGTERM flushes and a restart re-exports nothing', async () => {
    const dbPort = await freePortOnLoopback();
    const port = await freePortOnLoopback();
    const dir = tempDir();
    const stateDir = join(dir, 'state');
    const configFile = join(dir, 'tokenwatch.yaml');
    writeFileSync(configFile, 'sources:\n  - type: claude-nexus-proxy\n    pollInterval: 500ms\n    snapshotInterval: 2s\nprobes:\n  interval: 1s\n');
    const url = `postgres://postgres@127.0.0.1:${dbPort}/postgres`;
    const env = { DATABASE_URL: url, TOKENWATCH_STATE_DIR: stateDir, TOKENWATCH_CONFIG: configFile };
    let tw: TokenwatchProcess | undefined = startTokenwatch(['run'], env, `127.0.0.1:${port}`);
    try {
      // The database is not there: tokenwatch serves anyway and says the source is down.
      await waitUntil(async () => (await tw!.get('/metrics')).text.includes('tokenwatch_source_up{source="claude-nexus-proxy",table="api_requests"} 0'), 'source_up 0 while the database is down');
      expect((await tw.get('/readyz')).status).toBe(503);
      expect(tw.logs().some((l) => l.msg === 'source not available; retrying')).toBe(true);

      const cluster = await startPgCluster({ port: dbPort });
      clusters.push(cluster);
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(sourceDdl('claude-nexus-proxy'));
      await admin.end();
      await waitUntil(async () => (await tw!.get('/readyz')).status === 200, 'ready once the database is up', 30_000, 200);

      const writer = startWriter(url, { rowsPerInsert: 5, everyMs: 100 });
      await new Promise((resolve) => setTimeout(resolve, 3000));
      await cluster.stopServer();
      const down = Date.now();
      // 30 s without the database: /metrics answers every time, /readyz fails.
      let readyFailed = false;
      while (Date.now() - down < 30_000) {
        expect((await tw.get('/metrics')).status).toBe(200);
        if ((await tw.get('/readyz')).status === 503) readyFailed = true;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      expect(readyFailed).toBe(true);
      expect(tw.child.exitCode).toBeNull();
      const readBefore = sumSamples((await tw.get('/metrics')).text, 'tokenwatch_source_rows_read_total', 'table="api_requests"');
      await cluster.startServer();
      const back = Date.now();
      // Rows flow again within 5 s of the database returning.
      await waitUntil(async () => sumSamples((await tw!.get('/metrics')).text, 'tokenwatch_source_rows_read_total', 'table="api_requests"') > readBefore, 'rows read after the database is back', 15_000, 100);
      const recoveredMs = Date.now() - back;
      expect(recoveredMs).toBeLessThan(5000);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await writer.stop();
      expect(writer.failures()).toBeGreaterThan(0);

      const totals = await sqlTotals(url);
      await waitUntil(async () => sumSamples((await tw!.get('/metrics')).text, 'tokenwatch_requests_total') === totals.rows, 'counters equal to SQL', 20_000, 200);
      expectCountersEqual((await tw.get('/metrics')).text, totals);
      expect((await tw.get('/readyz')).status).toBe(200);

      // SIGTERM: flushed and checkpointed within 10 s, exit 0.
      const term = Date.now();
      tw.child.kill('SIGTERM');
      expect(await tw.exited).toEqual({ code: 0, signal: null });
      expect(Date.now() - term).toBeLessThan(10_000);
      tw = undefined;
      expect(await storedRequests(stateDir)).toEqual({ physical: totals.rows, distinct: totals.rows });

      // A restart re-exports nothing: the backfill finds nothing new, and the counters come back.
      const again = spawnSync(process.execPath, [MAIN, 'backfill', '--no-progress'], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '', ...env } });
      expect(again.status, again.stderr).toBe(0);
      const done = again.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; rows?: number }).find((l) => l.msg === 'backfill complete');
      expect(done?.rows).toBe(0);
      expect(await storedRequests(stateDir)).toEqual({ physical: totals.rows, distinct: totals.rows });
      console.log(`database outage: recovered ${recoveredMs} ms after the database came back; ${writer.failures()} writer inserts failed while it was down; ${totals.rows} rows, 0 lost, 0 duplicated`);
    } finally {
      tw?.child.kill('SIGKILL');
    }
  });

  it('SIGTERM in the middle of a long first read stops within 10 s at a page boundary; the restart reads only the rest', async () => {
    const db = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    try {
      await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
        SELECT gen_random_uuid(), 't' || (i % 9), now() - make_interval(secs => i), 'claude-haiku-4-5-20251001', 'inference', 200, i % 1000, i % 77
        FROM generate_series(1, 150000) AS i`);
      const port = await freePortOnLoopback();
      const dir = tempDir();
      const configFile = join(dir, 'tokenwatch.yaml');
      writeFileSync(configFile, 'sources:\n  - type: claude-nexus-proxy\n    batchSize: 500\n');
      const env = { DATABASE_URL: db.url, TOKENWATCH_STATE_DIR: join(dir, 'state'), TOKENWATCH_CONFIG: configFile };
      const tw = startTokenwatch(['run'], env, `127.0.0.1:${port}`);
      await waitUntil(async () => sumSamples((await tw.get('/metrics')).text, 'tokenwatch_source_rows_read_total', 'table="api_requests"') >= 5000, 'the first read under way', 60_000, 100);
      const term = Date.now();
      tw.child.kill('SIGTERM');
      expect(await tw.exited).toEqual({ code: 0, signal: null });
      expect(Date.now() - term).toBeLessThan(10_000);
      const stopped = tw.logs().find((l) => l.msg === 'stopped') as { rowsRead?: number } | undefined;
      const readFirst = stopped?.rowsRead ?? -1;
      expect(readFirst).toBeGreaterThan(0);
      expect(readFirst).toBeLessThan(150_000);
      const again = spawnSync(process.execPath, [MAIN, 'backfill', '--no-progress'], { encoding: 'utf8', timeout: 120_000, env: { PATH: process.env.PATH ?? '', ...env } });
      expect(again.status, again.stderr).toBe(0);
      const done = again.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; rows?: number }).find((l) => l.msg === 'backfill complete');
      expect(readFirst + (done?.rows ?? 0)).toBe(150_000);
      expect(await storedRequests(join(dir, 'state'))).toEqual({ physical: 150_000, distinct: 150_000 });
    } finally {
      await db.drop();
    }
  });
});
