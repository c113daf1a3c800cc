// The bulk backfill stores and counts exactly what the row-by-row backfill does. For each
// table with a bulk path (Claude Nexus Proxy's api_requests, LiteLLM's SpendLogs), one source
// table with every kind of row the mapping treats specially (for the proxy: errors from the
// body, proxy errors, rate-limit warnings, conversations, subtasks, NULL and negative values,
// unknown models, future timestamps, microsecond timestamps; for LiteLLM: failures with and
// without a status code, missing teams, odd spend and usage values) is backfilled three ways,
// each into its own ClickHouse database of one embedded store: row by row, bulk through a file
// ClickHouse reads, bulk through a streamed insert. Tables, metric counters, quality counts and
// stream statuses must be equal.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { API_REQUEST_COLUMNS, apiRequestRows, insertRows, uuidFrom } from '../embedded/seed.ts';
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
  metrics: SavedMetrics;
  quality: unknown;
  status: { rowsRead: number; rowsRejected: number; eventsEmitted: number };
}

interface BulkCase {
  name: string;
  schema: SourceName;
  source: { type: SourceName; batchSize: number };
  /** Stream id and the table's name in SQL. */
  stream: string;
  table: string;
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
          const status = pipeline.statuses().find((s) => s.id === c.stream)!;
          // Order of first occurrence differs between the paths; the counts must not.
          const quality = pipeline.quality.snapshot().map((q) => JSON.stringify(q)).sort();
          await pipeline.close();
          return {
            tables: {
              // The bulk path leaves fingerprint 0 (clickhouse/migrations/0008): compared without it.
              requests: await dump('SELECT * EXCEPT (ingested_at, fingerprint) FROM {db}.requests FINAL ORDER BY request_id'),
              messages: await dump('SELECT * EXCEPT ingested_at FROM {db}.messages FINAL ORDER BY message_id'),
              activity: await dump('SELECT * FROM {db}.activity_events FINAL ORDER BY event_id'),
              requestsDaily: await dump('SELECT day, tenant, source, model, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), toString(sum(cost_usd)), sum(tool_calls) FROM {db}.requests_daily GROUP BY ALL ORDER BY ALL'),
              messagesDaily: await dump('SELECT day, tenant, agent, channel, sum(messages) FROM {db}.messages_daily GROUP BY ALL ORDER BY ALL'),
              physical: await dump('SELECT (SELECT count() FROM {db}.requests) AS requests, (SELECT count() FROM {db}.messages) AS messages'),
            },
            metrics: metrics.saveStream(c.stream),
            quality,
            status: { rowsRead: status.rowsRead, rowsRejected: status.rowsRejected, eventsEmitted: status.eventsEmitted },
          };
        },
      };
    }

    beforeAll(async () => {
      db = await createTestDatabase({ schemas: [c.schema] });
      stateDir = mkdtempSync(join(tmpdir(), 'tw-bulk-'));
      await c.seed(db);
      await db.pool.query(`ANALYZE ${c.table}`);
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
      const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${c.table}`);
      expect(outcomes.rows!.status.rowsRead).toBe(rows[0]!.n);
      expect(outcomes.rows!.status.rowsRejected).toBeGreaterThan(0);
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
        expect(Object.keys(actual.metrics).sort()).toEqual(Object.keys(expected.metrics).sort());
        for (const [key, series] of Object.entries(expected.metrics)) {
          const mine = new Map(actual.metrics[key as keyof SavedMetrics]!.map((s) => [s[0].join('|'), s]));
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
      });
    }
  });
}

bulkEquivalence({
  name: 'Claude Nexus Proxy api_requests',
  schema: 'claude-nexus-proxy',
  source: { type: 'claude-nexus-proxy', batchSize: 700 },
  stream: 'claude-nexus-proxy/api_requests',
  table: 'api_requests',
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
  name: 'LiteLLM SpendLogs',
  schema: 'litellm',
  source: { type: 'litellm', batchSize: 700 },
  stream: 'litellm/LiteLLM_SpendLogs',
  table: '"LiteLLM_SpendLogs"',
  async seed(db) {
    await writeLitellmCalls(db.pool, { count: 2500, seed: 21, start: Date.now() - 7 * 24 * 3_600_000 - 60_000, stepMs: (7 * 24 * 3_600_000) / 2500, errorLogs: false });
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
  },
  async more(db) {
    await writeLitellmCalls(db.pool, { count: 600, seed: 22, start: Date.now() - 50_000 - 60_000, stepMs: 50_000 / 600, errorLogs: false });
  },
  async exercised(db, rowByRow) {
    const { rows } = await db.pool.query<{ failed: number; odd: number }>(`SELECT count(*) FILTER (WHERE status = 'failure')::int AS failed,
      count(*) FILTER (WHERE spend = 'NaN' OR spend < 0 OR prompt_tokens < 0)::int AS odd FROM "LiteLLM_SpendLogs"`);
    expect(rows[0]!.failed).toBeGreaterThan(50);
    expect(rows[0]!.odd).toBeGreaterThan(10);
    expect(rowByRow.tables.requests!.length).toBeGreaterThan(2500);
  },
});
