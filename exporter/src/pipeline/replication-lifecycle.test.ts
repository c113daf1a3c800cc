// mode: replication over a source's life: a first start with startFrom: now, a PostgreSQL
// restart while rows stream, a slot lost while
// tokenwatch was stopped (onSlotLost: polling: the source is polled from the last change
// handled, shown on /metrics, nothing counted twice), and schema changes at the source (a new
// column streams on; a renamed table stops the stream with an error that says what to do, and
// doing it resumes the stream with nothing lost), Sidekick Forge with a dedicated client's
// own database, a slot in each, the initial load in bulk against row by row, and an event
// store write failing in the middle of a batch.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.ts';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { replicationName } from '../reader/replication/slot.ts';
import { untilChangeStream } from '../testing/change-stream.ts';
import { sidekickClientDdl } from '../embedded/ddl.ts';
import { API_REQUEST_COLUMNS, apiRequestRows, insertRows } from '../embedded/seed.ts';
import type { ConfigInput } from '../config/schema.ts';
import { Pipeline } from './pipeline.ts';

const DB = 'tw_replication_life';
type SourceInput = NonNullable<ConfigInput['sources']>[number];

describe('mode: replication over a source\'s life', () => {
  let cluster: PgCluster;
  let store: EventStore;
  const dirs: string[] = [];
  const databases: TestDatabase[] = [];

  beforeAll(async () => {
    cluster = await startPgCluster({ settings: { wal_level: 'logical', max_replication_slots: '12', max_wal_senders: '12' } });
    const stateDir = mkdtempSync(join(tmpdir(), 'tw-replication-life-'));
    dirs.push(stateDir);
    store = await openStore(testConfig('postgres://unused', { stateDir, clickhouse: { database: DB } }));
    await store.command(`DROP DATABASE IF EXISTS ${DB} SYNC`);
    await store.migrate();
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    for (const db of databases) await db.drop().catch(() => undefined);
    await cluster?.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  async function database(schemas: ('claude-nexus-proxy' | 'sidekick-forge')[] = ['claude-nexus-proxy']): Promise<TestDatabase> {
    const db = await createTestDatabase({ schemas, cluster });
    databases.push(db);
    return db;
  }
  let next = 0;
  /** `n` complete proxy requests of `tenant` (one per statement), into `table`. */
  async function insert(db: TestDatabase, tenant: string, n: number, table = 'api_requests'): Promise<void> {
    for (let i = 0; i < n; i++) {
      await db.pool.query(
        `INSERT INTO ${table} (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
         VALUES (gen_random_uuid(), $1, now() - interval '1 second', 'claude-sonnet-4-5', 'inference', 200, $2, 1)`,
        [tenant, 100 + ++next],
      );
    }
  }
  const storedOf = async (tenant: string) => Number((await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${DB}.requests FINAL WHERE tenant = '${tenant}'`))[0]!.n);
  async function until(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
    for (let waited = 0; waited < ms; waited += 100) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
  }
  async function open(db: TestDatabase, stateDir: string, source: Partial<SourceInput> = {}): Promise<{ pipeline: Pipeline; text: () => string }> {
    const config = testConfig(db.url, { stateDir, sources: [{ type: 'claude-nexus-proxy', mode: 'replication', name: db.name, pollInterval: '200ms', ...source } as SourceInput], clickhouse: { database: DB } });
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new FileCheckpointStore(stateDir), autoSources: false, metrics });
    pipeline.start();
    return { pipeline, text: () => prometheusText(metrics.collect(pipeline.statuses(), [], [])) };
  }
  /** Until the source's change stream runs (a test that arms a failure before would fail the initial load instead). */
  const streaming = (db: TestDatabase) => untilChangeStream(db.pool, db.name);
  /** The event store, counting the requests it is asked to look up. */
  class CountingLookups extends ClickHouseSink {
    lookedUp = 0;
    override async storedVersions(...args: Parameters<ClickHouseSink['storedVersions']>): ReturnType<ClickHouseSink['storedVersions']> {
      this.lookedUp += args[0].filter((e) => e.kind === 'request').length;
      return super.storedVersions(...args);
    }
  }
  const stateDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-replication-life-'));
    dirs.push(dir);
    return dir;
  };

  it('startFrom: now loads nothing of what was there and streams what commits after', async () => {
    const db = await database();
    const tenant = `${db.name}.before`;
    await insert(db, tenant, 10);
    const { pipeline, text } = await open(db, stateDir(), { startFrom: 'now' });
    try {
      await streaming(db);
      await insert(db, `${db.name}.after`, 5);
      await until(async () => (await storedOf(`${db.name}.after`)) === 5, 'the rows after the start');
      expect(await storedOf(tenant)).toBe(0);
      await new Promise((r) => setTimeout(r, 300));
      expect(sumSamples(text(), 'tokenwatch_requests_total')).toBe(5);
    } finally {
      await pipeline.close();
    }
  }, 60_000);

  it('a slot lost while stopped, onSlotLost: polling: polled from the last change handled, shown on /metrics, nothing counted twice', async () => {
    const db = await database();
    const dir = stateDir();
    const tenant = `${db.name}.t`;
    const slot = replicationName(db.name);
    let { pipeline, text } = await open(db, dir, { onSlotLost: 'polling' });
    try {
      await insert(db, tenant, 10);
      await until(async () => (await storedOf(tenant)) === 10, 'the streamed rows');
      await new Promise((r) => setTimeout(r, 300));
      expect(sumSamples(text(), 'tokenwatch_replication_fallback')).toBe(0);
    } finally {
      await pipeline.close();
    }
    await db.pool.query('SELECT pg_drop_replication_slot($1)', [slot]);
    // Written while there is no slot: only the polls can find them.
    await insert(db, tenant, 7);
    ({ pipeline, text } = await open(db, dir, { onSlotLost: 'polling' }));
    try {
      await until(async () => (await storedOf(tenant)) === 17, 'the rows written without a slot, polled');
      await insert(db, tenant, 3);
      await until(async () => (await storedOf(tenant)) === 20, 'rows polled after the fallback');
      await new Promise((r) => setTimeout(r, 500));
      const metrics = text();
      expect(sumSamples(metrics, 'tokenwatch_requests_total')).toBe(20);
      expect(sumSamples(metrics, 'tokenwatch_replication_fallback', `slot="${slot}"`)).toBe(1);
      expect(sumSamples(metrics, 'tokenwatch_source_up', 'table="api_requests"')).toBe(1);
      // No new slot: the source is polled, not loaded again.
      expect((await db.pool.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot])).rowCount).toBe(0);
    } finally {
      await pipeline.close();
    }
    // A restart keeps polling from where the polls are.
    await insert(db, tenant, 2);
    ({ pipeline, text } = await open(db, dir, { onSlotLost: 'polling' }));
    try {
      await until(async () => (await storedOf(tenant)) === 22, 'rows polled after a restart');
      await new Promise((r) => setTimeout(r, 500));
      expect(sumSamples(text(), 'tokenwatch_requests_total')).toBe(22);
      expect(sumSamples(text(), 'tokenwatch_replication_fallback')).toBe(1);
    } finally {
      await pipeline.close();
    }
  }, 90_000);

  it('a PostgreSQL restart while rows stream: shown as source_up 0, then streamed on from the slot, nothing lost or counted twice', async () => {
    const db = await database();
    const tenant = `${db.name}.t`;
    const { pipeline, text } = await open(db, stateDir());
    try {
      await insert(db, tenant, 20);
      await until(async () => (await storedOf(tenant)) === 20, 'the rows before the restart');
      await new Promise((r) => setTimeout(r, 300));
      expect(sumSamples(text(), 'tokenwatch_requests_total')).toBe(20);
      await cluster.stopServer();
      await until(async () => sumSamples(text(), 'tokenwatch_source_up', 'table="api_requests"') === 0, 'source_up 0 while the server is down');
      await cluster.startServer();
      // Written while tokenwatch reconnects (it retries every 5 s).
      await insert(db, tenant, 15);
      await until(async () => (await storedOf(tenant)) === 35, 'the rows after the restart', 45_000);
      await until(async () => sumSamples(text(), 'tokenwatch_source_up', 'table="api_requests"') === 1, 'source_up 1 again');
      expect(sumSamples(text(), 'tokenwatch_requests_total')).toBe(35);
      expect(Number((await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${DB}.requests WHERE tenant = '${tenant}'`))[0]!.n)).toBe(35);
    } finally {
      await pipeline.close();
    }
  }, 90_000);

  it('an event store write that fails in the middle of a batch: the batch is streamed again, every row stored and counted once', async () => {
    const db = await database();
    const tenant = `${db.name}.t`;
    /** Fails its second write once: a page of a batch, with the page before it written. Counts the requests looked up, before and after. */
    class FailingOnce extends ClickHouseSink {
      writes = 0;
      lookedUp = [0, 0];
      override async write(...args: Parameters<ClickHouseSink['write']>): Promise<void> {
        if (++this.writes === 2) throw new Error('event store down');
        return super.write(...args);
      }
      override async storedVersions(...args: Parameters<ClickHouseSink['storedVersions']>): ReturnType<ClickHouseSink['storedVersions']> {
        this.lookedUp[this.writes < 2 ? 0 : 1]! += args[0].filter((e) => e.kind === 'request').length;
        return super.storedVersions(...args);
      }
    }
    const sink = new FailingOnce(store, 'redacted');
    const config = testConfig(db.url, { stateDir: dirs[0]!, sources: [{ type: 'claude-nexus-proxy', mode: 'replication', name: db.name, batchSize: 300 }], clickhouse: { database: DB } });
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [sink], store: new FileCheckpointStore(stateDir()), autoSources: false, metrics });
    pipeline.start();
    try {
      await streaming(db);
      // One transaction of 1,000 rows: four pages of 300.
      await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
        SELECT gen_random_uuid(), $1, now() - interval '1 second', 'claude-sonnet-4-5', 'inference', 200, 10, 1 FROM generate_series(1, 1000)`, [tenant]);
      await until(async () => (await storedOf(tenant)) === 1000, 'every row, after the retry', 45_000);
      await new Promise((r) => setTimeout(r, 500));
      expect(sink.writes).toBeGreaterThan(4);
      // Rows the stream saw inserted are new to the event store: not looked up, the first time.
      // The batch streamed again after the failure may have been written in part: all looked up.
      expect(sink.lookedUp).toEqual([0, 1000]);
      expect(sumSamples(prometheusText(metrics.collect(pipeline.statuses(), [], [])), 'tokenwatch_requests_total')).toBe(1000);
      expect(sumSamples(prometheusText(metrics.collect(pipeline.statuses(), [], [])), 'tokenwatch_tokens_total', 'type="input"')).toBe(10_000);
    } finally {
      await pipeline.close();
    }
  }, 90_000);

  it('rows inserted after the start are not looked up, batch after batch; an id deleted and inserted again is looked up and counted once', async () => {
    const db = await database();
    const tenant = `${db.name}.t`;
    const dir = stateDir();
    const sink = new CountingLookups(store, 'redacted');
    const metrics = new MetricsRegistry();
    const config = testConfig(db.url, { stateDir: dir, sources: [{ type: 'claude-nexus-proxy', mode: 'replication', name: db.name }], clickhouse: { database: DB } });
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [sink], store: new FileCheckpointStore(dir), autoSources: false, metrics });
    pipeline.start();
    const text = () => prometheusText(metrics.collect(pipeline.statuses(), [], []));
    try {
      await streaming(db);
      // Twenty transactions, each handled apart: every batch after the first too.
      await insert(db, tenant, 20);
      await until(async () => sumSamples(text(), 'tokenwatch_requests_total') === 20, 'the 20 requests counted');
      expect(sink.lookedUp).toBe(0);
      // A request deleted and inserted again with its id and time, now with other tokens: the
      // store holds its first version, so it is looked up and counted as a revision, not a new
      // request.
      const { rows: [first] } = await db.pool.query<{ request_id: string; timestamp: Date }>('SELECT request_id, timestamp FROM api_requests WHERE domain = $1 LIMIT 1', [tenant]);
      await db.pool.query('DELETE FROM api_requests WHERE request_id = $1', [first!.request_id]);
      await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
        VALUES ($1, $2, $3, 'claude-sonnet-4-5', 'inference', 200, 5000, 1)`, [first!.request_id, tenant, first!.timestamp]);
      await until(async () => sumSamples(text(), 'tokenwatch_source_rows_revised_total') === 1, 'the request inserted again, as a revision');
      expect(sink.lookedUp).toBe(1);
      expect(sumSamples(text(), 'tokenwatch_requests_total')).toBe(20);
      const truth = (await db.pool.query<{ input: string }>('SELECT sum(input_tokens)::text AS input FROM api_requests WHERE domain = $1', [tenant])).rows[0]!;
      expect(sumSamples(text(), 'tokenwatch_tokens_total', 'type="input"')).toBe(Number(truth.input));
      const [stored] = await store.query<{ rows: string; rollup: string; input: string }>(`SELECT toString((SELECT count() FROM ${DB}.requests FINAL WHERE tenant = '${tenant}')) AS rows,
        toString((SELECT sum(requests) FROM ${DB}.requests_daily WHERE tenant = '${tenant}')) AS rollup, toString((SELECT sum(input_tokens) FROM ${DB}.requests_daily WHERE tenant = '${tenant}')) AS input`);
      expect(stored).toEqual({ rows: '20', rollup: '20', input: truth.input });
    } finally {
      await pipeline.close();
    }
  }, 90_000);

  it('a crash after a batch is written and before its checkpoint: the next process looks the batch up, and stores and counts each row once', async () => {
    const db = await database();
    const tenant = `${db.name}.t`;
    const dir = stateDir();
    /** Fails the stream's checkpoints once armed: the process "dies" between the event store write and the checkpoint. */
    class DyingCheckpoints extends FileCheckpointStore {
      armed = false;
      override save(...args: Parameters<FileCheckpointStore['save']>): void {
        if (this.armed && args[0].endsWith('/api_requests')) throw new Error('killed before the checkpoint');
        super.save(...args);
      }
    }
    const config = testConfig(db.url, { stateDir: dir, sources: [{ type: 'claude-nexus-proxy', mode: 'replication', name: db.name }], clickhouse: { database: DB } });
    const checkpoints = new DyingCheckpoints(dir);
    const first = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: checkpoints, autoSources: false, metrics: new MetricsRegistry() });
    first.start();
    try {
      await streaming(db);
      checkpoints.armed = true;
      await db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
        SELECT gen_random_uuid(), $1, now() - interval '1 second', 'claude-sonnet-4-5', 'inference', 200, 10, 1 FROM generate_series(1, 500)`, [tenant]);
      await until(async () => (await storedOf(tenant)) === 500, 'the batch written');
    } finally {
      await first.close();
    }
    const sink = new CountingLookups(store, 'redacted');
    const metrics = new MetricsRegistry();
    const second = await Pipeline.open({ config, logger: silentLogger(), sinks: [sink], store: new FileCheckpointStore(dir), autoSources: false, metrics });
    second.start();
    try {
      const total = () => sumSamples(prometheusText(metrics.collect(second.statuses(), [], [])), 'tokenwatch_requests_total');
      await until(async () => total() === 500, 'the batch counted by the next process');
      await new Promise((r) => setTimeout(r, 500));
      expect(total()).toBe(500);
      // Streamed again, the batch's inserts are looked up (the first process may have written
      // them): none is written a second time, so the rollups count each row once.
      expect(sink.lookedUp).toBe(500);
      const [stored] = await store.query<{ rows: string; rollup: string }>(`SELECT toString((SELECT count() FROM ${DB}.requests WHERE tenant = '${tenant}')) AS rows,
        toString((SELECT sum(requests) FROM ${DB}.requests_daily WHERE tenant = '${tenant}')) AS rollup`);
      expect(stored).toEqual({ rows: '500', rollup: '500' });
    } finally {
      await second.close();
    }
  }, 90_000);

  it('a transaction past largeTransactionRows keeps no ids: its rows are found by xmin in one scan, stored and counted as SQL counts them', async () => {
    const db = await database();
    const tenant = `${db.name}.t`;
    // This database's walsender streams transactions past 64 kB while they run.
    await db.pool.query(`ALTER DATABASE ${db.name} SET logical_decoding_work_mem = '64kB'`);
    const { pipeline, text } = await open(db, stateDir(), { largeTransactionRows: 1000 });
    const rows = (n: number, input: number) => db.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
      SELECT gen_random_uuid(), $1, now() - interval '1 second', 'claude-sonnet-4-5', 'inference', 200, $2, 1 FROM generate_series(1, ${n})`, [tenant, input]);
    const client = await db.pool.connect();
    try {
      await streaming(db);
      await rows(50, 7);
      await until(async () => (await storedOf(tenant)) === 50, 'the small transaction');
      expect(sumSamples(text(), 'tokenwatch_source_xmin_scans_total')).toBe(0);
      // One transaction: 3,000 new requests, a savepoint of 1,000 rolled back, and the 50
      // earlier requests revised in a savepoint kept; another transaction commits meanwhile.
      await client.query('BEGIN');
      await client.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
        SELECT gen_random_uuid(), $1, now() - interval '1 second', 'claude-sonnet-4-5', 'inference', 200, 10, 1 FROM generate_series(1, 3000)`, [tenant]);
      await client.query('SAVEPOINT undone');
      await client.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens)
        SELECT gen_random_uuid(), $1, now() - interval '1 second', 'claude-sonnet-4-5', 'inference', 200, 1000, 1 FROM generate_series(1, 1000)`, [tenant]);
      await client.query('ROLLBACK TO SAVEPOINT undone');
      await client.query('SAVEPOINT kept');
      await client.query('UPDATE api_requests SET input_tokens = 8 WHERE domain = $1 AND input_tokens = 7', [tenant]);
      await client.query('RELEASE SAVEPOINT kept');
      await rows(5, 9);
      await client.query('COMMIT');
      const truth = async () => (await db.pool.query<{ n: number; input: number }>('SELECT count(*)::int AS n, sum(input_tokens)::int AS input FROM api_requests WHERE domain = $1', [tenant])).rows[0]!;
      expect(await truth()).toEqual({ n: 3055, input: 3000 * 10 + 50 * 8 + 5 * 9 });
      await until(async () => sumSamples(text(), 'tokenwatch_requests_total') === 3055, 'the large transaction counted');
      await new Promise((r) => setTimeout(r, 500));
      expect(sumSamples(text(), 'tokenwatch_requests_total')).toBe(3055);
      expect(sumSamples(text(), 'tokenwatch_tokens_total', 'type="input"')).toBe((await truth()).input);
      // The 50 revised, counted once each with their new tokens.
      expect(sumSamples(text(), 'tokenwatch_source_rows_revised_total')).toBe(50);
      expect(sumSamples(text(), 'tokenwatch_source_xmin_scans_total')).toBe(1);
      expect(await storedOf(tenant)).toBe(3055);
      const [stored] = await store.query<{ rows: string; input: string }>(`SELECT toString(count()) AS rows, toString(sum(input_tokens)) AS input FROM ${DB}.requests FINAL WHERE tenant = '${tenant}'`);
      expect(stored).toEqual({ rows: '3055', input: String((await truth()).input) });
    } finally {
      client.release();
      await pipeline.close();
    }
  }, 90_000);

  it('Sidekick Forge with a dedicated client database: a slot in each database, the client\'s streamed transcripts stored final', async () => {
    const platform = await database(['sidekick-forge']);
    const acme = await database([]);
    await acme.pool.query(sidekickClientDdl());
    const client = randomUUID();
    const tenant = `Acme ${platform.name}`;
    await platform.pool.query("INSERT INTO tier_quotas (tier, voice_seconds_per_month, text_messages_per_month, embedding_chunks_per_month) VALUES ('champion', 30000, 10000, 100000)");
    await platform.pool.query("INSERT INTO clients (id, name, tier, hosting_type) VALUES ($1, $2, 'champion', 'dedicated')", [client, tenant]);
    const agent = randomUUID();
    await acme.pool.query("INSERT INTO agents (id, slug, name, system_prompt, model, enabled) VALUES ($1, 'acme-agent', 'acme-agent', 'You help.', 'gpt-4o-mini', true)", [agent]);
    const { pipeline } = await open(platform, stateDir(), { type: 'sidekick-forge', clientDatabases: [{ client, name: 'acme', databaseUrl: acme.url }] });
    try {
      const slots = [replicationName(platform.name), replicationName(`${platform.name}.acme`)];
      for (const [db, slot] of [[platform, slots[0]!], [acme, slots[1]!]] as const) {
        await until(async () => (await db.pool.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active AND database = current_database()', [slot])).rowCount === 1, `slot ${slot} streamed in its database`);
      }
      // Sidekick Forge's voice replies: inserted, then updated as speech streams in.
      for (let k = 0; k < 3; k++) {
        const conversation = randomUUID();
        await acme.pool.query("INSERT INTO conversations (id, session_id, agent_id, user_id, channel, created_at, updated_at) VALUES ($1, $1, $2, $3, 'voice', now(), now())", [conversation, agent, randomUUID()]);
        await acme.pool.query(`INSERT INTO conversation_transcripts (conversation_id, session_id, agent_id, role, content, transcript, sequence, source, created_at)
          VALUES ($1, $1, $2, 'user', 'question', 'question', 0, 'voice', now())`, [conversation, agent]);
        const reply = await acme.pool.query<{ id: string }>(`INSERT INTO conversation_transcripts (conversation_id, session_id, agent_id, role, content, transcript, sequence, source, created_at)
          VALUES ($1, $1, $2, 'assistant', 'part1', 'part1', 1, 'voice', now()) RETURNING id`, [conversation, agent]);
        for (const text of ['part1 part2', 'part1 part2 part3']) await acme.pool.query('UPDATE conversation_transcripts SET content = $2, transcript = $2 WHERE id = $1', [reply.rows[0]!.id, text]);
      }
      const messages = async () => (await store.query<{ n: string; final: string }>(
        `SELECT toString(count()) AS n, toString(countIf(content IN ('question', 'part1 part2 part3'))) AS final FROM ${DB}.messages FINAL WHERE tenant = '${tenant}'`,
      ))[0]!;
      await until(async () => (await messages()).final === '6', 'the client\'s transcripts, final');
      expect(await messages()).toEqual({ n: '6', final: '6' });
      expect(Number((await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${DB}.conversations FINAL WHERE tenant = '${tenant}'`))[0]!.n)).toBe(3);
      expect(pipeline.statuses().filter((s) => s.lastError !== null)).toEqual([]);
    } finally {
      await pipeline.close();
    }
  }, 90_000);

  it('the initial load in bulk stores and counts what the row path does, and both stream on alike', async () => {
    const db = await database();
    await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(3000, { seed: 5, spanMs: 3 * 24 * 3_600_000 }));
    // Incomplete at the load (the proxy's request before its response): they wait for their UPDATE.
    await db.pool.query("UPDATE api_requests SET response_status = NULL WHERE get_byte(decode(md5(request_id::text), 'hex'), 0) < 8");
    await db.pool.query('ANALYZE api_requests');
    const ways: { name: string; own: EventStore; pipeline: Pipeline; metrics: MetricsRegistry }[] = [];
    for (const bulk of [false, true]) {
      const name = `${db.name}_${bulk ? 'bulk' : 'rows'}`;
      // The embedded engine's data directory is the suite's (one per process); checkpoints apart.
      const config = testConfig(db.url, { stateDir: dirs[0]!, sources: [{ type: 'claude-nexus-proxy', mode: 'replication', name, maxCommitDelay: '1h' }], clickhouse: { database: name, bulkBackfill: bulk, bulkChunkRows: 1000 } });
      const own = await openStore(config);
      await own.migrate();
      const metrics = new MetricsRegistry();
      const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(own, 'redacted')], store: new FileCheckpointStore(stateDir()), autoSources: false, metrics });
      pipeline.start();
      ways.push({ name, own, pipeline, metrics });
    }
    try {
      const complete = Number((await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM api_requests WHERE response_status IS NOT NULL')).rows[0]!.n);
      const storedIn = async (way: (typeof ways)[number]) => Number((await way.own.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${way.name}.requests FINAL`))[0]!.n);
      for (const way of ways) await until(async () => (await storedIn(way)) === complete, `${way.name}: the loaded rows`);
      // Then the incomplete rows' responses arrive, and a revision of a loaded row.
      await db.pool.query('UPDATE api_requests SET response_status = 200, output_tokens = 77 WHERE response_status IS NULL');
      await db.pool.query('UPDATE api_requests SET input_tokens = input_tokens + 1000 WHERE request_id = (SELECT request_id FROM api_requests ORDER BY request_id LIMIT 1)');
      for (const way of ways) await until(async () => (await storedIn(way)) === 3000, `${way.name}: the completed rows`);
      await new Promise((r) => setTimeout(r, 1000));
      const outcome = async (way: (typeof ways)[number]) => {
        const dump = (sql: string) => way.own.query<Record<string, unknown>>(sql.replaceAll('{db}', way.name));
        const status = way.pipeline.statuses()[0]!;
        const text = prometheusText(way.metrics.collect(way.pipeline.statuses(), [], []));
        return {
          // The bulk path leaves fingerprint 0 (clickhouse/migrations/0008): compared without it.
          requests: await dump('SELECT * EXCEPT (ingested_at, fingerprint) FROM {db}.requests FINAL ORDER BY request_id'),
          messages: await dump('SELECT * EXCEPT ingested_at FROM {db}.messages FINAL ORDER BY message_id'),
          daily: await dump('SELECT day, tenant, model, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens) FROM {db}.requests_daily GROUP BY ALL ORDER BY ALL'),
          counters: text.split('\n').filter((l) => /^tokenwatch_(requests|tokens)_total\{/.test(l)).map((l) => l.replaceAll(way.name, 'SOURCE')).sort(),
          status: { rowsRevised: status.rowsRevised, rowsRejected: status.rowsRejected, lastError: status.lastError },
          rowsBulk: status.rowsBulk,
        };
      };
      const [rows, bulk] = [await outcome(ways[0]!), await outcome(ways[1]!)];
      expect(rows.rowsBulk).toBe(0);
      expect(rows.status.rowsRevised).toBeGreaterThan(0);
      expect(bulk.rowsBulk).toBeGreaterThan(complete / 2);
      expect(rows.counters.length).toBeGreaterThan(10);
      expect(sumSamples(rows.counters.join('\n'), 'tokenwatch_requests_total')).toBe(3000);
      expect({ ...bulk, rowsBulk: 0 }).toEqual({ ...rows, rowsBulk: 0 });
    } finally {
      for (const way of ways) {
        await way.pipeline.close();
        await way.own.close();
      }
    }
  }, 120_000);

  it('a new column streams on; a renamed table stops the stream with an error naming both tables, and the tables: setting it asks for resumes it', async () => {
    const db = await database();
    const dir = stateDir();
    const tenant = `${db.name}.t`;
    let { pipeline, text } = await open(db, dir);
    try {
      await insert(db, tenant, 4);
      await until(async () => (await storedOf(tenant)) === 4, 'the first rows');
      await db.pool.query('ALTER TABLE api_requests ADD COLUMN region text');
      await insert(db, tenant, 3);
      await until(async () => (await storedOf(tenant)) === 7, 'rows after a new column');
      await db.pool.query('ALTER TABLE api_requests RENAME TO api_requests_v2');
      await insert(db, tenant, 2, 'api_requests_v2');
      await until(async () => (pipeline.statuses()[0]!.lastError ?? '').includes('api_requests_v2'), 'the error');
      expect(pipeline.statuses()[0]!.lastError).toMatch(/changes of public\.api_requests_v2, which no stream of this source reads, and public\.api_requests no longer exists: renamed at the source\? Name the new table under tables:/);
      expect(sumSamples(text(), 'tokenwatch_source_up', 'table="api_requests"')).toBe(0);
      expect(await storedOf(tenant)).toBe(7);
    } finally {
      await pipeline.close();
    }
    ({ pipeline, text } = await open(db, dir, { tables: { api_requests: 'api_requests_v2' } }));
    try {
      await until(async () => (await storedOf(tenant)) === 9, 'the rows of the renamed table');
      await insert(db, tenant, 1, 'api_requests_v2');
      await until(async () => (await storedOf(tenant)) === 10, 'rows after the restart');
      await new Promise((r) => setTimeout(r, 300));
      expect(sumSamples(text(), 'tokenwatch_requests_total')).toBe(10);
      expect(pipeline.statuses()[0]!.lastError).toBeNull();
    } finally {
      await pipeline.close();
    }
  }, 90_000);
});

