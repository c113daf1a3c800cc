// LiteLLM on its real schema (the tables as Prisma creates them from schema.prisma), written
// the way the proxy writes them: one SpendLogs row per call with the spend LiteLLM computed,
// '' for a missing team and end user, failures as status 'failure' with their error class in
// metadata, and error-log rows (fresh uuids, no link to the SpendLogs row) for calls that could
// not reach a deployment. Every metric and ClickHouse table tokenwatch fills from LiteLLM is
// compared with SQL on the source.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { samples, value } from '../testing/metrics-text.ts';
import { Config } from '../config/schema.ts';
import type { EventStore } from '../store/clickhouse.ts';
import { backfillOnce } from '../testing/event-store.ts';
import { writeLitellmCalls } from '../testing/litellm-calls.ts';

/** tokenwatch's tenant and model of a SpendLogs row, in SQL. */
const TENANT = "coalesce(nullif(team_id, ''), nullif(organization_id, ''), 'default')";
const MODEL = "coalesce(nullif(model, ''), nullif(model_group, ''), 'unknown')";

describe('LiteLLM truth (real DDL, the proxy\'s write pattern)', () => {
  let db: TestDatabase;
  let store: EventStore;
  let stateDir: string;
  let text: string;

  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['litellm'] });
    const written = await writeLitellmCalls(db.pool, { count: 1200, seed: 7, start: Date.now() - 3 * 24 * 3_600_000, stepMs: 200_000, errorLogs: true });
    expect(written.errorLogs).toBeGreaterThan(0);

    stateDir = mkdtempSync(join(tmpdir(), 'tw-litellm-truth-'));
    let quality: unknown[];
    ({ store, text, quality } = await backfillOnce(Config.parse({ stateDir, sources: [{ type: 'litellm', name: 'litellm', databaseUrl: db.url }] })));
    expect(quality).toEqual([]);
  }, 120_000);

  afterAll(async () => {
    await store?.close();
    await db?.drop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  it('requests, tokens and cost per tenant and model equal SQL on /metrics and in ClickHouse (FINAL and without)', async () => {
    const { rows } = await db.pool.query<{ tenant: string; model: string; n: number; input: number; output: number; cache_read: number; spend: string }>(`
      SELECT ${TENANT} AS tenant, ${MODEL} AS model, count(*)::int AS n, sum(prompt_tokens)::int AS input, sum(completion_tokens)::int AS output,
             sum(coalesce((metadata->'usage_object'->>'cache_read_input_tokens')::int, 0))::int AS cache_read, sum(spend)::text AS spend
      FROM "LiteLLM_SpendLogs" GROUP BY 1, 2 ORDER BY 1, 2`);
    expect(rows.map((r) => r.tenant)).toContain('default');
    expect(rows.map((r) => r.tenant)).toContain('org-direct');
    const stored = async (final: string) => new Map((await store.query<{ tenant: string; model: string; n: number; input: number; output: number; cache_read: number; cost: string }>(`
      SELECT tenant, model, toUInt32(count()) AS n, toUInt32(sum(input_tokens)) AS input, toUInt32(sum(output_tokens)) AS output,
             toUInt32(sum(cache_read_tokens)) AS cache_read, toString(sum(cost_usd)) AS cost
      FROM tokenwatch.requests ${final} GROUP BY tenant, model`)).map((r) => [`${r.tenant}/${r.model}`, r]));
    for (const table of [await stored('FINAL'), await stored('')]) {
      expect(table.size).toBe(rows.length);
      for (const r of rows) {
        const s = table.get(`${r.tenant}/${r.model}`)!;
        expect({ n: s.n, input: s.input, output: s.output, cache_read: s.cache_read }, `${r.tenant}/${r.model}`).toEqual({ n: r.n, input: r.input, output: r.output, cache_read: r.cache_read });
        expect(Number(s.cost)).toBeCloseTo(Number(r.spend), 8);
      }
    }
    for (const r of rows) {
      const labels = { source: 'litellm', tenant: r.tenant, model: r.model };
      const requests = samples(text, 'tokenwatch_requests_total').filter((s) => s.labels.tenant === r.tenant && s.labels.model === r.model).reduce((n, s) => n + s.value, 0);
      expect(requests, `${r.tenant}/${r.model} requests`).toBe(r.n);
      expect(value(text, 'tokenwatch_tokens_total', { ...labels, type: 'input' })).toBe(r.input);
      expect(value(text, 'tokenwatch_tokens_total', { ...labels, type: 'output' })).toBe(r.output);
      if (r.cache_read > 0) expect(value(text, 'tokenwatch_tokens_total', { ...labels, type: 'cache_read' })).toBe(r.cache_read);
      expect(value(text, 'tokenwatch_cost_usd_total', labels)).toBeCloseTo(Number(r.spend), 8);
    }
  });

  it('the daily rollup equals SQL per day', async () => {
    const { rows } = await db.pool.query<{ day: string; n: number; output: number }>(`
      SELECT to_char("startTime", 'YYYY-MM-DD') AS day, count(*)::int AS n, sum(completion_tokens)::int AS output FROM "LiteLLM_SpendLogs" GROUP BY 1 ORDER BY 1`);
    const daily = await store.query<{ day: string; n: number; output: number }>(
      'SELECT toString(day) AS day, toUInt32(sum(requests)) AS n, toUInt32(sum(output_tokens)) AS output FROM tokenwatch.requests_daily GROUP BY day ORDER BY day');
    expect(daily).toEqual(rows);
  });

  it('a failed call is one request and one error, by error class and status class; error logs add no request', async () => {
    const { rows } = await db.pool.query<{ tenant: string; model: string; error: string; code: string; n: number }>(`
      SELECT ${TENANT} AS tenant, ${MODEL} AS model, metadata->'error_information'->>'error_class' AS error, metadata->'error_information'->>'error_code' AS code, count(*)::int AS n
      FROM "LiteLLM_SpendLogs" WHERE status = 'failure' GROUP BY 1, 2, 3, 4`);
    expect(rows.length).toBeGreaterThan(3);
    for (const r of rows) {
      expect(value(text, 'tokenwatch_errors_total', { source: 'litellm', tenant: r.tenant, model: r.model, error_type: r.error }), `${r.tenant}/${r.model}/${r.error}`).toBe(r.n);
    }
    const byClass = await db.pool.query<{ class: string; n: number }>(`
      SELECT CASE WHEN status = 'success' THEN '2xx' ELSE left(metadata->'error_information'->>'error_code', 1) || 'xx' END AS class, count(*)::int AS n
      FROM "LiteLLM_SpendLogs" GROUP BY 1`);
    for (const r of byClass.rows) {
      const got = samples(text, 'tokenwatch_requests_total').filter((s) => s.labels.status_class === r.class).reduce((n, s) => n + s.value, 0);
      expect(got, r.class).toBe(r.n);
    }
    const total = await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM "LiteLLM_SpendLogs"');
    expect(samples(text, 'tokenwatch_requests_total').reduce((n, s) => n + s.value, 0)).toBe(total.rows[0]!.n);
    // No label carries a model only the error log names.
    const models = new Set((await db.pool.query<{ m: string }>(`SELECT DISTINCT ${MODEL} AS m FROM "LiteLLM_SpendLogs"`)).rows.map((r) => r.m));
    for (const s of samples(text, 'tokenwatch_requests_total')) expect(models.has(s.labels.model!), s.labels.model).toBe(true);
    const errors = await store.query<{ n: number }>("SELECT toUInt32(count()) AS n FROM tokenwatch.activity_events FINAL WHERE event_type = 'error'");
    expect(errors[0]!.n).toBe(rows.reduce((n, r) => n + r.n, 0));
  });

  it('error-log rows are failed-call details: one activity each, with exception type and status code', async () => {
    const { rows } = await db.pool.query<{ id: string; exception_type: string; status_code: string }>('SELECT request_id AS id, exception_type, status_code FROM "LiteLLM_ErrorLogs" ORDER BY 1');
    expect(value(text, 'tokenwatch_activities_total', { source: 'litellm', tenant: 'default', type: 'llm_call_failed' })).toBe(rows.length);
    const stored = await store.query<{ id: string; details: string }>("SELECT event_id AS id, details FROM tokenwatch.activity_events FINAL WHERE event_type = 'llm_call_failed' ORDER BY id");
    expect(stored.map((s) => s.id)).toEqual(rows.map((r) => `llm_call_failed:${r.id}`));
    for (const [i, s] of stored.entries()) {
      const details = JSON.parse(s.details) as { exception_type: string; status_code: number };
      expect(details.exception_type).toBe(rows[i]!.exception_type);
      expect(details.status_code).toBe(Number(rows[i]!.status_code));
    }
  });

  it('durations and time to first token: one observation per call that has them', async () => {
    const { rows } = await db.pool.query<{ calls: number; streamed: number }>(`SELECT count(*)::int AS calls, count("completionStartTime")::int AS streamed FROM "LiteLLM_SpendLogs"`);
    const count = (name: string) => samples(text, name).reduce((n, s) => n + s.value, 0);
    expect(count('gen_ai_client_operation_duration_seconds_count')).toBe(rows[0]!.calls);
    expect(count('gen_ai_server_time_to_first_token_seconds_count')).toBe(rows[0]!.streamed);
  });
});
