// A corpus of hostile rows in the real source tables of all three schemas (a SQL_ASCII
// database, so bytes that are not UTF-8 can be stored; primary keys dropped, so ids can
// repeat): NULL and negative tokens, unknown models, malformed and 200-deep JSON, 10 MB
// bodies, invalid UTF-8 and control characters, epoch-zero and year-9999 timestamps,
// duplicate ids, 10,000-character tenant names, quotes, backslashes and newlines in label
// values, SQL metacharacters. Read through the whole pipeline into ClickHouse and the
// metrics: nothing crashes, each bad row is counted by reason, every good row around them is
// exported, and `promtool check metrics` accepts /metrics. Then 5,000 distinct tenants keep
// the series under the configured caps with exact totals.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/databases.ts';
import { silentLogger, testConfig } from '../testing/fixtures.ts';
import { sumSamples } from '../testing/metrics-text.ts';
import { API_REQUEST_COLUMNS, SPEND_LOG_COLUMNS, apiRequestRows, insertRows, seedSidekickForge, spendLogRows, uuidFrom } from '../embedded/seed.ts';
import { Pipeline } from '../pipeline/pipeline.ts';
import { MemorySink } from '../sinks/memory-sink.ts';
import { ClickHouseSink } from '../sinks/clickhouse-sink.ts';
import { MemoryCheckpointStore } from '../reader/checkpoint-store.ts';
import { MetricsRegistry } from '../metrics/registry.ts';
import { prometheusText } from '../metrics/prometheus-text.ts';
import { openStore, type EventStore } from '../store/clickhouse.ts';
import { createMetricsRegistry } from '../cli/runtime.ts';
import type { RequestEvent, MessageEvent } from '../model/events.ts';
import { RowQuality } from './row-quality.ts';

const TEN_MB = 10 * 1024 * 1024;
const LONG_TENANT = `${'t'.repeat(9990)}.example`;
const SQL_META = "x'); DROP TABLE api_requests; --";
const QUOTED = 'q"uo\\te\nnew line';

/** promtool's verdict on a /metrics text: its exit code and what it printed. */
function promtoolCheckMetrics(text: string): { code: number; output: string } {
  try {
    return { code: 0, output: execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' }) };
  } catch (error) {
    const e = error as { status: number; stdout: string; stderr: string };
    return { code: e.status, output: `${e.stdout}${e.stderr}` };
  }
}

describe('hostile rows', () => {
  let db: TestDatabase;
  let store: EventStore;
  let stateDir: string;
  beforeAll(async () => {
    db = await createTestDatabase({ schemas: ['claude-nexus-proxy', 'sidekick-forge', 'litellm'], encoding: 'SQL_ASCII' });
    await db.pool.query(`ALTER TABLE api_requests DROP CONSTRAINT api_requests_pkey CASCADE; ALTER TABLE api_requests ALTER COLUMN domain DROP NOT NULL, ALTER COLUMN domain TYPE text, ALTER COLUMN model TYPE text;
      ALTER TABLE conversation_transcripts DROP CONSTRAINT conversation_transcripts_pkey CASCADE;
      ALTER TABLE "LiteLLM_SpendLogs" DROP CONSTRAINT "LiteLLM_SpendLogs_pkey" CASCADE; ALTER TABLE "LiteLLM_SpendLogs" ALTER COLUMN metadata TYPE text, ALTER COLUMN prompt_tokens DROP NOT NULL, ALTER COLUMN completion_tokens DROP NOT NULL`);
    stateDir = mkdtempSync(join(tmpdir(), 'tw-hostile-'));
  });
  afterAll(async () => {
    await store?.close();
    await db.drop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('every bad row is counted by reason, every good row around it is exported, and promtool accepts /metrics', async () => {
    const q = (sql: string, params: unknown[] = []) => db.pool.query(sql, params);
    const deep = (depth: number, leaf: unknown): unknown => (depth === 0 ? leaf : [deep(depth - 1, leaf)]);
    // ---- Claude Nexus Proxy: good rows, and hostile ones among them in time ----
    const good = apiRequestRows(60, { seed: 31, idPrefix: 'good-', spanMs: 3_600_000 });
    await insertRows(db.pool, 'api_requests', API_REQUEST_COLUMNS, good);
    const cnp = `INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens, conversation_id, body, response_body)`;
    const at = "now() - interval '10 minutes'";
    const bad = (kind: string) => uuidFrom(`cnp-${kind}`);
    const deepBody = JSON.stringify({ messages: [{ role: 'user', content: deep(200, 'leaf') }] });
    const cnpRows: [string, string, unknown[]][] = [
      ['null-tokens', `($1, 'acme.example.com', ${at}, 'claude-sonnet-4-5', 'inference', 200, NULL, NULL, NULL, NULL, NULL)`, []],
      ['negative-tokens', `($1, 'acme.example.com', ${at}, 'claude-sonnet-4-5', 'inference', 200, -5, 10, NULL, NULL, NULL)`, []],
      ['unknown-model', `($1, 'acme.example.com', ${at}, 'mystery-model-9', 'inference', 200, 10, 10, NULL, NULL, NULL)`, []],
      ['malformed-json', `($1, 'acme.example.com', ${at}, 'claude-sonnet-4-5', 'inference', 200, 1, 1, gen_random_uuid(), '"not an object"'::jsonb, '[1, {"error": 7}]'::jsonb)`, []],
      ['deep-json', `($1, 'acme.example.com', ${at}, 'claude-sonnet-4-5', 'inference', 200, 1, 1, gen_random_uuid(), $2::jsonb, $2::jsonb)`, [deepBody]],
      ['ten-mb-body', `($1, 'acme.example.com', ${at}, 'claude-sonnet-4-5', 'inference', 200, 1, 1, gen_random_uuid(), jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', repeat('x', ${TEN_MB})))), NULL)`, []],
      ['invalid-utf8', `($1, 'acme.example.com', ${at}, E'claude-sonnet-4-5\\xff', 'inference', 200, 1, 1, gen_random_uuid(), jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', 'user', 'content', E'caf\\xe9 \\xfe'))), NULL)`, []],
      ['control-chars', `($1, E'ctl\\x01\\x07\\x1b[31m.example.com', ${at}, 'claude-sonnet-4-5', 'inference', 200, 1, 1, NULL, NULL, NULL)`, []],
      ['epoch-zero', `($1, 'acme.example.com', 'epoch', 'claude-sonnet-4-5', 'inference', 200, 1, 1, NULL, NULL, NULL)`, []],
      ['year-9999', `($1, 'acme.example.com', '9999-12-31 23:59:59+00', 'claude-sonnet-4-5', 'inference', 200, 1, 1, NULL, NULL, NULL)`, []],
      ['duplicate-id', `($1, 'acme.example.com', '2026-12-01 00:00:00+00', 'claude-sonnet-4-5', 'inference', 200, 1, 1, NULL, NULL, NULL), ($1, 'acme.example.com', '2026-12-01 00:00:00+00', 'claude-sonnet-4-5', 'inference', 200, 1, 1, NULL, NULL, NULL)`, []],
      ['long-tenant', `($1, $2, ${at}, 'claude-sonnet-4-5', 'inference', 200, 1, 1, NULL, NULL, NULL)`, [LONG_TENANT]],
      ['quotes-newlines', `($1, $2, ${at}, $2, 'inference', 200, 1, 1, NULL, NULL, NULL)`, [QUOTED]],
      ['sql-meta', `($1, $2, ${at}, 'claude-sonnet-4-5', 'inference', 200, 1, 1, gen_random_uuid(), jsonb_build_object('messages', jsonb_build_array(jsonb_build_object('role', $2::text, 'content', $2::text))), NULL)`, [SQL_META]],
      ['null-tenant', `($1, NULL, ${at}, 'claude-sonnet-4-5', 'inference', 200, 1, 1, NULL, NULL, NULL)`, []],
      ['bad-status', `($1, 'acme.example.com', ${at}, 'claude-sonnet-4-5', 'inference', -99999, 1, 1, NULL, NULL, NULL)`, []],
    ];
    for (const [kind, values, extra] of cnpRows) await q(`${cnp} VALUES ${values}`, [bad(kind), ...extra]);

    // ---- Sidekick Forge transcripts ----
    await seedSidekickForge(db.pool, { conversations: 20 });
    const agent = uuidFrom('agent-0-0');
    await q(`INSERT INTO clients (id, name, tier) VALUES ($1, $2, 'adventurer')`, [uuidFrom('client-long'), LONG_TENANT]);
    await q(`INSERT INTO agents (id, slug, name, system_prompt) VALUES ($1, $2, 'Quoted agent', 'p')`, [uuidFrom('agent-long'), QUOTED]);
    // The platform ties an agent to its client in agent_usage (and logs its creation).
    await q(`INSERT INTO activity_log (activity_type, action, client_id, agent_id) VALUES ('sidekick_created', 'create', $1, $2)`, [uuidFrom('client-long'), uuidFrom('agent-long')]);
    const tr = 'INSERT INTO conversation_transcripts (id, conversation_id, agent_id, role, content, transcript, sequence, created_at)';
    const sk = (kind: string) => uuidFrom(`sk-${kind}`);
    const conv = uuidFrom('conversation-0');
    const skRows: [string, string, unknown[]][] = [
      ['null-content', `($1, $2, $3, 'user', NULL, NULL, 1, ${at})`, []],
      ['invalid-utf8', `($1, $2, $3, 'user', E'caf\\xe9 \\xff\\xfe', NULL, 1, ${at})`, []],
      ['ten-mb', `($1, $2, $3, 'user', repeat('y', ${TEN_MB}), NULL, 1, ${at})`, []],
      ['control-role', `($1, $2, $3, E'ro\\x01le\\x1f', 'hi', NULL, 1, ${at})`, []],
      ['epoch-zero', `($1, $2, $3, 'user', 'old', NULL, 1, 'epoch')`, []],
      ['year-9999', `($1, $2, $3, 'user', 'future', NULL, 1, '9999-12-31 23:59:59+00')`, []],
      ['duplicate-id', `($1, $2, $3, 'user', 'twice', NULL, 1, '2026-12-01 00:00:00+00'), ($1, $2, $3, 'user', 'twice', NULL, 1, '2026-12-01 00:00:00+00')`, []],
      ['null-conversation', `($1, NULLIF($2::uuid, $2::uuid), $3, 'user', 'orphan', NULL, 1, ${at})`, []],
      ['long-tenant', `($1, $2, $3, 'user', 'from the long client', NULL, 1, ${at})`, []],
      ['quotes-role', `($1, $2, $3, $4, 'quoted role', NULL, 1, ${at})`, [QUOTED]],
      ['sql-meta', `($1, $2, $3, 'user', $4, NULL, 1, ${at})`, [SQL_META]],
      ['negative-sequence', `($1, $2, $3, 'assistant', 'minus', NULL, -2147483648, ${at})`, []],
      ['unknown-agent', `($1, $2, $3, 'user', 'who am I', NULL, 1, ${at})`, []],
      ['deep-json-text', `($1, $2, $3, 'user', $4, NULL, 1, ${at})`, [JSON.stringify(deep(200, 'leaf'))]],
    ];
    const agentOf: Record<string, string> = { 'long-tenant': uuidFrom('agent-long'), 'unknown-agent': uuidFrom('no-such-agent') };
    for (const [kind, values, extra] of skRows) await q(`${tr} VALUES ${values}`, [sk(kind), conv, agentOf[kind] ?? agent, ...extra]);

    // ---- LiteLLM spend and error logs ----
    const goodSpend = spendLogRows(40, { seed: 32, spanMs: 3_600_000 });
    await insertRows(db.pool, '"LiteLLM_SpendLogs"', SPEND_LOG_COLUMNS, goodSpend);
    const sl = `INSERT INTO "LiteLLM_SpendLogs" (request_id, model, team_id, spend, prompt_tokens, completion_tokens, "startTime", "endTime", metadata, status, call_type)`;
    const ts = "(now() - interval '10 minutes') AT TIME ZONE 'UTC'";
    const llRows: [string, string, unknown[]][] = [
      ['null-tokens', `($1, 'gpt-4o', 'team-a', 0.1, NULL, NULL, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, []],
      ['negative-tokens', `($1, 'gpt-4o', 'team-a', 0.1, -1, 5, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, []],
      ['unknown-model', `($1, '', 'team-a', 0.1, 1, 1, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, []],
      ['malformed-json', `($1, 'gpt-4o', 'team-a', 0.1, 1, 1, ${ts}, ${ts}, '{"usage_object": {', 'success', 'acompletion')`, []],
      ['deep-json', `($1, 'gpt-4o', 'team-a', 0.1, 1, 1, ${ts}, ${ts}, $2, 'failure', 'acompletion')`, [JSON.stringify({ error_information: deep(200, { error_class: 'X' }), usage_object: deep(200, 1) })]],
      ['ten-mb-metadata', `($1, 'gpt-4o', 'team-a', 0.1, 1, 1, ${ts}, ${ts}, $2, 'success', 'acompletion')`, [JSON.stringify({ note: 'z'.repeat(TEN_MB) })]],
      ['invalid-utf8', `($1, E'gpt-4o\\xff', 'team-a', 0.1, 1, 1, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, []],
      ['control-chars', `($1, 'gpt-4o', E'team\\x01\\x1b', 0.1, 1, 1, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, []],
      ['epoch-zero', `($1, 'gpt-4o', 'team-a', 0.1, 1, 1, 'epoch', 'epoch', '{}', 'success', 'acompletion')`, []],
      ['year-9999', `($1, 'gpt-4o', 'team-a', 0.1, 1, 1, '9999-12-31 23:59:59', '9999-12-31 23:59:59', '{}', 'success', 'acompletion')`, []],
      ['duplicate-id', `($1, 'gpt-4o', 'team-a', 0.1, 1, 1, '2026-12-01 00:00:00', '2026-12-01 00:00:01', '{}', 'success', 'acompletion'), ($1, 'gpt-4o', 'team-a', 0.1, 1, 1, '2026-12-01 00:00:00', '2026-12-01 00:00:01', '{}', 'success', 'acompletion')`, []],
      ['long-team', `($1, 'gpt-4o', $2, 0.1, 1, 1, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, [LONG_TENANT]],
      ['quotes-model', `($1, $2, 'team-a', 0.1, 1, 1, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, [QUOTED]],
      ['sql-meta', `($1, 'gpt-4o', $2, 0.1, 1, 1, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, [SQL_META]],
      ['nan-spend', `($1, 'gpt-4o', 'team-a', 'NaN', 1, 1, ${ts}, ${ts}, '{}', 'success', 'acompletion'), ($1 || '-inf', 'gpt-4o', 'team-a', '-Infinity', 1, 1, ${ts}, ${ts}, '{}', 'success', 'acompletion')`, []],
      ['ends-before-start', `($1, 'gpt-4o', 'team-a', 0.1, 1, 1, ${ts}, ${ts} - interval '1 hour', '{}', 'success', 'acompletion')`, []],
    ];
    for (const [kind, values, extra] of llRows) await q(`${sl} VALUES ${values}`, [`ll-${kind}`, ...extra]);
    await q(`INSERT INTO "LiteLLM_ErrorLogs" (request_id, "startTime", "endTime", model_group, exception_type, status_code) VALUES
      ('err-ok', ${ts}, ${ts}, 'gpt-4o', 'RateLimitError', '429'), ('err-bad-status', ${ts}, ${ts}, 'gpt-4o', $1, 'not a status')`, [QUOTED]);

    // ---- one read of everything, into ClickHouse and the metrics ----
    const config = testConfig(db.url, { stateDir });
    store = await openStore(config);
    await store.migrate();
    const quality = new RowQuality(silentLogger(), 60_000);
    const memory = new MemorySink();
    const metrics = new MetricsRegistry();
    const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [memory, new ClickHouseSink(store, 'redacted')], store: new MemoryCheckpointStore(), autoSources: false, quality, metrics });
    await pipeline.backfill();
    await pipeline.close();
    expect(pipeline.statuses().filter((s) => s.lastError !== null)).toEqual([]);

    const counts = Object.fromEntries(quality.snapshot().map((c) => [`${c.stream} ${c.action} ${c.reason}`, c.count]));
    expect(counts).toEqual({
      'claude-nexus-proxy/api_requests repaired null_tokens': 2,
      'claude-nexus-proxy/api_requests rejected negative_tokens': 1,
      // mystery-model-9 and the quoted one; the model with a 0xFF byte still starts with a priced name.
      'claude-nexus-proxy/api_requests repaired unknown_model': 2,
      'claude-nexus-proxy/api_requests repaired oversized_body': 1,
      'claude-nexus-proxy/api_requests repaired invalid_utf8': 1,
      'claude-nexus-proxy/api_requests rejected future_timestamp': 1,
      'claude-nexus-proxy/api_requests rejected duplicate_id': 1,
      'claude-nexus-proxy/api_requests rejected missing_field': 1,
      'sidekick-forge/conversation_transcripts repaired invalid_utf8': 1,
      'sidekick-forge/conversation_transcripts repaired oversized_body': 1,
      'sidekick-forge/conversation_transcripts rejected future_timestamp': 1,
      'sidekick-forge/conversation_transcripts rejected duplicate_id': 1,
      'sidekick-forge/conversation_transcripts rejected missing_field': 1,
      'litellm/LiteLLM_SpendLogs repaired null_tokens': 2,
      'litellm/LiteLLM_SpendLogs rejected negative_tokens': 1,
      // A spend that is not an amount (NaN, -Infinity): the request counts, its cost is unknown.
      'litellm/LiteLLM_SpendLogs repaired invalid_cost': 2,
      'litellm/LiteLLM_SpendLogs repaired malformed_json': 1,
      'litellm/LiteLLM_SpendLogs rejected future_timestamp': 1,
      'litellm/LiteLLM_SpendLogs rejected duplicate_id': 1,
    });

    // Every good row, and every bad row that was only repaired, flows on: to the sink and to ClickHouse.
    const requests = memory.events.filter((e): e is RequestEvent => e.kind === 'request');
    const requestIds = new Set(requests.map((r) => r.requestId));
    for (const row of good) expect(requestIds.has(String(row[0])), String(row[0])).toBe(true);
    for (const row of goodSpend) expect(requestIds.has(String(row[0])), String(row[0])).toBe(true);
    const rejectedCnp = ['negative-tokens', 'year-9999', 'null-tenant'];
    for (const [kind] of cnpRows) expect(requestIds.has(bad(kind)), kind).toBe(!rejectedCnp.includes(kind));
    const rejectedLl = ['negative-tokens', 'year-9999'];
    for (const [kind] of llRows) expect(requestIds.has(`ll-${kind}`), kind).toBe(!rejectedLl.includes(kind));
    expect(requests.filter((r) => r.requestId === bad('duplicate-id'))).toHaveLength(1);
    expect(requests.find((r) => r.requestId === bad('long-tenant'))!.tenant).toBe(LONG_TENANT);
    expect(requests.find((r) => r.requestId === 'll-nan-spend')!.costUsd).toBeNull();
    expect(requests.find((r) => r.requestId === bad('bad-status'))!.httpStatus).toBeNull();
    const messages = memory.events.filter((e): e is MessageEvent => e.kind === 'message');
    const messageIds = new Set(messages.map((m) => m.messageId));
    const { rows: goodTranscripts } = await q("SELECT id::text AS id FROM conversation_transcripts WHERE content LIKE 'User message%' OR content LIKE 'Assistant reply%'");
    expect(goodTranscripts.length).toBeGreaterThan(20);
    for (const { id } of goodTranscripts as { id: string }[]) expect(messageIds.has(id), id).toBe(true);
    const rejectedSk = ['year-9999', 'null-conversation'];
    for (const [kind] of skRows) expect(messageIds.has(sk(kind)), kind).toBe(!rejectedSk.includes(kind));
    expect(messages.find((m) => m.messageId === sk('unknown-agent'))!.tenant).toBe('unattributed');
    expect(Buffer.byteLength(messages.find((m) => m.messageId === sk('ten-mb'))!.content)).toBeLessThanOrEqual(256 * 1024);

    const [stored] = await store.query<{ requests: number; messages: number }>(
      'SELECT (SELECT count() FROM tokenwatch.requests) AS requests, (SELECT count() FROM tokenwatch.messages) AS messages',
    );
    expect(Number(stored!.requests)).toBe(requestIds.size);
    expect(Number(stored!.messages)).toBe(messageIds.size);

    // /metrics: totals exact, label values safe, and promtool accepts it.
    const text = prometheusText(metrics.collect(pipeline.statuses(), quality.snapshot(), [], pipeline.sinks()));
    expect(sumSamples(text, 'tokenwatch_requests_total')).toBe(requests.length);
    // eslint-disable-next-line no-control-regex -- no control character may reach /metrics
    expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
    expect(text).toMatch(/tenant="t{200}…[0-9a-f]{12}"/);
    expect(text).toContain('tenant="q\\"uo\\\\te\\nnew line"');
    expect(sumSamples(text, 'tokenwatch_metric_label_values_shortened_total', 'label="tenant"')).toBeGreaterThan(0);
    const promtool = promtoolCheckMetrics(text);
    expect(promtool, promtool.output).toEqual({ code: 0, output: '' });
  });

  it('5,000 distinct tenants keep every metric under its series cap, with exact totals', async () => {
    const many = await createTestDatabase({ schemas: ['claude-nexus-proxy'] });
    try {
      await many.pool.query(`INSERT INTO api_requests (request_id, domain, timestamp, model, request_type, response_status, input_tokens, output_tokens, duration_ms)
        SELECT gen_random_uuid(), 'tenant-' || i || '.example.com', now() - make_interval(secs => i), 'claude-sonnet-4-5-20250929', 'inference', 200, 10, i % 100, 900
        FROM generate_series(1, 5000) AS i`);
      const limits = { maxSeriesPerMetric: 2000, maxValuesPerLabel: { tenant: 300 } };
      const config = testConfig(many.url, { sources: [{ type: 'claude-nexus-proxy' }], clickhouse: { enabled: false }, metrics: limits });
      const metrics = createMetricsRegistry(config);
      const pipeline = await Pipeline.open({ config, logger: silentLogger(), sinks: [new MemorySink()], store: new MemoryCheckpointStore(), autoSources: false, metrics });
      await pipeline.backfill();
      await pipeline.close();
      const text = prometheusText(metrics.collect(pipeline.statuses(), [], []));
      const series = new Map<string, number>();
      const tenants = new Set<string>();
      for (const line of text.split('\n')) {
        if (line.startsWith('#') || line === '') continue;
        const name = line.slice(0, line.search(/[{ ]/)).replace(/_(bucket|sum|count)$/, '');
        if (line.includes('_bucket{') && !line.includes('le="+Inf"')) continue;
        series.set(name, (series.get(name) ?? 0) + 1);
        const tenant = /tenant="([^"]*)"/.exec(line)?.[1];
        if (tenant !== undefined) tenants.add(tenant);
      }
      for (const [name, count] of series) expect(count, name).toBeLessThanOrEqual(limits.maxSeriesPerMetric);
      expect(tenants.size).toBeLessThanOrEqual(limits.maxValuesPerLabel.tenant + 1);
      expect(tenants.has('other')).toBe(true);
      expect(sumSamples(text, 'tokenwatch_requests_total')).toBe(5000);
      expect(sumSamples(text, 'tokenwatch_tokens_total', 'type="output"')).toBe(Array.from({ length: 5000 }, (_, i) => (i + 1) % 100).reduce((a, b) => a + b, 0));
      expect(sumSamples(text, 'tokenwatch_metric_series_overflow_total', 'label="tenant"')).toBeGreaterThan(0);
    } finally {
      await many.drop();
    }
  });
});
