// Writers that behave like the real applications, against their real DDL, read while they
// write: after catch-up, ClickHouse (FINAL, and the daily rollups that dashboards read
// without FINAL) and every counter on /metrics equal SQL on the source.
//
//  - Claude Nexus Proxy (services/proxy/src/storage/writer.ts): storeRequest INSERTs the row
//    without a response, storeResponse UPDATEs it with status and tokens, and
//    markTaskToolInvocations UPDATEs it again; 50 requests/s with 0, 5 and 500 ms between the
//    statements; some responses come only after maxCommitDelay, some never.
//  - Sidekick Forge's agent: a voice reply is inserted with its first chunk and updated as
//    chunks stream in, polls falling between the chunks.
//  - ORM-style savepoints (Django's nested atomic()) in transactions held open across polls,
//    one savepoint in five rolled back.
//
// Each runs three times, polled, in mode: replication (on a cluster with wal_level=logical),
// and in mode: replication with largeTransactionRows: 1 (every transaction the server streams
// is read back by xmin, replication-rows.ts), and must give the same tables and counters.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { FileCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { Pipeline } from './pipeline.ts';
import type { ConfigInput } from '../config/schema.ts';
import { replicationName } from '../reader/replication/slot.ts';
import { untilChangeStream } from '../testing/change-stream.ts';
import { startPgCluster, type PgCluster } from '../testing/pg-cluster.ts';

type Mode = 'polling' | 'replication';

/** A run of the suite: how the source is read, and the ClickHouse database it writes. */
interface Variant {
  name: string;
  mode: Mode;
  database: string;
  largeTransactionRows?: number;
}

const VARIANTS: Variant[] = [
  { name: 'polling', mode: 'polling', database: 'tw_write_patterns' },
  { name: 'replication', mode: 'replication', database: 'tw_write_patterns_replication' },
  { name: 'replication, streamed transactions read by xmin', mode: 'replication', database: 'tw_write_patterns_xmin', largeTransactionRows: 1 },
];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Harness {
  pipeline: Pipeline;
  metrics: MetricsRegistry;
  /**
   * Polled: polls every stream of the first source until `until` resolves, then `after` more
   * times. Replication: waits for `until`, then until the slot has confirmed everything written.
   */
  pollWhile(until: Promise<unknown>, after?: number): Promise<void>;
  text(): string;
  close(): Promise<void>;
}

async function harness(store: EventStore, db: TestDatabase, source: NonNullable<ConfigInput['sources']>[number], variant: Variant): Promise<Harness> {
  const { mode, largeTransactionRows } = variant;
  const stateDir = mkdtempSync(join(tmpdir(), 'tw-patterns-'));
  // Slots are the cluster's: each database's source gets a name (and slot) of its own.
  const config = testConfig(db.url, { sources: [{ ...source, mode, name: db.name, ...(largeTransactionRows === undefined ? {} : { largeTransactionRows }) }], stateDir, clickhouse: { database: variant.database } });
  const metrics = new MetricsRegistry();
  const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(store, 'full')], store: new FileCheckpointStore(stateDir), autoSources: false, metrics });
  const pollAll = async () => {
    for (const entry of pipeline.sources[0]!.streams) await pipeline.pollStream(entry);
  };
  if (mode === 'replication') {
    pipeline.start();
    // Writers that begin while the slot is being created would arrive through the initial load.
    await untilChangeStream(db.pool, db.name);
  }
  /** The slot has confirmed all WAL written so far (what was streamed is handled), twice in a row 300 ms apart. */
  const caughtUp = async () => {
    for (let stable = 0, waited = 0; stable < 2 && waited < 30_000; waited += 100) {
      const { rows } = await db.pool.query<{ behind: boolean }>(
        'SELECT coalesce(confirmed_flush_lsn < pg_current_wal_flush_lsn(), true) AS behind FROM pg_replication_slots WHERE slot_name = $1',
        [replicationName(db.name)],
      );
      stable = rows[0]?.behind === false ? stable + 1 : 0;
      await sleep(stable > 0 ? 300 : 100);
    }
  };
  return {
    pipeline, metrics,
    async pollWhile(until, after = 1) {
      if (mode === 'replication') {
        await until;
        await caughtUp();
        return;
      }
      let done = false;
      void until.finally(() => (done = true));
      while (!done) {
        await pollAll();
        await sleep(100);
      }
      await until;
      for (let i = 0; i < after; i++) await pollAll();
    },
    text: () => prometheusText(metrics.collect(pipeline.statuses(), [], [])),
    async close() {
      await pipeline.close();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

for (const variant of VARIANTS) describe(`real write patterns, ${variant.name}`, () => {
  const { mode, database: DB } = variant;
  let store: EventStore;
  let stateDir: string;
  let cluster: PgCluster | undefined;
  const database = (schema: 'claude-nexus-proxy' | 'sidekick-forge') => createTestDatabase({ schemas: [schema], cluster });
  beforeAll(async () => {
    // logical_decoding_work_mem at its minimum: large transactions are streamed while they run (protocol version 2).
    if (mode === 'replication') cluster = await startPgCluster({ settings: { wal_level: 'logical', max_replication_slots: '8', max_wal_senders: '8', logical_decoding_work_mem: '64kB' } });
    stateDir = mkdtempSync(join(tmpdir(), 'tw-patterns-store-'));
    store = await openStore(testConfig('postgres://unused', { stateDir, clickhouse: { database: DB } }));
    await store.command(`DROP DATABASE IF EXISTS ${DB} SYNC`);
    await store.migrate();
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    await cluster?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  describe('Claude Nexus Proxy: INSERT, then UPDATE with the response, then UPDATE with Task tool invocations', () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await database('claude-nexus-proxy');
    });
    afterAll(async () => {
      await db.drop();
    });

    /** One request as the proxy writes it: three statements, each its own transaction. */
    async function proxyRequest(pool: pg.Pool, n: number, pauseMs: number, response: 'now' | 'late' | 'never'): Promise<void> {
      const id = randomUUID();
      await pool.query(
        `INSERT INTO api_requests (request_id, domain, timestamp, method, path, headers, body, model, request_type, branch_id, message_count)
         VALUES ($1, $2, now(), 'POST', '/v1/messages', '{}', $3, 'claude-sonnet-4-5-20250929', 'inference', 'main', 1)
         ON CONFLICT (request_id) DO NOTHING`,
        [id, n % 2 === 0 ? 'acme.example.com' : 'globex.example.com', JSON.stringify({ messages: [{ role: 'user', content: `question ${n}` }] })],
      );
      if (response === 'never') return;
      // Late: after maxCommitDelay (2 s) and the second it may take to be found overdue.
      await sleep(response === 'late' ? 4500 : pauseMs);
      const input = 100 + (n % 37);
      const output = 10 + (n % 11);
      await pool.query(
        `UPDATE api_requests SET response_status = $2, response_headers = '{}', response_body = $3, response_streaming = false,
           input_tokens = $4::int, output_tokens = $5::int, total_tokens = $4::int + $5::int, first_token_ms = 120, duration_ms = 900, error = NULL,
           tool_call_count = $6, cache_creation_input_tokens = 0, cache_read_input_tokens = 0, usage_data = '{}'
         WHERE request_id = $1`,
        [id, n % 10 === 0 ? 529 : 200, JSON.stringify({ content: [{ type: 'text', text: `answer ${n}` }] }), input, output, n % 3 === 0 ? 1 : 0],
      );
      if (n % 3 !== 0) return;
      await sleep(pauseMs);
      await pool.query('UPDATE api_requests SET task_tool_invocation = $2 WHERE request_id = $1', [id, JSON.stringify([{ name: 'Task', input: { prompt: `sub ${n}` } }])]);
    }

    it('counts each request once and stores its newest version, at 50 requests/s with 0, 5 and 500 ms between the statements', async () => {
      const h = await harness(store, db, { type: 'claude-nexus-proxy', maxCommitDelay: '2s', sweepWindow: '1m', sweepInterval: '1s', pollInterval: '100ms', reconcileInterval: '0s' }, variant);
      try {
        const writes = (async () => {
          const inFlight: Promise<void>[] = [];
          let n = 0;
          for (const pauseMs of [0, 5, 500]) {
            // 50 requests/s for 2 s at each pause; one in 25 gets its response after
            // maxCommitDelay, one in 50 never does.
            for (let i = 0; i < 100; i++, n++) {
              const response = i % 50 === 7 ? 'never' : i % 25 === 3 ? 'late' : 'now';
              inFlight.push(proxyRequest(db.pool, n, pauseMs, response));
              await sleep(20);
            }
          }
          await Promise.all(inFlight);
        })();
        await h.pollWhile(writes);
        // Past maxCommitDelay and the sweep interval: the incomplete rows are delivered as they
        // are, the late responses as revisions.
        await sleep(3200);
        await h.pollWhile(Promise.resolve(), 2);

        const truth = (await db.pool.query<{ n: number; complete: number; input: string; output: string }>(
          `SELECT count(*)::int AS n, count(response_status)::int AS complete, sum(input_tokens)::text AS input, sum(output_tokens)::text AS output FROM api_requests`,
        )).rows[0]!;
        expect(truth.n).toBe(300);
        expect(truth.complete).toBe(300 - 6);
        const final = (await store.query<{ n: string; input: string; output: string; unknown: string }>(
          `SELECT count() AS n, sum(input_tokens) AS input, sum(output_tokens) AS output, countIf(http_status = 0) AS unknown FROM ${DB}.requests FINAL WHERE source = 'claude-nexus-proxy'`,
        ))[0]!;
        expect({ n: Number(final.n), input: String(final.input), output: String(final.output), unknown: Number(final.unknown) }).toEqual({ n: 300, input: truth.input, output: truth.output, unknown: 6 });
        const rollup = (await store.query<{ n: string; input: string; output: string }>(
          `SELECT sum(requests) AS n, sum(input_tokens) AS input, sum(output_tokens) AS output FROM ${DB}.requests_daily WHERE source = 'claude-nexus-proxy'`,
        ))[0]!;
        expect({ n: Number(rollup.n), input: String(rollup.input), output: String(rollup.output) }).toEqual({ n: 300, input: truth.input, output: truth.output });

        const text = h.text();
        expect(sumSamples(text, 'tokenwatch_requests_total')).toBe(300);
        expect(sumSamples(text, 'tokenwatch_tokens_total', 'type="input"')).toBe(Number(truth.input));
        expect(sumSamples(text, 'tokenwatch_tokens_total', 'type="output"')).toBe(Number(truth.output));
        // 12 responses came after maxCommitDelay (incomplete, then revised), 6 never came.
        expect(sumSamples(text, 'tokenwatch_source_rows_incomplete_total')).toBe(18);
        expect(sumSamples(text, 'tokenwatch_source_rows_revised_total')).toBe(12);
        // Only the never-answered and late ones are "unknown"; the others were counted complete.
        expect(sumSamples(text, 'tokenwatch_requests_total', 'status_class="unknown"')).toBe(18);
      } finally {
        await h.close();
      }
    }, 90_000);
  });

  describe('Sidekick Forge: a voice reply updated as its chunks stream in', () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await database('sidekick-forge');
    });
    afterAll(async () => {
      await db.drop();
    });

    it('counts each transcript row once and stores its final content', async () => {
      const h = await harness(store, db, { type: 'sidekick-forge', maxCommitDelay: '5s', sweepWindow: '1m', sweepInterval: '1s', pollInterval: '100ms', reconcileInterval: '0s' }, variant);
      try {
        const agent = randomUUID();
        const replies = Array.from({ length: 12 }, async (_, r) => {
          const conversation = randomUUID();
          await db.pool.query("INSERT INTO conversations (id, session_id, agent_id, user_id, channel) VALUES ($1, $1, $2, $3, 'voice')", [conversation, agent, randomUUID()]);
          await db.pool.query(`INSERT INTO conversation_transcripts (conversation_id, session_id, agent_id, role, content, transcript, sequence, source)
            VALUES ($1, $1, $2, 'user', $3, $3, 0, 'voice')`, [conversation, agent, `question ${r}`]);
          const { rows } = await db.pool.query<{ id: string }>(`INSERT INTO conversation_transcripts (conversation_id, session_id, agent_id, role, content, transcript, sequence, source)
            VALUES ($1, $1, $2, 'assistant', $3, $3, 1, 'voice') RETURNING id`, [conversation, agent, `answer ${r} part1`]);
          let text = `answer ${r} part1`;
          for (let chunk = 2; chunk <= 6; chunk++) {
            await sleep(150 + ((r * 37 + chunk * 11) % 200));
            text += ` part${chunk}`;
            await db.pool.query('UPDATE conversation_transcripts SET content = $2, transcript = $2, updated_at = now() WHERE id = $1', [rows[0]!.id, text]);
          }
        });
        await h.pollWhile(Promise.all(replies), 2);

        const truth = (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM conversation_transcripts')).rows[0]!;
        expect(truth.n).toBe(24);
        const partial = await store.query<{ n: string }>(
          `SELECT count() AS n FROM ${DB}.messages FINAL WHERE source = 'sidekick-forge' AND role = 'assistant' AND content NOT LIKE '%part6'`,
        );
        expect(Number(partial[0]!.n)).toBe(0);
        const stored = await store.query<{ n: string }>(`SELECT count() AS n FROM ${DB}.messages FINAL WHERE source = 'sidekick-forge'`);
        expect(Number(stored[0]!.n)).toBe(24);
        const rollup = await store.query<{ n: string }>(`SELECT sum(messages) AS n FROM ${DB}.messages_daily WHERE source = 'sidekick-forge'`);
        expect(Number(rollup[0]!.n)).toBe(24);
        const text = h.text();
        expect(sumSamples(text, 'tokenwatch_conversation_messages_total', 'source="sidekick-forge"')).toBe(24);
        expect(sumSamples(text, 'tokenwatch_source_rows_revised_total', 'table="conversation_transcripts"')).toBeGreaterThan(0);
      } finally {
        await h.close();
      }
    }, 60_000);
  });

  describe('savepoints in transactions held open across polls', () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await database('claude-nexus-proxy');
    });
    afterAll(async () => {
      await db.drop();
    });

    it('delivers every row of a released savepoint once, and none of a rolled-back one', async () => {
      const h = await harness(store, db, { type: 'claude-nexus-proxy', maxCommitDelay: '30s', sweepWindow: '2m', sweepInterval: '1s', pollInterval: '100ms', reconcileInterval: '0s' }, variant);
      try {
        const writers = Array.from({ length: 4 }, async () => {
          const client = await db.pool.connect();
          try {
            await client.query('BEGIN');
            for (let i = 0; i < 90; i++) {
              await client.query('SAVEPOINT s');
              await client.query(
                // With the request's body, as the proxy stores it: about 100 kB a transaction.
                `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens, body)
                 VALUES ($1, 'savepoint.example.com', now(), 'claude-sonnet-4-5-20250929', 'inference', 200, $2, 3,
                   jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', (SELECT string_agg(md5(random()::text), ' ') FROM generate_series(1, 40))))))`,
                [randomUUID(), 10 + i],
              );
              await client.query(i % 5 === 4 ? 'ROLLBACK TO SAVEPOINT s' : 'RELEASE SAVEPOINT s');
              if (i % 10 === 9) await sleep(120);
            }
            await client.query('COMMIT');
          } finally {
            client.release();
          }
        });
        await h.pollWhile(Promise.all(writers), 2);
        const truth = (await db.pool.query<{ n: number; input: string }>('SELECT count(*)::int AS n, sum(input_tokens)::text AS input FROM api_requests')).rows[0]!;
        expect(truth.n).toBe(4 * 72);
        const final = (await store.query<{ n: string; input: string }>(`SELECT count() AS n, sum(input_tokens) AS input FROM ${DB}.requests FINAL WHERE tenant = 'savepoint.example.com'`))[0]!;
        expect({ n: Number(final.n), input: String(final.input) }).toEqual({ n: truth.n, input: truth.input });
        const text = h.text();
        expect(sumSamples(text, 'tokenwatch_requests_total', 'tenant="savepoint.example.com"')).toBe(truth.n);
        expect(sumSamples(text, 'tokenwatch_tokens_total', 'tenant="savepoint.example.com"', 'type="input"')).toBe(Number(truth.input));
        // About 100 kB each, past logical_decoding_work_mem: the server streams these transactions.
        if (variant.largeTransactionRows !== undefined) expect(sumSamples(text, 'tokenwatch_source_xmin_scans_total')).toBeGreaterThan(0);
      } finally {
        await h.close();
      }
    }, 60_000);
  });
});
