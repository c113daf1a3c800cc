// The ClickHouse event store on the real engine (chdb): migrations, the clustered variant,
// exactly-once writes and ground truth against SQL on the source tables.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDatabase } from '../testing/databases.ts';
import { seededEventStore, type SeededEventStore } from '../testing/event-store.ts';
import type { EventStore } from './clickhouse.ts';
import { loadMigrations, migrate, render } from './migrations.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { MemorySink } from '../sinks/memory-sink.ts';

describe('ClickHouse event store', () => {
  let seeded: SeededEventStore;
  let db: TestDatabase;
  let store: EventStore;
  const memory = new MemorySink();

  beforeAll(async () => {
    seeded = await seededEventStore({ requests: 3000, spendLogs: 1500, extraSinks: [memory] });
    ({ db, store } = seeded);
    expect(seeded.migrated).toEqual(['0001_events', '0002_daily_rollups', '0003_error_events', '0004_conversation_index', '0005_message_conversation_index', '0006_identity_without_tenant', '0007_dead_letters', '0008_row_versions', '0009_cost_components']);
  });
  afterAll(async () => {
    await seeded?.close();
  });

  it('migrations are recorded and applying them again changes nothing', async () => {
    expect(await store.migrate()).toEqual([]);
    const rows = await store.query<{ name: string }>('SELECT name FROM tokenwatch.schema_migrations FINAL ORDER BY version');
    expect(rows.map((r) => r.name)).toEqual(['0001_events', '0002_daily_rollups', '0003_error_events', '0004_conversation_index', '0005_message_conversation_index', '0006_identity_without_tenant', '0007_dead_letters', '0008_row_versions', '0009_cost_components']);
  });

  it('the embedded store merges its small parts less eagerly: every MergeTree table has merge_selector_base = 10', async () => {
    const tables = await store.query<{ name: string; create_table_query: string }>("SELECT name, create_table_query FROM system.tables WHERE database = 'tokenwatch' AND engine LIKE '%MergeTree' ORDER BY name");
    expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['activity_events', 'conversations', 'messages', 'messages_daily', 'requests', 'requests_daily', 'usage_daily']));
    for (const table of tables) expect(table.create_table_query, table.name).toMatch(/SETTINGS .*merge_selector_base = 10/);
  });

  it('the clustered variant renders Replicated and Distributed tables ON CLUSTER, and every statement parses', async () => {
    for (const migration of loadMigrations()) {
      const statements = render(migration.sql, { database: 'tokenwatch', cluster: 'llm' });
      expect(statements.join('\n')).toContain("ON CLUSTER 'llm'");
      for (const statement of statements) {
        if (statement.startsWith('CREATE TABLE IF NOT EXISTS')) expect(statement).toMatch(/ENGINE = (Replicated\w*MergeTree\('\/clickhouse\/tables\/\{shard\}\/\{database\}\/\{table\}', '\{replica\}'|Distributed\('llm')/);
        await expect(store.query(`EXPLAIN AST ${statement}`), statement.slice(0, 80)).resolves.toBeDefined();
      }
    }
    const events = render(loadMigrations()[0]!.sql, { database: 'tokenwatch', cluster: 'llm' });
    expect(events).toContainEqual(expect.stringContaining("CREATE TABLE IF NOT EXISTS tokenwatch.requests ON CLUSTER 'llm' AS tokenwatch.requests_local\nENGINE = Distributed('llm', 'tokenwatch', 'requests_local', cityHash64(tenant))"));
  });

  it('a conversation, message or activity event is one row whatever its tenant (0006: the tenant is not in the sorting key)', async () => {
    const keys = await store.query<{ name: string; sorting_key: string }>("SELECT name, sorting_key FROM system.tables WHERE database = 'tokenwatch' AND name IN ('conversations', 'messages', 'activity_events') ORDER BY name");
    expect(keys).toEqual([
      { name: 'activity_events', sorting_key: 'event_type, event_id' },
      { name: 'conversations', sorting_key: 'conversation_id' },
      { name: 'messages', sorting_key: 'conversation_id, message_id' },
    ]);
    const sink = new ClickHouseSink(store, 'redacted');
    const base = { kind: 'conversation', source: 'sidekick-forge', conversationId: 'moving-tenant', agent: 'a', user: null, channel: 'voice', status: 'all', startedAt: '2026-01-02T03:04:05.000Z', lastActivityAt: '2026-01-02T03:04:05.000Z', durationSeconds: null } as const;
    await sink.write([{ ...base, tenant: 'unattributed', observedAt: '2026-01-02T03:05:00.000Z' }]);
    await sink.write([{ ...base, tenant: 'Client 1', observedAt: '2026-01-02T03:06:00.000Z' }]);
    const rows = await store.query<{ tenant: string }>("SELECT tenant FROM tokenwatch.conversations FINAL WHERE conversation_id = 'moving-tenant'");
    expect(rows).toEqual([{ tenant: 'Client 1' }]);
    const started = await store.query<{ n: string }>("SELECT count() AS n FROM tokenwatch.activity_events FINAL WHERE event_id = 'conversation_started:moving-tenant'");
    expect(Number(started[0]!.n)).toBe(1);
  });

  it('migration 0006 keeps every row of a store made by 0001-0005, and can run again after a crash half-way', async () => {
    // Another database in the same engine (chdb allows one data directory per process).
    const options = { database: 'tokenwatch_0006' };
    const all = loadMigrations();
    await migrate(store, options, all.slice(0, 5));
    await store.command(`INSERT INTO tokenwatch_0006.conversations (tenant, source, conversation_id, agent, user, channel, status, started_at, last_activity_at, duration_seconds, observed_at)
      VALUES ('a', 's', 'c1', '', '', 'voice', 'all', '2026-01-01 00:00:00', '2026-01-01 00:00:00', NULL, '2026-01-01 00:00:00'), ('b', 's', 'c2', '', '', 'text', 'all', '2026-01-01 00:00:00', '2026-01-01 00:00:00', NULL, '2026-01-01 00:00:00')`);
    await store.command(`INSERT INTO tokenwatch_0006.messages (tenant, source, conversation_id, message_id, role, content, sequence, channel, agent, user, request_id, created_at)
      VALUES ('a', 's', 'c1', 'm1', 'user', 'hi', NULL, '', '', '', '', '2026-01-01 00:00:00')`);
    // A crash right after the first exchange: the copy table still exists and holds the old rows.
    for (const statement of render(all[5]!.sql, options).slice(0, 4)) await store.command(statement);
    expect(await migrate(store, options, all.slice(0, 6))).toEqual(['0006_identity_without_tenant']);
    expect(await store.query('SELECT conversation_id, tenant FROM tokenwatch_0006.conversations FINAL ORDER BY conversation_id')).toEqual([{ conversation_id: 'c1', tenant: 'a' }, { conversation_id: 'c2', tenant: 'b' }]);
    expect(await store.query('SELECT message_id FROM tokenwatch_0006.messages FINAL')).toEqual([{ message_id: 'm1' }]);
    expect(await store.query("SELECT name FROM system.tables WHERE database = 'tokenwatch_0006' AND name LIKE '%0006'")).toEqual([]);
    expect(await store.query("SELECT sorting_key FROM system.tables WHERE database = 'tokenwatch_0006' AND name = 'conversations'")).toEqual([{ sorting_key: 'conversation_id' }]);
    // The daily rollup still follows the rebuilt table: a message written now is counted.
    await store.command(`INSERT INTO tokenwatch_0006.messages (tenant, source, conversation_id, message_id, role, content, sequence, channel, agent, user, request_id, created_at)
      VALUES ('a', 's', 'c1', 'm2', 'user', 'hi', NULL, '', '', '', '', '2026-01-01 00:00:00')`);
    expect(await store.query('SELECT toUInt32(sum(messages)) AS n FROM tokenwatch_0006.messages_daily')).toEqual([{ n: 2 }]);
    await store.command('DROP DATABASE tokenwatch_0006');
  });

  it('requests, tokens and cost per tenant equal SQL, in the raw table and in the daily rollup', async () => {
    const { rows } = await db.pool.query<{ tenant: string; n: number; output: number }>(`
      SELECT domain AS tenant, count(*)::int AS n, sum(output_tokens)::int AS output FROM api_requests WHERE request_type = 'inference' GROUP BY 1
      UNION ALL SELECT coalesce(team_id, 'default'), count(*)::int, sum(completion_tokens)::int FROM "LiteLLM_SpendLogs" GROUP BY 1`);
    const raw = await store.query<{ tenant: string; n: string; output: string }>('SELECT tenant, count() AS n, sum(output_tokens) AS output FROM tokenwatch.requests FINAL GROUP BY tenant');
    const rollup = await store.query<{ tenant: string; n: string; output: string }>('SELECT tenant, sum(requests) AS n, sum(output_tokens) AS output FROM tokenwatch.requests_daily GROUP BY tenant');
    for (const row of rows) {
      const r = raw.find((x) => x.tenant === row.tenant)!;
      const d = rollup.find((x) => x.tenant === row.tenant)!;
      expect(Number(r.n), row.tenant).toBe(row.n);
      expect(Number(r.output)).toBe(row.output);
      expect(Number(d.n)).toBe(row.n);
      expect(Number(d.output)).toBe(row.output);
    }
    const { rows: spend } = await db.pool.query<{ spend: string }>('SELECT sum(spend)::numeric(20,9)::text AS spend FROM "LiteLLM_SpendLogs"');
    const cost = await store.query<{ cost: string }>("SELECT toString(sum(cost_usd)) AS cost FROM tokenwatch.requests FINAL WHERE source = 'litellm'");
    expect(Number(cost[0]!.cost)).toBeCloseTo(Number(spend[0]!.spend), 6);
  });

  it('writing the same events again stores nothing twice (rollups included)', async () => {
    const before = await store.query<{ n: string; d: string; m: string }>(
      'SELECT (SELECT count() FROM tokenwatch.requests) AS n, (SELECT sum(requests) FROM tokenwatch.requests_daily) AS d, (SELECT count() FROM tokenwatch.messages) AS m',
    );
    const sink = new ClickHouseSink(store, 'redacted');
    for (let i = 0; i < memory.events.length; i += 1000) await sink.write(memory.events.slice(i, i + 1000));
    const after = await store.query<{ n: string; d: string; m: string }>(
      'SELECT (SELECT count() FROM tokenwatch.requests) AS n, (SELECT sum(requests) FROM tokenwatch.requests_daily) AS d, (SELECT count() FROM tokenwatch.messages) AS m',
    );
    expect(after).toEqual(before);
  });

  it('stores messages with content redacted, and activity events', async () => {
    const { rows } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM conversation_transcripts');
    const messages = await store.query<{ n: string }>("SELECT count() AS n FROM tokenwatch.messages FINAL WHERE source = 'sidekick-forge'");
    expect(Number(messages[0]!.n)).toBe(rows[0]!.n);
    const leaked = await store.query<{ n: string }>("SELECT count() AS n FROM tokenwatch.messages WHERE match(content, '@[a-z]+\\\\.example\\\\.com|555 010')");
    expect(Number(leaked[0]!.n)).toBe(0);
    const redacted = await store.query<{ n: string }>("SELECT count() AS n FROM tokenwatch.messages WHERE position(content, '[REDACTED_') > 0");
    expect(Number(redacted[0]!.n)).toBeGreaterThan(100);
    const types = await store.query<{ event_type: string; n: string }>('SELECT event_type, count() AS n FROM tokenwatch.activity_events FINAL GROUP BY event_type ORDER BY event_type');
    expect(types.map((t) => t.event_type)).toEqual([
      'agent_configuration_changed', 'conversation_started', 'document_uploaded', 'error', 'llm_call_failed', 'quota_threshold_crossed', 'sidekick_updated',
      'voice_session_finished', 'voice_session_started',
    ]);
    expect(Number(types.find((t) => t.event_type === 'agent_configuration_changed')!.n)).toBe(4);
    const { rows: errors } = await db.pool.query<{ n: number }>(`SELECT (SELECT count(*) FROM api_requests WHERE request_type = 'inference' AND response_status >= 400)::int
      + (SELECT count(*) FROM "LiteLLM_SpendLogs" WHERE status <> 'success')::int AS n`);
    // Error-log rows are details of failed calls, stored once each, not errors of their own.
    const { rows: errorLogs } = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "LiteLLM_ErrorLogs"');
    expect(Number(types.find((t) => t.event_type === 'llm_call_failed')!.n)).toBe(errorLogs[0]!.n);
    expect(Number(types.find((t) => t.event_type === 'error')!.n)).toBe(errors[0]!.n);
  });
});
