// The bulk backfill stores and counts exactly what the row-by-row backfill does. For each
// table with a bulk path (Claude Nexus Proxy's api_requests; LiteLLM's SpendLogs and
// ErrorLogs; Sidekick Forge's activity_log, livekit_events and conversations), source tables
// with every kind of row the mapping treats specially (for the proxy: errors from the body,
// proxy errors, rate-limit warnings, conversations, subtasks, NULL and negative values,
// unknown models, future timestamps, microsecond timestamps; for LiteLLM: failures with and
// without a status code, missing teams, odd spend and usage values, error details JSON must
// escape; for Sidekick Forge: rows without a client or agent, text JSON must escape, future
// timestamps, unfinished voice sessions) are backfilled three ways,
// each into its own ClickHouse database of one embedded store: row by row, bulk through a file
// ClickHouse reads, bulk through a streamed insert. Tables, metric counters, quality counts and
// stream statuses must be equal.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { API_REQUEST_COLUMNS, apiRequestRows, insertRows, seedSidekickForge, uuidFrom } from '../embedded/seed.ts';
import type { SourceName } from '../model/events.ts';
import { writeLitellmCalls } from '../testing/litellm-calls.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { Pipeline } from './pipeline.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { MetricsRegistry, type SavedMetrics } from '../metrics/registry.ts';
import type { BulkTransport } from '../store/bulk-load.ts';

interface Outcome {
  tables: Record<string, unknown[]>;
  metrics: Record<string, SavedMetrics>;
  quality: unknown;
  status: Record<string, { rowsRead: number; rowsRejected: number; eventsEmitted: number }>;
  /** Rows each stream's bulk path stored without map(). */
  bulk: Record<string, number>;
}

interface BulkCase {
  name: string;
  schema: SourceName;
  source: { type: SourceName; batchSize: number };
  /** The streams with a bulk path, each with SQL counting the source rows it reads. */
  streams: { id: string; count: string }[];
  /** Tables to ANALYZE after seeding. */
  tables: string[];
  /** Rows before the first backfill. */
  seed(db: TestDatabase): Promise<void>;
  /** Rows after it (timestamps in the last minute: above the first poll's watermark). */
  more(db: TestDatabase): Promise<void>;
  /** The data set exercises both paths (rows the bulk path hands to map(), rows it does not). */
  exercised(db: TestDatabase, rowByRow: Outcome): Promise<void>;
}

function bulkEquivalence(c: BulkCase): void {
  describe(`bulk backfill: ${c.name}`, () => {
    let db: TestDatabase;
    let stateDir: string;
    let stores: EventStore[] = [];
    const outcomes: Record<string, Outcome> = {};

    /** Opens a pipeline writing to ClickHouse database `name`; `run()` backfills, `outcome()` dumps. */
    async function open(name: string, bulk: BulkTransport | false) {
      const config = testConfig(db.url, { stateDir, sources: [c.source], clickhouse: { database: name, bulkBackfill: bulk !== false, bulkChunkRows: 1000 } });
      const store = await openStore(config);
      stores.push(store);
      await store.migrate();
      const metrics = new MetricsRegistry();
      // One checkpoint store across both backfills: the second resumes from the first.
      const checkpoints = new MemoryCheckpointStore();
      const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'redacted')], store: checkpoints, autoSources: false, metrics });
      const dump = (sql: string) => store.query<Record<string, unknown>>(sql.replaceAll('{db}', name));
      return {
        run: () => pipeline.backfill(undefined, bulk === false ? {} : { transport: bulk }),
        async outcome(): Promise<Outcome> {
          const status = Object.fromEntries(c.streams.map(({ id }) => {
            const s = pipeline.statuses().find((candidate) => candidate.id === id)!;
            return [id, { rowsRead: s.rowsRead, rowsRejected: s.rowsRejected, eventsEmitted: s.eventsEmitted }];
          }));
          // Order of first occurrence differs between the paths; the counts must not.
          const quality = pipeline.quality.snapshot().map((q) => JSON.stringify(q)).sort();
          await pipeline.close();
          return {
            tables: {
              // The bulk path leaves fingerprint 0 (clickhouse/migrations/0008): compared without it.
              requests: await dump('SELECT * EXCEPT (ingested_at, fingerprint) FROM {db}.requests FINAL ORDER BY request_id'),
              messages: await dump('SELECT * EXCEPT ingested_at FROM {db}.messages FINAL ORDER BY message_id'),
              // A quota crossing's time is when the snapshot read it (the wall clock): compared without it.
              activity: await dump(`SELECT * REPLACE (if(event_type = 'quota_threshold_crossed', '', toString(event_time)) AS event_time, if(event_type = 'quota_threshold_crossed', 0, version) AS version)
                FROM {db}.activity_events FINAL ORDER BY event_id`),
              conversations: await dump('SELECT * FROM {db}.conversations FINAL ORDER BY conversation_id'),
              requestsDaily: await dump('SELECT day, tenant, source, model, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), toString(sum(cost_usd)), sum(tool_calls) FROM {db}.requests_daily GROUP BY ALL ORDER BY ALL'),
              messagesDaily: await dump('SELECT day, tenant, agent, channel, sum(messages) FROM {db}.messages_daily GROUP BY ALL ORDER BY ALL'),
              physical: await dump(`SELECT (SELECT count() FROM {db}.requests) AS requests, (SELECT count() FROM {db}.messages) AS messages,
                (SELECT count() FROM {db}.conversations) AS conversations, (SELECT count() FROM {db}.activity_events) AS activity`),
            },
            metrics: Object.fromEntries(c.streams.map(({ id }) => [id, metrics.saveStream(id)])),
            bulk: Object.fromEntries(c.streams.map(({ id }) => [id, pipeline.statuses().find((s) => s.id === id)!.rowsBulk])),
            quality,
            status,
          };
        },
      };
    }

    beforeAll(async () => {
      db = await createTestDatabase({ schemas: [c.schema] });
      stateDir = mkdtempSync(join(tmpdir(), 'tw-bulk-'));
      await c.seed(db);
      for (const table of c.tables) await db.pool.query(`ANALYZE ${table}`);
      const ways = { rows: await open('tw_rows', false), file: await open('tw_bulk_file', 'file'), stream: await open('tw_bulk_stream', 'stream') };
      for (const way of Object.values(ways)) await way.run();
      // New rows after the first backfill: the second one resumes from its checkpoint (the
      // previous poll's snapshot and watermark in the chunks' conditions).
      await c.more(db);
      for (const way of Object.values(ways)) await way.run();
      for (const [name, way] of Object.entries(ways)) outcomes[name] = await way.outcome();
    });
    afterAll(async () => {
      for (const store of stores) await store.close();
      stores = [];
      await db?.drop();
      if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    });

    it('reads every row once over two backfills, and the data set exercises both paths', async () => {
      for (const stream of c.streams) {
        const { rows } = await db.pool.query<{ n: number }>(stream.count);
        expect(outcomes.rows!.status[stream.id]!.rowsRead, stream.id).toBe(rows[0]!.n);
        expect(outcomes.rows!.status[stream.id]!.rowsRejected, stream.id).toBeGreaterThan(0);
        // Most rows take the bulk path, the rest map(); none does row by row.
        expect(outcomes.rows!.bulk[stream.id], stream.id).toBe(0);
        for (const way of ['file', 'stream']) {
          expect(outcomes[way]!.bulk[stream.id], `${way} ${stream.id}`).toBeGreaterThan(rows[0]!.n / 2);
          expect(outcomes[way]!.bulk[stream.id], `${way} ${stream.id}`).toBeLessThan(rows[0]!.n);
        }
      }
      await c.exercised(db, outcomes.rows!);
    });

    for (const transport of ['file', 'stream'] as const) {
      it(`bulk through ${transport === 'file' ? 'a spooled file' : 'a streamed insert'} stores the same rows`, () => {
        for (const [table, rows] of Object.entries(outcomes.rows!.tables)) expect(outcomes[transport]!.tables[table], table).toEqual(rows);
      });

      it(`bulk through ${transport === 'file' ? 'a spooled file' : 'a streamed insert'} counts the same metrics, quality and statuses`, () => {
        const expected = outcomes.rows!;
        const actual = outcomes[transport]!;
        expect(actual.status).toEqual(expected.status);
        expect(actual.quality).toEqual(expected.quality);
        for (const { id } of c.streams) compareMetrics(expected.metrics[id]!, actual.metrics[id]!);
      });
    }
  });
}

/** The same series with the same values (sums of doubles to 9 places, histograms bucket by bucket). */
function compareMetrics(expected: SavedMetrics, actual: SavedMetrics): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [key, series] of Object.entries(expected)) {
    const mine = new Map(actual[key as keyof SavedMetrics]!.map((s) => [s[0].join('|'), s]));
    expect(mine.size, key).toBe(series.length);
    for (const s of series) {
      const other = mine.get(s[0].join('|'));
      expect(other, `${key} ${s[0].join('|')}`).toBeDefined();
      if (s.length === 2) {
        // Sums of costs in another order differ in the last bits of a double.
        expect(other![1] as number, `${key} ${s[0].join('|')}`).toBeCloseTo(s[1], 9);
      } else {
        expect(other![1], `${key} ${s[0].join('|')} buckets`).toEqual(s[1]);
        expect(other![2] as number, `${key} ${s[0].join('|')} sum`).toBeCloseTo(s[2], 6);
        expect(other![3], `${key} ${s[0].join('|')} count`).toBe(s[3]);
      }
    }
  }
}

bulkEquivalence({
  name: 'Claude Nexus Proxy api_requests',
  schema: 'claude-nexus-proxy',
  source: { type: 'claude-nexus-proxy', batchSize: 700 },
  streams: [{ id: 'claude-nexus-proxy/api_requests', count: 'SELECT count(*)::int AS n FROM api_requests' }],
  tables: ['api_requests'],
  async seed(db) {
    await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(4000, { seed: 11, spanMs: 7 * 24 * 3_600_000 }));
    const q = (sql: string, params: unknown[] = []) => db.pool.query(sql, params);
    // Half the requests carry no conversation (no messages: the bulk path alone), some have
    // microsecond timestamps, NULL or negative durations, a proxy error, a body error whose
    // type is not a string, a price matched by the whole model name.
    await q("UPDATE api_requests SET conversation_id = NULL WHERE get_byte(decode(md5(request_id::text), 'hex'), 0) < 128");
    await q("UPDATE api_requests SET timestamp = timestamp + interval '987 microseconds' WHERE get_byte(decode(md5(request_id::text), 'hex'), 1) < 64");
    await q("UPDATE api_requests SET duration_ms = NULL, first_token_ms = -5 WHERE get_byte(decode(md5(request_id::text), 'hex'), 2) < 20");
    await q("UPDATE api_requests SET duration_ms = -1 WHERE get_byte(decode(md5(request_id::text), 'hex'), 2) BETWEEN 20 AND 30");
    await q("UPDATE api_requests SET error = 'socket hang up', response_status = 200 WHERE get_byte(decode(md5(request_id::text), 'hex'), 3) < 8");
    await q(`UPDATE api_requests SET response_status = 502, response_body = '{"error": {"type": 7}}' WHERE get_byte(decode(md5(request_id::text), 'hex'), 3) BETWEEN 8 AND 12`);
    await q("UPDATE api_requests SET model = 'claude-haiku-4-5', response_status = NULL WHERE get_byte(decode(md5(request_id::text), 'hex'), 4) < 10");
    await q("UPDATE api_requests SET tool_call_count = NULL, is_subtask = NULL, response_streaming = NULL, account_id = '' WHERE get_byte(decode(md5(request_id::text), 'hex'), 5) < 10");
    // Rows map() repairs or rejects, which the bulk path hands to map().
    const base = 'INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, input_tokens, output_tokens, conversation_id, body, response_status)';
    const bad = (name: string) => uuidFrom(`bulk-bad-${name}`);
    await q(`${base} VALUES ($1, 'acme.example.com', now() - interval '1 day', 'claude-sonnet-4-5', 'inference', -5, 10, NULL, NULL, 200)`, [bad('negative')]);
    await q(`${base} VALUES ($1, 'acme.example.com', now() + interval '1 hour', 'claude-sonnet-4-5', 'inference', 1, 1, NULL, NULL, 200)`, [bad('future')]);
    await q(`${base} VALUES ($1, 'acme.example.com', now() - interval '2 days', 'claude-sonnet-4-5', 'inference', NULL, NULL, NULL, NULL, 200)`, [bad('null')]);
    await q(`${base} VALUES ($1, 'acme.example.com', now() - interval '3 days', 'mystery-model-9', 'inference', 10, 10, NULL, NULL, 200)`, [bad('unknown')]);
    await q(`${base} VALUES ($1, 'acme.example.com', now() - interval '3 days', NULL, 'inference', 10, 10, NULL, NULL, 200)`, [bad('no-model')]);
    await q(`${base} VALUES ($1, '', now() - interval '4 days', 'claude-sonnet-4-5', 'inference', 10, 10, NULL, NULL, 200)`, [bad('no-tenant')]);
    await q(`${base} VALUES ($1, 'acme.example.com', now() - interval '4 days', 'claude-sonnet-4-5', 'inference', 10, 10, NULL, NULL, 0)`, [bad('status-0')]);
    await q(`${base} VALUES ($1, 'acme.example.com', now() - interval '5 days', 'claude-sonnet-4-5', 'inference', 10, 10, $2, $3, 200)`, [
      bad('mail'), uuidFrom('bulk-conv-mail'), JSON.stringify({ messages: [{ role: 'user', content: [{ type: 'text', text: 'mail me at jane@example.org' }] }] }),
    ]);
  },
  async more(db) {
    await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, apiRequestRows(1500, { seed: 12, spanMs: 60_000, idPrefix: 'later-' }));
    await db.pool.query("UPDATE api_requests SET conversation_id = NULL WHERE timestamp BETWEEN now() - interval '2 minutes' AND now() AND get_byte(decode(md5(request_id::text), 'hex'), 0) < 128");
  },
  async exercised(db, rowByRow) {
    const { rows } = await db.pool.query<{ n: number; conversations: number }>('SELECT count(*)::int AS n, count(conversation_id)::int AS conversations FROM api_requests');
    expect(rows[0]!.conversations).toBeGreaterThan(1000);
    expect(rows[0]!.n - rows[0]!.conversations).toBeGreaterThan(1000);
    expect(rowByRow.tables.activity!.length).toBeGreaterThan(100);
  },
});

bulkEquivalence({
  name: 'LiteLLM SpendLogs and ErrorLogs',
  schema: 'litellm',
  source: { type: 'litellm', batchSize: 700 },
  streams: [
    { id: 'litellm/LiteLLM_SpendLogs', count: 'SELECT count(*)::int AS n FROM "LiteLLM_SpendLogs"' },
    { id: 'litellm/LiteLLM_ErrorLogs', count: 'SELECT count(*)::int AS n FROM "LiteLLM_ErrorLogs"' },
  ],
  tables: ['"LiteLLM_SpendLogs"', '"LiteLLM_ErrorLogs"'],
  async seed(db) {
    await writeLitellmCalls(db.pool, { count: 2500, seed: 21, start: Date.now() - 7 * 24 * 3_600_000 - 60_000, stepMs: (7 * 24 * 3_600_000) / 2500, errorLogs: true });
    const q = (sql: string) => db.pool.query(sql);
    const where = (byte: number, from: number, to: number) => `WHERE get_byte(decode(md5(request_id), 'hex'), ${byte}) BETWEEN ${from} AND ${to}`;
    // Values the mapping treats specially; the bulk path either maps them the same or hands them to map().
    await q(`UPDATE "LiteLLM_SpendLogs" SET spend = 'NaN' ${where(0, 0, 2)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET spend = -1 ${where(0, 3, 5)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET spend = 0.0000000005 ${where(0, 6, 8)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET spend = 1e-5 ${where(0, 9, 11)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET spend = 1e12 ${where(0, 12, 13)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET spend = 'Infinity' ${where(0, 14, 15)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET prompt_tokens = -3 ${where(1, 0, 3)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET "startTime" = now() + interval '2 hours' ${where(1, 4, 5)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET status = 'failure', metadata = '{"error_information": {"error_class": 7, "error_code": 429}}' ${where(2, 0, 4)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET status = 'failure', metadata = '{"error_information": {"error_class": "", "error_code": "not-a-code"}}' ${where(2, 5, 9)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET status = 'failure', metadata = '{"error_information": {"error_code": 503}}' ${where(2, 10, 14)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET metadata = '{"usage_object": {"cache_read_input_tokens": "12", "cache_creation_input_tokens": 4.7}}' ${where(3, 0, 4)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET metadata = '{"usage_object": {"cache_read_input_tokens": 0, "prompt_tokens_details": {"cached_tokens": 33}}}' ${where(3, 5, 9)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET metadata = '[1, 2]', custom_llm_provider = '', call_type = 'atext_completion', model = '' ${where(3, 10, 14)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET request_duration_ms = NULL, "completionStartTime" = "endTime" ${where(4, 0, 9)}`);
    await q(`UPDATE "LiteLLM_SpendLogs" SET status = '' ${where(4, 10, 14)}`);
    // Error details: status codes only JavaScript's Number() reads, text JSON must escape, an
    // end before the start, a start in the future.
    await q(`INSERT INTO "LiteLLM_ErrorLogs" (request_id, "startTime", "endTime", api_base, model_group, litellm_model_name, exception_type, status_code)
      SELECT 'err-' || i, now() - make_interval(secs => i * 1000), now() - make_interval(secs => i * 1000 - 2), 'https://api.openai.com/v1',
        'gpt-4o', 'openai/gpt-4o', (ARRAY['RateLimitError', 'APIConnectionError', ''])[1 + i % 3], (ARRAY['429', '500', '', '503'])[1 + i % 4]
      FROM generate_series(1, 600) AS i`);
    const errors = `UPDATE "LiteLLM_ErrorLogs" SET`;
    await q(`${errors} status_code = ' 404' ${where(0, 0, 20)}`);
    await q(`${errors} status_code = '099' ${where(0, 21, 40)}`);
    await q(`${errors} status_code = '4e2' ${where(0, 41, 60)}`);
    await q(`${errors} status_code = '' ${where(0, 61, 90)}`);
    await q(`${errors} api_base = 'https://eu.example.com/v1?q="x"\\y' ${where(1, 0, 90)}`);
    await q(`${errors} exception_type = E'Rate\nLimit\tError\u2028', model_group = E'gr\u00e9\u0001' ${where(1, 91, 130)}`);
    await q(`${errors} litellm_model_name = E'line\u2029sep' ${where(1, 131, 150)}`);
    await q(`${errors} "endTime" = "startTime" - interval '1 second' ${where(2, 0, 40)}`);
    await q(`${errors} "startTime" = now() + interval '3 hours' ${where(2, 41, 60)}`);
  },
  async more(db) {
    await writeLitellmCalls(db.pool, { count: 600, seed: 22, start: Date.now() - 50_000 - 60_000, stepMs: 50_000 / 600, errorLogs: true });
  },
  async exercised(db, rowByRow) {
    const { rows } = await db.pool.query<{ failed: number; odd: number }>(`SELECT count(*) FILTER (WHERE status = 'failure')::int AS failed,
      count(*) FILTER (WHERE spend = 'NaN' OR spend < 0 OR prompt_tokens < 0)::int AS odd FROM "LiteLLM_SpendLogs"`);
    expect(rows[0]!.failed).toBeGreaterThan(50);
    expect(rows[0]!.odd).toBeGreaterThan(10);
    expect(rowByRow.tables.requests!.length).toBeGreaterThan(2500);
    const errors = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "LiteLLM_ErrorLogs"');
    expect(errors.rows[0]!.n).toBeGreaterThan(100);
  },
});

bulkEquivalence({
  name: 'Sidekick Forge activity_log, livekit_events and conversations',
  schema: 'sidekick-forge',
  source: { type: 'sidekick-forge', batchSize: 700 },
  streams: [
    { id: 'sidekick-forge/activity_log', count: 'SELECT count(*)::int AS n FROM activity_log' },
    { id: 'sidekick-forge/livekit_events', count: "SELECT count(*)::int AS n FROM livekit_events WHERE event_type IN ('room_started', 'room_finished')" },
    { id: 'sidekick-forge/conversations', count: 'SELECT count(*)::int AS n FROM conversations' },
  ],
  tables: ['activity_log', 'livekit_events', 'conversations'],
  async seed(db) {
    await seedSidekickForge(db.pool, { conversations: 1500, seed: 31 });
    const q = (sql: string) => db.pool.query(sql);
    // Activity of every kind: with and without client, agent, status and resource; text JSON
    // must escape; one in the future.
    await q(`INSERT INTO activity_log (activity_type, action, client_id, agent_id, resource_type, resource_id, resource_name, status, created_at)
      SELECT (ARRAY['document_uploaded', 'sidekick_updated', 'ability_run', 'conversation_started'])[1 + i % 4],
        (ARRAY['create', 'update', '', 'run'])[1 + i % 4],
        CASE WHEN i % 7 = 0 THEN NULL ELSE (SELECT id FROM clients ORDER BY id LIMIT 1 OFFSET i % 4) END,
        CASE WHEN i % 5 = 0 THEN NULL WHEN i % 5 = 1 THEN gen_random_uuid() ELSE (SELECT id FROM agents ORDER BY id LIMIT 1 OFFSET i % 12) END,
        CASE WHEN i % 3 = 0 THEN NULL ELSE 'document' END,
        CASE WHEN i % 6 = 0 THEN NULL ELSE 'doc-' || i END,
        (ARRAY[NULL, '', 'Handbook "v2" / final.pdf', E'back\\\\slash\ttab\nline', E'caf\u00e9 \u2028 sep', 'plain'])[1 + i % 6],
        (ARRAY[NULL, 'success', '', 'failed'])[1 + i % 4],
        now() - make_interval(secs => i * 200)
      FROM generate_series(1, 3000) AS i`);
    await q("UPDATE activity_log SET created_at = now() + interval '2 hours' WHERE resource_id IN ('doc-7', 'doc-11')");
    // Voice sessions: a negative duration, one without metadata, events that are not rooms.
    await q(`INSERT INTO livekit_events (event_type, room_name, duration, metadata, created_at)
      SELECT (ARRAY['room_started', 'room_finished', 'participant_joined'])[1 + i % 3],
        (ARRAY['room-x', NULL, 'room/"y"'])[1 + i % 3 % 3],
        CASE WHEN i % 11 = 0 THEN -5 WHEN i % 3 = 1 THEN i % 600 END,
        CASE WHEN i % 4 = 0 THEN '{}'::jsonb ELSE jsonb_build_object('client_id', (SELECT id FROM clients ORDER BY id LIMIT 1 OFFSET i % 4), 'agent_id', 'not-a-uuid') END,
        now() - make_interval(secs => i * 150)
      FROM generate_series(1, 2000) AS i`);
    await q("INSERT INTO livekit_events (event_type, room_name, created_at) VALUES ('room_started', 'future-room', now() + interval '2 hours')");
    // Conversations without agent, without channel, with a channel JSON must escape, in the future.
    await q(`INSERT INTO conversations (agent_id, user_id, channel, created_at)
      SELECT CASE WHEN i % 4 = 0 THEN NULL ELSE (SELECT id FROM agents ORDER BY id LIMIT 1 OFFSET i % 12) END,
        CASE WHEN i % 3 = 0 THEN NULL ELSE gen_random_uuid() END,
        (ARRAY[NULL, '', 'voice', 'sms/"x"', E'web\u2028'])[1 + i % 5],
        now() - make_interval(secs => i * 120)
      FROM generate_series(1, 1500) AS i`);
    await q("INSERT INTO conversations (channel, created_at) VALUES ('voice', now() + interval '2 hours')");
    // An agent without usage rows: its owner is the client its activity names.
    await q(`INSERT INTO agents (id, slug, name, system_prompt, model, enabled) VALUES ('${uuidFrom('orphan-agent')}', 'orphan', 'Orphan', 'x', 'gpt-4o-mini', true)`);
    await q(`INSERT INTO activity_log (activity_type, action, client_id, agent_id, created_at)
      VALUES ('sidekick_created', 'create', (SELECT id FROM clients ORDER BY id LIMIT 1 OFFSET 2), '${uuidFrom('orphan-agent')}', now() - interval '3 days')`);
    await q(`INSERT INTO conversations (agent_id, channel, created_at) SELECT '${uuidFrom('orphan-agent')}', 'text', now() - make_interval(secs => i * 300) FROM generate_series(1, 50) AS i`);
    // A deleted agent without usage rows: only its activity names its client (the bulk path hands these to map()).
    await q(`INSERT INTO activity_log (activity_type, action, client_id, agent_id, created_at)
      VALUES ('sidekick_deleted', 'delete', (SELECT id FROM clients ORDER BY id LIMIT 1 OFFSET 1), '${uuidFrom('ghost-agent')}', now() - interval '4 days')`);
    await q(`INSERT INTO conversations (agent_id, channel, created_at) SELECT '${uuidFrom('ghost-agent')}', 'voice', now() - make_interval(secs => i * 400) FROM generate_series(1, 30) AS i`);
  },
  async more(db) {
    await db.pool.query(`INSERT INTO activity_log (activity_type, action, created_at) SELECT 'ability_run', 'run', now() - make_interval(secs => i * 0.05) FROM generate_series(1, 400) AS i`);
    await db.pool.query(`INSERT INTO livekit_events (event_type, room_name, duration, created_at) SELECT 'room_finished', 'later', i, now() - make_interval(secs => i * 0.05) FROM generate_series(1, 400) AS i`);
    await db.pool.query(`INSERT INTO conversations (channel, created_at) SELECT 'text', now() - make_interval(secs => i * 0.05) FROM generate_series(1, 400) AS i`);
  },
  async exercised(db, rowByRow) {
    const clientAt = async (offset: number) => (await db.pool.query<{ name: string }>('SELECT name FROM clients ORDER BY id LIMIT 1 OFFSET $1', [offset])).rows[0]!.name;
    const activity = rowByRow.tables.activity as { event_type: string }[];
    expect(activity.filter((a) => a.event_type === 'voice_session_finished').length).toBeGreaterThan(500);
    expect(activity.filter((a) => a.event_type === 'conversation_started').length).toBeGreaterThan(3000);
    expect(activity.filter((a) => a.event_type === 'ability_run').length).toBeGreaterThan(700);
    const conversations = rowByRow.tables.conversations as { agent: string; tenant: string }[];
    expect(conversations.length).toBeGreaterThan(3000);
    expect(new Set(conversations.filter((c) => c.agent === 'orphan').map((c) => c.tenant))).toEqual(new Set([await clientAt(2)]));
    expect(new Set(conversations.filter((c) => c.agent === uuidFrom('ghost-agent')).map((c) => c.tenant))).toEqual(new Set([await clientAt(1)]));
    expect(conversations.some((c) => c.tenant === 'unattributed')).toBe(true);
  },
});
