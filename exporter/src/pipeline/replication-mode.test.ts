// mode: replication end to end, on a PostgreSQL with wal_level=logical: rows committed before
// the start are loaded under the slot's snapshot, then the proxy's INSERT-then-UPDATE writes,
// a revision, savepoints (one rolled back) and deletes stream in; ClickHouse and the counters
// equal SQL on the source. After a stop, rows written meanwhile are streamed from the slot on
// the next start, and nothing is counted twice.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { sourceDdl } from '../embedded/ddl.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { Pipeline } from './pipeline.ts';
import { checkSource } from '../cli/check.ts';
import { Pricing } from '../pricing/pricing.ts';
import { createTestDatabase } from '../testing/databases.ts';
import type { NamedSource } from '../sources/adapter.ts';
import { grantsSql } from '../sources/grants.ts';

const DB = 'tw_replication';
const MAIN = new URL('../cli/main.ts', import.meta.url).pathname;

describe('mode: replication', () => {
  let cluster: PgCluster;
  let db: pg.Pool;
  let stateDir: string;
  let store: EventStore;
  let next = 0;

  const insert = (client: pg.ClientBase, tenant: string, complete: boolean) => {
    const id = `00000000-0000-4000-8000-${String(++next).padStart(12, '0')}`;
    return client.query(
      `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type${complete ? ', response_status, input_tokens, output_tokens' : ''})
       VALUES ($1, $2, now() - interval '1 minute', 'claude-sonnet-4-5', 'inference'${complete ? `, 200, ${100 + next}, ${next}` : ''})`,
      [id, tenant],
    ).then(() => id);
  };
  const respond = (id: string, tokens: number) => db.query('UPDATE api_requests SET response_status = 200, input_tokens = $2, output_tokens = 7 WHERE request_id = $1', [id, tokens]);
  const truth = async () => (await db.query<{ n: number; input: number }>(
    "SELECT count(*)::int AS n, coalesce(sum(input_tokens), 0)::int AS input FROM api_requests WHERE response_status IS NOT NULL AND request_type = 'inference'",
  )).rows[0]!;
  const stored = async () => {
    const [row] = await store.query<{ n: string; input: string }>(`SELECT toString(count()) AS n, toString(sum(input_tokens)) AS input FROM ${DB}.requests FINAL`);
    return { n: Number(row!.n), input: Number(row!.input) };
  };

  async function open(maxCommitDelay = '10s'): Promise<{ pipeline: Pipeline; metrics: MetricsRegistry }> {
    const config = testConfig(cluster.url(), { stateDir, sources: [{ type: 'claude-nexus-proxy', mode: 'replication', maxCommitDelay }], clickhouse: { database: DB } });
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new FileCheckpointStore(stateDir), autoSources: false, metrics });
    pipeline.start();
    return { pipeline, metrics };
  }
  async function caughtUp(): Promise<void> {
    const want = await truth();
    for (let waited = 0; waited < 30_000; waited += 100) {
      const got = await stored();
      if (got.n === want.n && got.input === want.input) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await stored()).toEqual(await truth());
  }

  beforeAll(async () => {
    cluster = await startPgCluster({ settings: { wal_level: 'logical', max_replication_slots: '4', max_wal_senders: '4' } });
    db = new pg.Pool({ connectionString: cluster.url() });
    await db.query(sourceDdl('claude-nexus-proxy'));
    for (let i = 0; i < 30; i++) await insert(db as unknown as pg.ClientBase, i % 2 ? 'acme.example.com' : 'beta.example.com', true);
    stateDir = mkdtempSync(join(tmpdir(), 'tw-replication-'));
    store = await openStore(testConfig(cluster.url(), { stateDir, clickhouse: { database: DB } }));
    await store.command(`DROP DATABASE IF EXISTS ${DB} SYNC`);
    await store.migrate();
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    await db?.end();
    await cluster?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('loads under the slot\'s snapshot, then streams inserts, updates, revisions and savepoints; ClickHouse and counters equal SQL', async () => {
    const { pipeline, metrics } = await open();
    try {
      await caughtUp();
      // The proxy's pattern: the row at the request, its response by UPDATE.
      const waiting: string[] = [];
      for (let i = 0; i < 40; i++) waiting.push(await insert(db as unknown as pg.ClientBase, 'acme.example.com', false));
      for (const [i, id] of waiting.entries()) await respond(id, 1000 + i);
      // A revision of a counted request, and savepoints, one rolled back.
      await respond(waiting[0]!, 5000);
      const client = await db.connect();
      try {
        await client.query('BEGIN');
        await insert(client, 'beta.example.com', true);
        await client.query('SAVEPOINT s1');
        await insert(client, 'beta.example.com', true);
        await client.query('ROLLBACK TO SAVEPOINT s1');
        await client.query('SAVEPOINT s2');
        await insert(client, 'beta.example.com', true);
        await client.query('RELEASE SAVEPOINT s2');
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      await db.query("DELETE FROM api_requests WHERE request_id = (SELECT request_id FROM api_requests ORDER BY request_id LIMIT 1)");
      // The deleted row stays stored and counted: compare with SQL as if it were still there.
      const want = await truth();
      for (let waited = 0; waited < 30_000; waited += 100) {
        if ((await stored()).input === want.input + 101) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await stored()).toEqual({ n: want.n + 1, input: want.input + 101 });
      await new Promise((r) => setTimeout(r, 500));
      const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
      expect(sumSamples(text, 'tokenwatch_requests_total')).toBe(want.n + 1);
      expect(sumSamples(text, 'tokenwatch_tokens_total', 'type="input"')).toBe(want.input + 101);
      expect(sumSamples(text, 'tokenwatch_requests_total', 'status_class="unknown"')).toBe(0);
      const status = pipeline.statuses()[0]!;
      expect(status.replication?.slot).toBe('tokenwatch_claude_nexus_proxy');
      expect(status.rowsDeleted).toBe(1);
      expect(status.lastError).toBeNull();
      expect(sumSamples(text, 'tokenwatch_source_rows_deleted_total')).toBe(1);
      expect(sumSamples(text, 'tokenwatch_source_up', 'table="api_requests"')).toBe(1);
      expect(sumSamples(text, 'tokenwatch_replication_last_message_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
    } finally {
      await pipeline.close();
    }
  }, 90_000);

  it('after a stop, streams what was written meanwhile from the slot, counting nothing twice', async () => {
    for (let i = 0; i < 20; i++) await insert(db as unknown as pg.ClientBase, 'gamma.example.com', true);
    const { pipeline, metrics } = await open();
    try {
      const want = await truth();
      for (let waited = 0; waited < 30_000; waited += 100) {
        if ((await stored()).n === want.n + 1) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect((await stored()).n).toBe(want.n + 1);
      await new Promise((r) => setTimeout(r, 500));
      const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
      expect(sumSamples(text, 'tokenwatch_requests_total')).toBe(want.n + 1);
      expect(sumSamples(text, 'tokenwatch_requests_total', 'tenant="gamma.example.com"')).toBe(20);
    } finally {
      await pipeline.close();
    }
  }, 90_000);
  it('delivers a row still incomplete maxCommitDelay after it was seen, its completion as a revision; the wait survives a restart', async () => {
    const tenant = 'epsilon.example.com';
    const storedOf = async (ids: string[]) => (await store.query<{ n: string; input: string }>(
      `SELECT toString(count()) AS n, toString(sum(input_tokens)) AS input FROM ${DB}.requests FINAL WHERE request_id IN (${ids.map((id) => `'${id}'`).join(', ')})`,
    ))[0]!;
    const until = async (check: () => Promise<boolean>) => {
      for (let waited = 0; waited < 20_000 && !(await check()); waited += 100) await new Promise((r) => setTimeout(r, 100));
      expect(await check()).toBe(true);
    };
    let { pipeline, metrics } = await open('1s');
    const ids: string[] = [];
    try {
      for (let i = 0; i < 3; i++) ids.push(await insert(db as unknown as pg.ClientBase, tenant, false));
      await until(async () => (await storedOf(ids)).n === '3');
      let text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
      expect(sumSamples(text, 'tokenwatch_requests_total', `tenant="${tenant}"`, 'status_class="unknown"')).toBe(3);
      await respond(ids[0]!, 7000);
      await until(async () => (await storedOf(ids)).input === '7000');
      await new Promise((r) => setTimeout(r, 300));
      text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
      expect(sumSamples(text, 'tokenwatch_requests_total', `tenant="${tenant}"`)).toBe(3);
      expect(sumSamples(text, 'tokenwatch_tokens_total', `tenant="${tenant}"`, 'type="input"')).toBe(7000);
      expect(pipeline.statuses()[0]!.rowsIncomplete).toBe(3);
      // Seen incomplete, then a stop before maxCommitDelay: delivered after the restart.
      ids.push(await insert(db as unknown as pg.ClientBase, tenant, false));
      await new Promise((r) => setTimeout(r, 400));
    } finally {
      await pipeline.close();
    }
    expect((await storedOf(ids)).n).toBe('3');
    ({ pipeline, metrics } = await open('1s'));
    try {
      await until(async () => (await storedOf(ids)).n === '4');
      const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
      expect(sumSamples(text, 'tokenwatch_requests_total', `tenant="${tenant}"`)).toBe(4);
    } finally {
      await pipeline.close();
    }
  }, 90_000);

  it('check reports what replication needs: ok here, and wal_level named on a database without it', async () => {
    const config = testConfig(cluster.url(), { sources: [{ type: 'claude-nexus-proxy', mode: 'replication' }] });
    const lines = await checkSource(config.sources[0] as NamedSource, new Pricing());
    const replication = lines.filter((l) => l.text.startsWith('replication:'));
    expect(replication.filter((l) => l.ok === false)).toEqual([]);
    expect(replication.map((l) => l.text).join('\n')).toMatch(/wal_level = logical[\s\S]*may replicate[\s\S]*has every table read[\s\S]*slot tokenwatch_claude_nexus_proxy inactive/);
    const plain = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    try {
      const other = testConfig(plain.url, { sources: [{ type: 'claude-nexus-proxy', mode: 'replication' }] });
      const failed = (await checkSource(other.sources[0] as NamedSource, new Pricing())).filter((l) => l.ok === false);
      expect(failed.map((l) => l.text).join('\n')).toContain('needs wal_level = logical');
    } finally {
      await plain.drop();
    }
  });

  it('tokenwatch replication status shows the slot; drop removes it (refusing --source of a polled source)', () => {
    const file = join(stateDir, 'replication.yaml');
    writeFileSync(file, `stateDir: ${stateDir}\nsources:\n  - type: claude-nexus-proxy\n    mode: replication\n    databaseUrl: ${cluster.url()}\n  - type: litellm\n    databaseUrl: ${cluster.url()}\n`);
    const cli = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args, '--config', file], { encoding: 'utf8', timeout: 60_000 });
    const status = cli('replication', 'status', '--json');
    expect(status.status, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject([{ source: 'claude-nexus-proxy', slot: 'tokenwatch_claude_nexus_proxy', exists: true, active: false }]);
    const wrong = cli('replication', 'drop', '--source', 'litellm');
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toContain('no source of that name reads in mode: replication');
    const drop = cli('replication', 'drop', '--source', 'claude-nexus-proxy');
    expect(drop.status, drop.stderr).toBe(0);
    expect(drop.stdout).toContain('dropped slot tokenwatch_claude_nexus_proxy');
    expect(JSON.parse(cli('replication', 'status', '--json').stdout)).toMatchObject([{ exists: false }]);
  });

  it('a role with exactly the grants of check --grants --mode replication loads and streams', async () => {
    const role = 'tw_replication_ro';
    const sources = testConfig(cluster.url(), { sources: [{ type: 'claude-nexus-proxy', mode: 'polling' }] }).sources as NamedSource[];
    const script = grantsSql(sources, role, { replication: true });
    expect(script).toContain(`ALTER ROLE "${role}" REPLICATION;`);
    expect(script).toContain('CREATE PUBLICATION "tokenwatch_claude_nexus_proxy" FOR TABLE "public"."api_requests"');
    await db.query(script.replaceAll(":'password'", "'secret'"));
    const url = new URL(cluster.url());
    url.username = role;
    url.password = 'secret';
    const roleState = mkdtempSync(join(tmpdir(), 'tw-replication-role-'));
    // The same embedded engine (one data directory per process), another database; its own checkpoints.
    const config = testConfig(url.toString(), { stateDir, sources: [{ type: 'claude-nexus-proxy', mode: 'replication' }], clickhouse: { database: `${DB}_role` } });
    const roleStore = await openStore(config);
    await roleStore.command(`DROP DATABASE IF EXISTS ${DB}_role SYNC`);
    await roleStore.migrate();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(roleStore, 'redacted')], store: new FileCheckpointStore(roleState), autoSources: false, metrics: new MetricsRegistry() });
    pipeline.start();
    try {
      await insert(db as unknown as pg.ClientBase, 'delta.example.com', true);
      const want = await truth();
      let got = -1;
      for (let waited = 0; waited < 30_000 && got !== want.n; waited += 100) {
        got = Number((await roleStore.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${DB}_role.requests FINAL`))[0]!.n);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(got).toBe(want.n);
      expect(pipeline.statuses()[0]!.lastError).toBeNull();
    } finally {
      await pipeline.close();
      await roleStore.close();
      rmSync(roleState, { recursive: true, force: true });
      await db.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'tokenwatch_claude_nexus_proxy' AND NOT active");
    }
  }, 90_000);
});
