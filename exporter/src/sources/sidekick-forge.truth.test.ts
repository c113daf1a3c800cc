// Sidekick Forge on its real schema and topology: one platform database and two dedicated
// clients' databases, written the way the platform writes them (usage through its
// increment_agent_* functions, a tier change after the month's rows were made, a client with
// no tier, an unlimited quota, an agent since deleted, a stale per-row limit override,
// streamed transcript replies updated in place, conversations inserted once). Every metric and
// ClickHouse table tokenwatch fills is compared with SQL on the sources, and quotas with the
// platform's own get_client_aggregated_usage().
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { sidekickClientDdl } from '../embedded/ddl.ts';
import { samples, value } from '../testing/metrics-text.ts';
import { Config } from '../config/schema.ts';
import type { EventStore } from '../store/clickhouse.ts';
import { backfillOnce } from '../testing/event-store.ts';

interface Client { id: string; name: string; tier: string | null; db: 'platform' | 'acme' | 'globex'; agents: string[] }

describe('Sidekick Forge truth (real DDL, platform + client databases)', () => {
  let platform: TestDatabase;
  let acme: TestDatabase;
  let globex: TestDatabase;
  let store: EventStore;
  let stateDir: string;
  let text: string;
  const clients: Client[] = [];
  const deletedAgent = randomUUID();
  const databaseOf = (c: Client) => (c.db === 'platform' ? platform : c.db === 'acme' ? acme : globex);

  /** The agent's transcript writer: user rows inserted, an assistant voice reply inserted with its first chunk and updated as chunks arrive. */
  async function conversation(c: Client, agent: string, turns: number, minutesAgo: number, channel: 'voice' | 'text'): Promise<string> {
    const db = databaseOf(c).pool;
    const id = randomUUID();
    const start = new Date(Date.now() - minutesAgo * 60_000);
    await db.query('INSERT INTO conversations (id, session_id, agent_id, user_id, channel, created_at, updated_at) VALUES ($1, $1, $2, $3, $4, $5, $5)', [id, agent, randomUUID(), channel, start.toISOString()]);
    for (let t = 0; t < turns; t++) {
      const at = new Date(start.getTime() + t * 20_000).toISOString();
      const turn = randomUUID();
      await db.query(`INSERT INTO conversation_transcripts (conversation_id, session_id, agent_id, role, content, transcript, turn_id, sequence, source, created_at)
        VALUES ($1, $1, $2, 'user', $3, $3, $4, $5, $6, $7)`, [id, agent, `question ${t}`, turn, t * 2, channel, at]);
      const reply = await db.query<{ id: string }>(`INSERT INTO conversation_transcripts (conversation_id, session_id, agent_id, role, content, transcript, turn_id, sequence, source, created_at)
        VALUES ($1, $1, $2, 'assistant', $3, $3, $4, $5, $6, $7) RETURNING id`, [id, agent, `answer ${t} part1`, turn, t * 2 + 1, channel, at]);
      if (channel === 'voice') {
        await db.query('UPDATE conversation_transcripts SET content = $2, transcript = $2 WHERE id = $1', [reply.rows[0]!.id, `answer ${t} part1 part2`]);
        await db.query('UPDATE conversation_transcripts SET content = $2, transcript = $2 WHERE id = $1', [reply.rows[0]!.id, `answer ${t} part1 part2 part3`]);
      }
    }
    return id;
  }

  beforeAll(async () => {
    platform = await createTestDatabase({ schemas: ['sidekick-forge'] });
    acme = await createTestDatabase();
    globex = await createTestDatabase();
    for (const db of [acme, globex]) await db.pool.query(sidekickClientDdl());
    await platform.pool.query(`INSERT INTO tier_quotas (tier, voice_seconds_per_month, text_messages_per_month, embedding_chunks_per_month) VALUES
      ('adventurer', 6000, 1000, 10000), ('champion', 30000, 10000, 100000), ('paragon', 0, 50000, 500000)`);
    const spec: Omit<Client, 'id' | 'agents'>[] = [
      { name: 'Shared One', tier: 'adventurer', db: 'platform' },
      { name: 'No Tier', tier: null, db: 'platform' },
      { name: 'Acme', tier: 'adventurer', db: 'acme' }, // moves to champion below, after its rows were made
      { name: 'Globex', tier: 'paragon', db: 'globex' },
    ];
    for (const s of spec) {
      const id = randomUUID();
      await platform.pool.query('INSERT INTO clients (id, name, tier, hosting_type, openai_api_key, supabase_service_role_key) VALUES ($1, $2, $3, $4, $5, $6)',
        [id, s.name, s.tier, s.db === 'platform' ? 'shared' : 'dedicated', 'sk-secret', 'service-role-secret']);
      const c: Client = { ...s, id, agents: [] };
      for (let a = 0; a < 2; a++) {
        const agent = randomUUID();
        c.agents.push(agent);
        await databaseOf(c).pool.query(`INSERT INTO agents (id, slug, name, system_prompt, model, enabled) VALUES ($1, $2, $3, 'You help.', 'gpt-4o-mini', $4)`,
          [agent, `${s.name.toLowerCase().replace(' ', '-')}-${a}`, `${s.name} ${a}`, a === 0]);
        // The platform logs every agent it creates: the only link of an agent without usage rows to its client.
        await platform.pool.query(`INSERT INTO activity_log (activity_type, action, client_id, agent_id, resource_type, resource_name) VALUES ('sidekick_created', 'create', $1, $2, 'sidekick', $3)`,
          [id, agent, `${s.name} ${a}`]);
      }
      clients.push(c);
    }
    // Usage through the platform's own functions.
    const use = async (client: Client, agent: string, voice: number, text: number, embedding: number) => {
      await platform.pool.query('SELECT * FROM increment_agent_voice_seconds($1, $2, $3)', [client.id, agent, voice]);
      await platform.pool.query('SELECT * FROM increment_agent_text_messages($1, $2, $3)', [client.id, agent, text]);
      await platform.pool.query('SELECT * FROM increment_agent_embedding_chunks($1, $2, $3)', [client.id, agent, embedding]);
    };
    const [shared, noTier, acmeClient, globexClient] = clients as [Client, Client, Client, Client];
    await use(shared, shared.agents[0]!, 4900, 850, 1200); // 81.7 % voice, 85 % text
    await use(shared, shared.agents[1]!, 250, 120, 0);
    await use(noTier, noTier.agents[0]!, 5800, 300, 9000); // adventurer limits: 96.7 % voice, 90 % embedding
    await use(noTier, deletedAgent, 400, 50, 0); // an agent since deleted: still the client's
    await use(acmeClient, acmeClient.agents[0]!, 4000, 1100, 100);
    await use(acmeClient, acmeClient.agents[1]!, 1520, 400, 0);
    await platform.pool.query("UPDATE clients SET tier = 'champion' WHERE id = $1", [acmeClient.id]); // its rows keep adventurer copies
    await use(globexClient, globexClient.agents[0]!, 90000, 48000, 10); // voice unlimited on paragon
    // A stale per-row override must not hide a client near its quota.
    await platform.pool.query('UPDATE agent_usage SET voice_seconds_limit = 500000 WHERE agent_id = $1', [shared.agents[0]]);
    // Conversations and transcripts where each client's agents live.
    for (const c of clients) {
      await conversation(c, c.agents[0]!, 3, 2, 'voice'); // live: the agent is online
      await conversation(c, c.agents[0]!, 2, 90, 'text');
      await conversation(c, c.agents[1]!, 1, 300, 'voice');
    }
    // Platform activity and LiveKit rooms (one still running).
    for (const c of clients) {
      await platform.pool.query(`INSERT INTO activity_log (activity_type, action, client_id, agent_id, resource_type, resource_name, status)
        VALUES ('sidekick_updated', 'update', $1, $2, 'sidekick', 'config', 'success'), ('document_uploaded', 'create', $1, NULL, 'document', 'handbook.pdf', 'success'),
               ('ability_run', 'run', $1, $2, 'ability', 'web search', 'failed')`, [c.id, c.agents[0]]);
      const meta = JSON.stringify({ client_id: c.id, agent_id: c.agents[0] });
      await platform.pool.query(`INSERT INTO livekit_events (event_type, room_name, duration, metadata, created_at) VALUES
        ('room_started', $1, NULL, $2, now() - interval '10 minutes'), ('room_finished', $1, 420, $2, now() - interval '3 minutes'),
        ('participant_joined', $1, NULL, $2, now() - interval '9 minutes'), ('room_started', $3, NULL, $2, now() - interval '1 minute')`,
        [`room-${c.id}-1`, meta, `room-${c.id}-2`]);
    }

    stateDir = mkdtempSync(join(tmpdir(), 'tw-sf-truth-'));
    const config = Config.parse({
      stateDir,
      sources: [{
        type: 'sidekick-forge', name: 'sidekick-forge', databaseUrl: platform.url,
        clientDatabases: [{ client: acmeClient.id, name: 'acme', databaseUrl: acme.url }, { client: globexClient.id, databaseUrl: globex.url }],
      }],
    });
    let quality: unknown[];
    ({ store, text, quality } = await backfillOnce(config));
    expect(quality).toEqual([]);
  }, 120_000);

  afterAll(async () => {
    await store?.close();
    for (const db of [platform, acme, globex]) await db?.drop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('reads each client database as a part of the source, labelled with its client', () => {
    const up = samples(text, 'tokenwatch_source_up').map((s) => `${s.labels.source}/${s.labels.table}`);
    expect(up).toContain('sidekick-forge.acme/conversation_transcripts');
    expect(up).toContain(`sidekick-forge.client-${clients[3]!.id.replaceAll('-', '').slice(0, 8)}/agents`);
    expect(samples(text, 'tokenwatch_source_up').every((s) => s.value === 1)).toBe(true);
  });

  it('quotas equal the platform\'s get_client_aggregated_usage for every client and resource', async () => {
    const resources = [['voice_seconds', 'voice'], ['text_messages', 'text'], ['embedding_chunks', 'embedding']] as const;
    let compared = 0;
    for (const c of clients) {
      const { rows } = await platform.pool.query('SELECT * FROM get_client_aggregated_usage($1)', [c.id]);
      const truth = rows[0] as Record<string, number | string>;
      for (const [resource, short] of resources) {
        const used = Number(truth[`total_${resource}`]);
        const limit = Number(truth[`${short}_limit`]);
        expect(value(text, 'tokenwatch_quota_used', { client: c.name, agent: '', resource }), `${c.name} ${resource} used`).toBe(used);
        const exposedLimit = value(text, 'tokenwatch_quota_limit', { client: c.name, resource });
        const ratio = value(text, 'tokenwatch_quota_utilisation_ratio', { client: c.name, resource });
        if (limit === 0) {
          expect(exposedLimit, `${c.name} ${resource} unlimited`).toBeUndefined();
          expect(ratio).toBeUndefined();
        } else {
          expect(exposedLimit, `${c.name} ${resource} limit`).toBe(limit);
          expect(Math.round(ratio! * 1000) / 10, `${c.name} ${resource} percent`).toBe(Number(truth[`${short}_percent_used`]));
          const check = await platform.pool.query('SELECT * FROM check_client_quota($1, $2)', [c.id, short]);
          expect(ratio! < 1, `${c.name} ${resource} within quota`).toBe(check.rows[0].is_within_quota);
        }
        compared += 1;
      }
    }
    expect(compared).toBe(12);
    // The cases the test is built on: the tier change, the NULL tier, the unlimited quota, the deleted agent, the stale override.
    expect(value(text, 'tokenwatch_quota_limit', { client: 'Acme', resource: 'text_messages' })).toBe(10000);
    expect(value(text, 'tokenwatch_quota_limit', { client: 'No Tier', resource: 'voice_seconds' })).toBe(6000);
    expect(value(text, 'tokenwatch_quota_limit', { client: 'Globex', resource: 'voice_seconds' })).toBeUndefined();
    expect(value(text, 'tokenwatch_quota_used', { client: 'No Tier', agent: deletedAgent, resource: 'voice_seconds' })).toBe(400);
    expect(value(text, 'tokenwatch_quota_utilisation_ratio', { client: 'Shared One', resource: 'voice_seconds' })).toBeCloseTo(5150 / 6000, 12);
  });

  it('threshold crossings in ClickHouse follow the platform\'s percentages', async () => {
    const expected: string[] = [];
    for (const c of clients) {
      const truth = (await platform.pool.query('SELECT * FROM get_client_aggregated_usage($1)', [c.id])).rows[0] as Record<string, string>;
      for (const [resource, short] of [['voice_seconds', 'voice'], ['text_messages', 'text'], ['embedding_chunks', 'embedding']]) {
        const limit = Number(truth[`${short}_limit`]);
        if (limit === 0) continue;
        const share = Number(truth[`total_${resource}`]) / limit;
        for (const t of [80, 90, 100]) if (share * 100 >= t) expected.push(`${c.name}:${resource}:${t}`);
      }
    }
    const rows = await store.query<{ d: string }>(`SELECT details AS d FROM tokenwatch.activity_events FINAL WHERE event_type = 'quota_threshold_crossed'`);
    const got = rows.map((r) => JSON.parse(r.d) as { client: string; threshold: number }).map((d) => d.client);
    const crossings = (await store.query<{ id: string }>(`SELECT event_id AS id FROM tokenwatch.activity_events FINAL WHERE event_type = 'quota_threshold_crossed'`))
      .map((r) => r.id.replace(/^quota_threshold_crossed:/, '').replace(/:\d{4}-\d{2}-\d{2}:/, ':'));
    expect(got.length).toBe(expected.length);
    expect(crossings.sort()).toEqual(expected.sort());
    expect(expected).toContain('No Tier:voice_seconds:90');
    expect(expected).not.toContain('Acme:text_messages:80'); // 15 % of champion, not 150 % of the stale copy
  });

  it('messages per client and role equal SQL across the databases, and ClickHouse holds each transcript\'s last version', async () => {
    for (const c of clients) {
      const db = databaseOf(c).pool;
      const { rows } = await db.query<{ role: string; n: number }>('SELECT role, count(*)::int AS n FROM conversation_transcripts WHERE agent_id = ANY($1::uuid[]) GROUP BY role', [c.agents]);
      expect(rows.length).toBe(2);
      for (const r of rows) expect(value(text, 'tokenwatch_conversation_messages_total', { tenant: c.name, role: r.role }), `${c.name} ${r.role}`).toBe(r.n);
      const stored = await store.query<{ n: number }>(`SELECT count() AS n FROM tokenwatch.messages FINAL WHERE tenant = {t:String}`, { t: c.name });
      expect(stored[0]!.n).toBe(rows.reduce((n, r) => n + r.n, 0));
      const contents = await db.query<{ id: string; content: string }>("SELECT id::text, content FROM conversation_transcripts WHERE role = 'assistant' AND source = 'voice'");
      const inStore = new Map((await store.query<{ id: string; content: string }>('SELECT message_id AS id, content FROM tokenwatch.messages FINAL WHERE tenant = {t:String}', { t: c.name })).map((r) => [r.id, r.content]));
      for (const row of contents.rows) if (inStore.has(row.id)) expect(inStore.get(row.id)).toBe(row.content);
    }
  });

  it('conversations: every one stored once, started counts per client and channel equal SQL', async () => {
    let total = 0;
    for (const c of clients) {
      const { rows } = await databaseOf(c).pool.query<{ channel: string; n: number }>('SELECT channel, count(*)::int AS n FROM conversations WHERE agent_id = ANY($1::uuid[]) GROUP BY channel', [c.agents]);
      for (const r of rows) {
        expect(value(text, 'tokenwatch_conversations_started_total', { tenant: c.name, channel: r.channel })).toBe(r.n);
        expect(value(text, 'tokenwatch_conversations', { tenant: c.name, channel: r.channel })).toBe(r.n);
        total += r.n;
      }
    }
    const stored = await store.query<{ rows: number; ids: number }>('SELECT count() AS rows, uniqExact(conversation_id) AS ids FROM tokenwatch.conversations FINAL');
    expect(stored[0]).toEqual({ rows: total, ids: total });
  });

  it('agent status comes from transcripts: the agent in a live conversation is online, the disabled one offline', () => {
    for (const c of clients) {
      const slug = (a: number) => `${c.name.toLowerCase().replace(' ', '-')}-${a}`;
      expect(value(text, 'tokenwatch_agent_status', { client: c.name, agent: slug(0), status: 'online' }), `${c.name} online`).toBe(1);
      expect(value(text, 'tokenwatch_agent_active_conversations', { client: c.name, agent: slug(0) })).toBe(1);
      expect(value(text, 'tokenwatch_agent_status', { client: c.name, agent: slug(1), status: 'offline' })).toBe(1);
    }
  });

  it('activity log and LiveKit events: activities, voice seconds and active voice sessions equal SQL', async () => {
    const { rows } = await platform.pool.query<{ name: string; type: string; status: string; n: number }>(
      'SELECT c.name, a.activity_type AS type, a.status, count(*)::int AS n FROM activity_log a JOIN clients c ON c.id = a.client_id GROUP BY 1, 2, 3');
    expect(rows.length).toBe(16);
    for (const r of rows) expect(value(text, 'tokenwatch_activities_total', { tenant: r.name, type: r.type, status: r.status })).toBe(r.n);
    for (const c of clients) {
      expect(value(text, 'tokenwatch_activities_total', { tenant: c.name, type: 'voice_session_started' })).toBe(2);
      expect(value(text, 'tokenwatch_activities_total', { tenant: c.name, type: 'voice_session_finished' })).toBe(1);
      expect(value(text, 'tokenwatch_voice_session_seconds_total', { tenant: c.name })).toBe(420);
      expect(value(text, 'tokenwatch_voice_sessions_active', { tenant: c.name })).toBe(1);
    }
    const stored = await store.query<{ t: string; n: number }>(`SELECT event_type AS t, count() AS n FROM tokenwatch.activity_events FINAL
      WHERE event_type IN ('sidekick_created', 'sidekick_updated', 'document_uploaded', 'ability_run', 'voice_session_started', 'voice_session_finished') GROUP BY t ORDER BY t`);
    expect(stored).toEqual([
      { t: 'ability_run', n: 4 }, { t: 'document_uploaded', n: 4 }, { t: 'sidekick_created', n: 8 }, { t: 'sidekick_updated', n: 4 },
      { t: 'voice_session_finished', n: 4 }, { t: 'voice_session_started', n: 8 },
    ]);
  });
});
