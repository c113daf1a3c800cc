// One extreme value never stops a stream, and never vanishes without a counter. LiteLLM rows
// (real DDL) with a spend of 1e12, NaN, Infinity and -1 among ordinary rows: every row is
// one request, the odd spends are repaired to "cost unknown" and counted by reason, the stream
// stays up. Independently, a page ClickHouse refuses is split until the refused row is
// isolated: it goes to dead_letters with its id and the error, is counted, and the rest of the
// page is stored.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { samples, value } from '../testing/metrics-text.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { ClickHouseSink, refusedDataReason } from '../sinks/clickhouse-sink.ts';
import type { RequestEvent } from '../model/events.ts';

const ODD_SPENDS: Record<string, number | string> = { 'odd-huge': 1e12, 'odd-nan': 'NaN', 'odd-inf': 'Infinity', 'odd-negative': -1 };

describe('poison rows', () => {
  let db: TestDatabase;
  let store: EventStore;
  let stateDir: string;

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['litellm'] });
    stateDir = mkdtempSync(join(tmpdir(), 'tw-poison-'));
    store = await openStore(testConfig(db.url, { stateDir }));
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it.each([{ mode: 'row by row', bulk: false, database: 'tw_poison_rows' }, { mode: 'bulk', bulk: true, database: 'tw_poison_bulk' }])(
    'a spend of 1e12, NaN, Infinity or -1 is a request with an unknown cost, counted; the stream goes on ($mode)', async ({ bulk, database }) => {
    const insert = `INSERT INTO "LiteLLM_SpendLogs" (request_id, call_type, spend, prompt_tokens, completion_tokens, "startTime", "endTime", model, team_id, status)
      VALUES ($1, 'acompletion', $2, 10, 5, now() - make_interval(secs => $3), now() - make_interval(secs => $3) + interval '1 second', 'gpt-4o', 'team-a', 'success')`;
    if (!bulk) {
      for (let i = 0; i < 60; i++) await db.pool.query(insert, [`ok-${i}`, 0.001, 600 - i * 5]);
      // The odd rows sit between ordinary ones, on the same page.
      for (const [i, [id, spend]] of Object.entries(ODD_SPENDS).entries()) await db.pool.query(insert, [id, spend, 420 - i * 7]);
    }
    const chStore = await openStore(testConfig(db.url, { stateDir, clickhouse: { database } }));
    await chStore.migrate();
    const metrics = new MetricsRegistry();
    const config = testConfig(db.url, { stateDir, sources: [{ type: 'litellm', batchSize: 25 }], clickhouse: { database, bulkBackfill: bulk, bulkChunkRows: 1000 } });
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new ClickHouseSink(chStore, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false, metrics });
    await pipeline.backfill();
    const text = prometheusText(metrics.collect(pipeline.statuses(), pipeline.quality.snapshot(), [], pipeline.sinks()));
    await pipeline.close();

    expect(samples(text, 'tokenwatch_requests_total').reduce((n, s) => n + s.value, 0)).toBe(64);
    expect(value(text, 'tokenwatch_source_up', { table: 'LiteLLM_SpendLogs' })).toBe(1);
    expect(value(text, 'tokenwatch_source_rows_invalid_total', { table: 'LiteLLM_SpendLogs', action: 'repaired', reason: 'invalid_cost' })).toBe(3);
    expect(value(text, 'tokenwatch_source_rows_invalid_total', { table: 'LiteLLM_SpendLogs', action: 'repaired', reason: 'cost_out_of_range' })).toBe(1);
    expect(value(text, 'tokenwatch_cost_usd_total', { tenant: 'team-a' })).toBeCloseTo(0.06, 9);
    const stored = await chStore.query<{ id: string; known: boolean; cost: string }>(
      `SELECT request_id AS id, cost_known AS known, toString(cost_usd) AS cost FROM ${database}.requests FINAL WHERE request_id LIKE 'odd-%' ORDER BY id`);
    expect(stored).toEqual(Object.keys(ODD_SPENDS).sort().map((id) => ({ id, known: false, cost: '0' })));
    expect(await chStore.query(`SELECT toUInt32(count()) AS n FROM ${database}.requests FINAL`)).toEqual([{ n: 64 }]);
    expect(samples(text, 'tokenwatch_sink_rows_rejected_total')).toEqual([]);
    await chStore.close();
  });

  it('a row the store refuses is isolated, kept in dead_letters and counted; the rest of its page is stored', async () => {
    const sink = new ClickHouseSink(store, 'redacted');
    const request = (id: string, costUsd: number): RequestEvent => ({
      kind: 'request', source: 'litellm', tenant: 'team-b', requestId: id, conversationId: null, branchId: null, parentRequestId: null, parentTaskRequestId: null,
      isSubtask: false, account: null, user: null, model: 'gpt-4o', provider: 'openai', operation: 'chat', httpStatus: 200, errorType: null,
      inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd, cacheWrite1hTokens: 0, webSearchRequests: 0, serviceTier: null, costEstimateUsd: null, pricedAs: null, durationMs: 10, timeToFirstTokenMs: null, toolCalls: 0,
      streaming: false, rateLimitStatus: null, startedAt: '2026-11-30T10:00:00.000Z', endedAt: null,
    });
    // A value past the store-limit check (as if a mapper had not applied it).
    const page = Array.from({ length: 100 }, (_, i) => request(`page-${String(i).padStart(3, '0')}`, i === 37 ? 5e10 : 0.5));
    await sink.write(page);
    expect(await store.query("SELECT toUInt32(count()) AS n FROM tokenwatch.requests FINAL WHERE request_id LIKE 'page-%'")).toEqual([{ n: 99 }]);
    const dead = await store.query<{ row_id: string; target_table: string; reason: string; tenant: string; cost: number }>(
      "SELECT row_id, target_table, reason, tenant, JSONExtractFloat(row, 'cost_usd') AS cost FROM tokenwatch.dead_letters");
    expect(dead).toEqual([{ row_id: 'page-037', target_table: 'requests', reason: 'ARGUMENT_OUT_OF_BOUND', tenant: 'team-b', cost: 5e10 }]);
    expect(sink.rejectedRows()).toEqual([{ table: 'requests', reason: 'ARGUMENT_OUT_OF_BOUND', count: 1 }]);
    const metrics = new MetricsRegistry();
    const text = prometheusText(metrics.collect([], [], [], [{ sink: 'clickhouse', up: true, failures: 0, eventsWritten: 99, rowsRejected: sink.rejectedRows() }]));
    expect(value(text, 'tokenwatch_sink_rows_rejected_total', { sink: 'clickhouse', table: 'requests', reason: 'ARGUMENT_OUT_OF_BOUND' })).toBe(1);
    // The next process counts it too: the count comes from dead_letters, where the row is kept.
    const restarted = new ClickHouseSink(store, 'redacted');
    expect(restarted.rejectedRows()).toEqual([]);
    await restarted.restoreRejectedCounts();
    expect(restarted.rejectedRows()).toEqual([{ table: 'requests', reason: 'ARGUMENT_OUT_OF_BOUND', count: 1 }]);
  });

  it('an error that is not about the data (connection, server) is not a refusal: the write fails and the page is read again', () => {
    expect(refusedDataReason(new Error('connect ECONNREFUSED 127.0.0.1:8123'))).toBeUndefined();
    expect(refusedDataReason(Object.assign(new Error('Memory limit exceeded'), { type: 'MEMORY_LIMIT_EXCEEDED' }))).toBeUndefined();
    expect(refusedDataReason(Object.assign(new Error('Decimal value is too big'), { type: 'ARGUMENT_OUT_OF_BOUND' }))).toBe('ARGUMENT_OUT_OF_BOUND');
  });
});
