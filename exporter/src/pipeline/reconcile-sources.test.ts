// Reconciliation of every table tokenwatch stores one row per source row, beyond the request
// tables (reconcile.test.ts): Sidekick Forge's transcripts, conversations, activity log and
// LiveKit events, across a platform database and a client's own database whose rows share
// the event store's tables, and LiteLLM's error log. After a clean read nothing differs; rows
// deleted from the store by hand are named exactly, each in the stream of the database that
// holds it (never as another database's "extra" rows), and the next poll delivers them.
import { mkdtempSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger } from '../testing/fixtures.ts';
import { writeLitellmCalls } from '../testing/litellm-calls.ts';
import { sidekickClientDdl } from '../embedded/ddl.ts';
import { Config } from '../config/schema.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { Pipeline } from './pipeline.ts';
import { comparisonTotals, type StreamComparison } from './reconcile.ts';

const DB = 'tw_reconcile_sources';
const DAY_MS = 86_400_000;
/** Two days ago, 06:00 UTC: a closed day. */
const BASE = Math.floor(Date.now() / DAY_MS) * DAY_MS - 2 * DAY_MS + 6 * 3_600_000;
const at = (minutes: number) => new Date(BASE + minutes * 60_000).toISOString();

describe('reconciliation of transcripts, conversations, activity and error logs', () => {
  let platform: TestDatabase;
  let acme: TestDatabase;
  let litellm: TestDatabase;
  let store: EventStore;
  let pipeline: Pipeline;
  let stateDir: string;

  const pollAll = async () => {
    for (const source of pipeline.sources) for (const entry of source.streams) await pipeline.pollStream(entry);
  };
  const byStream = (comparisons: StreamComparison[]) => new Map(comparisons.map((c) => [c.stream, c]));
  const missingOf = (c: StreamComparison | undefined) => c!.days.flatMap((d) => d.missing).sort();

  /** One client's agent, a conversation with a user turn and a reply streamed in three updates, in `db`. */
  async function converse(db: TestDatabase, agent: string, minutes: number): Promise<void> {
    const id = randomUUID();
    await db.pool.query('INSERT INTO conversations (id, session_id, agent_id, user_id, channel, created_at, updated_at) VALUES ($1, $1, $2, $3, $4, $5, $5)', [id, agent, randomUUID(), 'voice', at(minutes)]);
    await db.pool.query(`INSERT INTO conversation_transcripts (conversation_id, session_id, agent_id, role, content, transcript, sequence, source, created_at)
      VALUES ($1, $1, $2, 'user', 'question', 'question', 0, 'voice', $3)`, [id, agent, at(minutes)]);
    const reply = await db.pool.query<{ id: string }>(`INSERT INTO conversation_transcripts (conversation_id, session_id, agent_id, role, content, transcript, sequence, source, created_at)
      VALUES ($1, $1, $2, 'assistant', 'part1', 'part1', 1, 'voice', $3) RETURNING id`, [id, agent, at(minutes + 1)]);
    await db.pool.query("UPDATE conversation_transcripts SET content = 'part1 part2', transcript = 'part1 part2' WHERE id = $1", [reply.rows[0]!.id]);
  }

  beforeAll(async () => {
    platform = await createTestDatabase({ schemas: ['sidekick-forge'] });
    acme = await createTestDatabase();
    await acme.pool.query(sidekickClientDdl());
    litellm = await createTestDatabase({ schemas: ['litellm'] });
    await platform.pool.query("INSERT INTO tier_quotas (tier, voice_seconds_per_month, text_messages_per_month, embedding_chunks_per_month) VALUES ('adventurer', 6000, 1000, 10000), ('champion', 30000, 10000, 100000)");
    const clients = [{ id: randomUUID(), name: 'Shared', db: platform, hosting: 'shared' }, { id: randomUUID(), name: 'Acme', db: acme, hosting: 'dedicated' }];
    for (const [n, c] of clients.entries()) {
      await platform.pool.query("INSERT INTO clients (id, name, tier, hosting_type) VALUES ($1, $2, 'champion', $3)", [c.id, c.name, c.hosting]);
      const agent = randomUUID();
      await c.db.pool.query("INSERT INTO agents (id, slug, name, system_prompt, model, enabled) VALUES ($1, $2, $2, 'You help.', 'gpt-4o-mini', true)", [agent, `${c.name.toLowerCase()}-agent`]);
      await platform.pool.query(`INSERT INTO activity_log (activity_type, action, client_id, agent_id, resource_type, resource_name, status, created_at) VALUES
        ('sidekick_created', 'create', $1, $2, 'sidekick', 'agent', 'success', $3), ('document_uploaded', 'create', $1, NULL, 'document', 'handbook.pdf', 'success', $4)`,
        [c.id, agent, at(n), at(n + 5)]);
      for (let k = 0; k < 6; k++) await converse(c.db, agent, 10 + 30 * k + n);
      const meta = JSON.stringify({ client_id: c.id, agent_id: agent });
      await platform.pool.query(`INSERT INTO livekit_events (event_type, room_name, duration, metadata, created_at) VALUES
        ('room_started', $1, NULL, $2, $3), ('participant_joined', $1, NULL, $2, $3), ('room_finished', $1, 300, $2, $4)`, [`room-${c.name}`, meta, at(40 + n), at(45 + n)]);
    }
    await writeLitellmCalls(litellm.pool, { count: 1000, seed: 7, start: BASE, stepMs: 60_000, errorLogs: true });

    stateDir = mkdtempSync(join(tmpdir(), 'tw-reconcile-sources-'));
    const reader = { maxCommitDelay: '1s', sweepWindow: '1m', sweepInterval: '1h', reconcileInterval: '1ms', reconcileDays: 7 };
    const config = Config.parse({
      stateDir,
      clickhouse: { database: DB },
      sources: [
        { type: 'sidekick-forge', name: 'sidekick-forge', databaseUrl: platform.url, clientDatabases: [{ client: clients[1]!.id, name: 'acme', databaseUrl: acme.url }], ...reader },
        { type: 'litellm', name: 'litellm', databaseUrl: litellm.url, ...reader },
      ],
    });
    store = await openStore(config);
    await store.command(`DROP DATABASE IF EXISTS ${DB} SYNC`);
    await store.migrate();
    pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false });
    await pollAll();
  }, 180_000);

  afterAll(async () => {
    await pipeline?.close();
    await store?.close();
    for (const db of [platform, acme, litellm]) await db?.drop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('finds every table equal to its source after a clean read', async () => {
    const comparisons = byStream(await pipeline.verify());
    const streams = ['sidekick-forge/conversation_transcripts', 'sidekick-forge.acme/conversation_transcripts', 'sidekick-forge/conversations', 'sidekick-forge.acme/conversations',
      'sidekick-forge/activity_log', 'sidekick-forge/livekit_events', 'litellm/LiteLLM_ErrorLogs', 'litellm/LiteLLM_SpendLogs'];
    expect([...comparisons.keys()].sort()).toEqual([...streams].sort());
    const rows = (stream: string) => comparisons.get(stream)!.days.reduce((n, d) => n + d.sourceRows, 0);
    expect(rows('sidekick-forge/conversation_transcripts')).toBe(12);
    expect(rows('sidekick-forge.acme/conversation_transcripts')).toBe(12);
    expect(rows('sidekick-forge/activity_log')).toBe(4);
    expect(rows('sidekick-forge/livekit_events')).toBe(4); // participant_joined is not read
    const errorLogs = (await litellm.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "LiteLLM_ErrorLogs"')).rows[0]!.n;
    expect(errorLogs).toBeGreaterThan(0);
    expect(rows('litellm/LiteLLM_ErrorLogs')).toBe(errorLogs);
    for (const stream of streams) expect(comparisonTotals(comparisons.get(stream)!), stream).toEqual({ missing: 0, extra: 0, rejected: 0 });
  });

  it('names rows deleted from the store by hand in the stream of their own database, and the next poll delivers them', async () => {
    const pick = async (sql: string) => (await store.query<{ id: string }>(sql)).map((r) => r.id).sort();
    const acmeMessages = await pick(`SELECT message_id AS id FROM ${DB}.messages WHERE tenant = 'Acme' ORDER BY message_id LIMIT 2`);
    const sharedMessages = await pick(`SELECT message_id AS id FROM ${DB}.messages WHERE tenant = 'Shared' ORDER BY message_id LIMIT 3`);
    const conversations = await pick(`SELECT conversation_id AS id FROM ${DB}.conversations WHERE tenant = 'Acme' ORDER BY conversation_id LIMIT 1`);
    const activity = await pick(`SELECT event_id AS id FROM ${DB}.activity_events WHERE event_type = 'document_uploaded' ORDER BY event_id LIMIT 1`);
    const rooms = await pick(`SELECT event_id AS id FROM ${DB}.activity_events WHERE event_type = 'voice_session_finished' ORDER BY event_id LIMIT 1`);
    const errors = await pick(`SELECT event_id AS id FROM ${DB}.activity_events WHERE event_type = 'llm_call_failed' ORDER BY event_id LIMIT 2`);
    const list = (ids: string[]) => ids.map((id) => `'${id}'`).join(', ');
    await store.command(`ALTER TABLE ${DB}.messages DELETE WHERE message_id IN (${list([...acmeMessages, ...sharedMessages])}) SETTINGS mutations_sync = 1`);
    await store.command(`ALTER TABLE ${DB}.conversations DELETE WHERE conversation_id IN (${list(conversations)}) SETTINGS mutations_sync = 1`);
    await store.command(`ALTER TABLE ${DB}.activity_events DELETE WHERE event_id IN (${list([...activity, ...rooms, ...errors])}) SETTINGS mutations_sync = 1`);
    const sourceId = (eventId: string) => eventId.slice(eventId.indexOf(':') + 1);

    const comparisons = byStream(await pipeline.verify());
    expect(missingOf(comparisons.get('sidekick-forge.acme/conversation_transcripts'))).toEqual(acmeMessages);
    expect(missingOf(comparisons.get('sidekick-forge/conversation_transcripts'))).toEqual(sharedMessages);
    expect(missingOf(comparisons.get('sidekick-forge.acme/conversations'))).toEqual(conversations);
    expect(missingOf(comparisons.get('sidekick-forge/conversations'))).toEqual([]);
    expect(missingOf(comparisons.get('sidekick-forge/activity_log'))).toEqual(activity.map(sourceId));
    expect(missingOf(comparisons.get('sidekick-forge/livekit_events'))).toEqual(rooms.map(sourceId));
    expect(missingOf(comparisons.get('litellm/LiteLLM_ErrorLogs'))).toEqual(errors.map(sourceId).sort());
    for (const c of comparisons.values()) expect(comparisonTotals(c).extra, c.stream).toBe(0);

    await pollAll();
    for (const c of await pipeline.verify()) expect(comparisonTotals(c), c.stream).toEqual({ missing: 0, extra: 0, rejected: 0 });
    const [restored] = await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${DB}.messages FINAL WHERE message_id IN (${list([...acmeMessages, ...sharedMessages])})`);
    expect(Number(restored!.n)).toBe(5);
  });
});
